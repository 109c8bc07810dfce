package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
)

func newEvalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "score a head on a labelled feature store",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "features", Required: true, Usage: "labelled `FEATURES.safetensors`, or an activation cache (extract --cut-top) for a head with trained top blocks"},
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
		if r, err = h.Evaluate(&d); err != nil {
			return err
		}
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
	for i := range pred {
		p := probs[i*k : (i+1)*k]
		for j, v := range p {
			if v > p[pred[i]] {
				pred[i] = j
			}
		}
	}
	return head.NewReport(h.Classes, ex.Labels, pred, probs), nil
}
