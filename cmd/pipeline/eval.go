package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart/head"
)

func newEvalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "score a head on a labelled feature store",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "features", Required: true, Usage: "labelled `FEATURES.safetensors`"},
			&cli.StringFlag{Name: "head", Required: true, Usage: "head `FILE` from fit-head"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object (accuracy, macro_f1, weighted_f1, log_loss, ece, n, per_class, confusion)"},
			&cli.StringFlag{Name: "plot", Usage: "write the confusion matrix as `PNG`"},
		},
		Action: func(c *cli.Context) error {
			return runEval(c.String("features"), c.String("head"), c.Bool("json"), c.String("plot"), c.App.Writer, c.App.ErrWriter)
		},
	}
}

func runEval(featuresPath, headPath string, asJSON bool, plot string, stdout, stderr io.Writer) error {
	h, err := head.Load(headPath)
	if err != nil {
		return err
	}
	st, d, err := loadDataset(featuresPath)
	if err != nil {
		return err
	}
	if err := h.CheckStore(st, featuresPath); err != nil {
		return err
	}
	r, err := h.Evaluate(&d)
	if err != nil {
		return err
	}
	if plot != "" {
		if err := head.PlotConfusion(plot, r); err != nil {
			return err
		}
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(r); err != nil {
			return err
		}
	} else if err := r.WriteTable(stdout); err != nil {
		return err
	}
	if plot != "" {
		fmt.Fprintf(stderr, "eval: confusion matrix -> %s\n", plot)
	}
	return nil
}
