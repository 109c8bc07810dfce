package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
)

type evalOptions struct {
	Features, Head string
	JSON           bool
	Plot           string  // confusion matrix PNG to write; none when empty
	Threshold      float64 // multi-label heads: the probability a label needs
	ThresholdSet   bool    // --threshold was given (a usage error for a single-label head)
}

func newEvalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "score a head on a labelled feature store",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "features", Required: true, Usage: "labelled `FEATURES.safetensors`, or an activation cache (extract --cut-top) for a head with trained top blocks"},
			&cli.StringFlag{Name: "head", Required: true, Usage: "head `FILE` from fit-head"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object (accuracy, macro_f1, weighted_f1, micro_f1, hamming_loss, log_loss, ece, n, per_class, confusion; multi_label and threshold for a multi-label head)"},
			&cli.StringFlag{Name: "plot", Usage: "write the confusion matrix as `PNG` (single-label heads)"},
			&cli.Float64Flag{Name: "threshold", Value: 0.5, Usage: "multi-label heads: a label is predicted when its probability is at least `P`, in (0, 1)"},
		},
		Action: func(c *cli.Context) error {
			if t := c.Float64("threshold"); !(t > 0 && t < 1) {
				return usagef("--threshold %g: want a probability in (0, 1)", t)
			}
			return runEval(c.Context, evalOptions{
				Features: c.String("features"), Head: c.String("head"), JSON: c.Bool("json"), Plot: c.String("plot"),
				Threshold: c.Float64("threshold"), ThresholdSet: c.IsSet("threshold"),
			}, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func runEval(ctx context.Context, o evalOptions, stdout, stderr io.Writer) (err error) {
	var lock *fileio.Locked // nil (nothing to release) without --plot
	if o.Plot != "" {
		if lock, err = fileio.Claim(o.Plot, o.Features, o.Head); err != nil {
			return err
		}
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	h, err := head.Load(o.Head)
	if err != nil {
		return err
	}
	if o.ThresholdSet && !h.MultiLabel {
		return usagef("--threshold applies to multi-label heads (fit on a store extracted with --label-sep); %s is single-label", o.Head)
	}
	r, err := headstart.Evaluate(h, o.Features, o.Threshold)
	if err != nil {
		return err
	}
	if o.Plot != "" && r.MultiLabel {
		return usagef("--plot draws a confusion matrix, which multi-label scores do not have (per-label scores are in the table and --json)")
	}
	if o.Plot != "" {
		if err := head.PlotConfusion(o.Plot, r); err != nil {
			return err
		}
	}
	if o.JSON {
		if err := json.NewEncoder(stdout).Encode(r); err != nil {
			return err
		}
	} else if err := r.WriteTable(stdout); err != nil {
		return err
	}
	if o.Plot != "" {
		fmt.Fprintf(stderr, "eval: confusion matrix -> %s\n", o.Plot)
	}
	return nil
}
