package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
)

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
			return runEval(c.String("features"), c.String("head"), c.Bool("json"), c.String("plot"), c.Float64("threshold"), c.IsSet("threshold"), c.App.Writer, c.App.ErrWriter)
		},
	}
}

func runEval(featuresPath, headPath string, asJSON bool, plot string, threshold float64, thresholdSet bool, stdout, stderr io.Writer) (err error) {
	var lock *fileio.Locked // nil (nothing to release) without --plot
	if plot != "" {
		if lock, err = fileio.Claim(plot, featuresPath, headPath); err != nil {
			return err
		}
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	h, err := head.Load(headPath)
	if err != nil {
		return err
	}
	if thresholdSet && !h.MultiLabel {
		return usagef("--threshold applies to multi-label heads (fit on a store extracted with --label-sep); %s is single-label", headPath)
	}
	var r head.Report
	if cache, err := features.IsTokenCache(featuresPath); err == nil && cache {
		r, err = evalTop(h, featuresPath)
		if err != nil {
			return err
		}
	} else {
		st, d, err := loadDataset(featuresPath)
		if err != nil {
			return err
		}
		if err := h.CheckStore(st, featuresPath); err != nil {
			return err
		}
		if r, err = h.EvaluateAt(&d, threshold); err != nil {
			return err
		}
	}
	if plot != "" && r.MultiLabel {
		return usagef("--plot draws a confusion matrix, which multi-label scores do not have (per-label scores are in the table and --json)")
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

// evalTop scores a head with trained top blocks on an activation cache: the blocks run
// natively on the cached states.
func evalTop(h *head.Head, path string) (head.Report, error) {
	tc, err := features.OpenTokens(path)
	if err != nil {
		return head.Report{}, err
	}
	if err := h.CheckTokens(tc.Manifest, path); err != nil {
		return head.Report{}, err
	}
	ex, err := examples(tc, path, h.Classes)
	if err != nil {
		return head.Report{}, err
	}
	st, err := h.Stack()
	if err != nil {
		return head.Report{}, err
	}
	k := len(h.Classes)
	probs := make([]float32, ex.Len()*k)
	if err := st.Probs(probs, ex, 64); err != nil {
		return head.Report{}, err
	}
	pred := make([]int, ex.Len())
	head.ArgmaxRows(pred, probs, k)
	return head.NewReport(h.Classes, ex.Labels, pred, probs), nil
}
