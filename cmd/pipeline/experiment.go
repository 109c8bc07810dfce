package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/experiment"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

type experimentOptions struct {
	Model                string
	Train, Test, Valid   string
	TextCol, LabelCol    string
	Out                  string
	Strategies, Shots    string
	Unfreeze             string // block counts of an unfreezing sweep; replaces Strategies
	Seeds                int
	ShotsCap             bool
	Protocol             string
	SamplesPerLabel      int
	Experiments          int
	Spec                 specFlags
	BatchSize, Threads   int
	Provider, RuntimeLib string
	Precision            string
	Command              string // the command line, recorded in the results
	// gridOnlyFlags lists the grid flags given on the command line, refused under
	// --protocol mteb.
	gridOnlyFlags []string
}

func newExperimentCommand() *cli.Command {
	var valid []string
	for _, s := range experiment.Strategies() {
		valid = append(valid, fmt.Sprintf("  %-15s %s", s.Name, s.About))
	}
	return &cli.Command{
		Name:  "experiment",
		Usage: "compare strategies over training-set sizes and seeds on one frozen forward pass, or run the MTEB protocol",
		Description: "Extracts the features every strategy needs once per split (cached in OUT/features and reused\n" +
			"on a rerun; the top-block strategies add a second pass, the states entering the top block),\n" +
			"then for each strategy × shots (rows per class, stratified, seeded) × seed trains and scores\n" +
			"on --test. Finished cells are kept in OUT/cells, so an interrupted run\n" +
			"continues where it stopped. Writes OUT/results.{csv,json,md}, OUT/accuracy_vs_size.png and\n" +
			"OUT/accuracy_vs_params.png. Strategies:\n" + strings.Join(valid, "\n") + "\n" +
			"\n" +
			"--protocol mteb runs MTEB's classification protocol instead: per experiment, the training\n" +
			"rows are shuffled by a fresh numpy RandomState(42) (reproduced bit for bit; MTEB 1.x reseeds\n" +
			"it in every experiment, and the shuffled order carries over from one experiment to the next)\n" +
			"and the first --samples-per-label rows of each label kept; a logistic\n" +
			"regression (C=1, max_iter=100) is fitted and scored by test accuracy; the mean of\n" +
			"--experiments experiments is reported.\n" +
			"\n" +
			"Both protocols extract features the way the model card says (pipeline models list: pooling,\n" +
			"normalisation, max length, text prefix; all-MiniLM-L6-v2: mean pooling, L2-normalised, 256\n" +
			"tokens); --pooling, --normalize, --max-len and --prefix override single conventions.",
		Flags: append(specFlagList(),
			&cli.StringFlag{Name: "model", Value: models.Default, Usage: "registry `NAME` or a DIR holding model.onnx and tokenizer.json"},
			&cli.StringFlag{Name: "train", Required: true, Usage: "labelled training `FILE` (.csv, .tsv, .jsonl)"},
			&cli.StringFlag{Name: "test", Required: true, Usage: "labelled test `FILE`"},
			&cli.StringFlag{Name: "valid", Usage: "labelled validation `FILE` for the MLP's early stopping (default: 10% of each class held out of the training draw)"},
			&cli.StringFlag{Name: "text-col", Value: "text", Usage: "column (or JSON key) holding the text"},
			&cli.StringFlag{Name: "label-col", Value: "label", Usage: "column holding the label"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output `DIR` (features cache, cells, results, plots)"},
			&cli.StringFlag{Name: "strategies", Value: "logreg,mlp,concat4-logreg", Usage: "comma-separated strategies (see above; MODE-topK and MODE-all for MODE lora, full, reinit or setfit; full-all+emb and setfit-all+emb also train the embeddings)"},
			&cli.StringFlag{Name: "unfreeze", Usage: "an unfreezing sweep instead of --strategies: comma-separated `K,...`: 0 = logreg on the frozen features, K = full-topK (every weight of the top K blocks), all = every block, or strategy names (lora-top2, full-all+emb, setfit-all, ...); one cache cut at the largest K feeds every depth; adds accuracy, time and memory vs unfrozen-blocks plots"},
			&cli.StringFlag{Name: "shots", Value: "8,16,64,all", Usage: "training rows per class, comma-separated; all = every row"},
			&cli.IntFlag{Name: "seeds", Value: 3, Usage: "seeds per cell (training-row draws and head initialisation)"},
			&cli.BoolFlag{Name: "shots-cap", Usage: "take every row of a class smaller than the shot count instead of failing"},
			&cli.StringFlag{Name: "protocol", Value: "grid", Usage: "grid | mteb"},
			&cli.IntFlag{Name: "samples-per-label", Value: 8, Usage: "mteb: training rows kept per label"},
			&cli.IntFlag{Name: "experiments", Value: 10, Usage: "mteb: experiments averaged"},
			&cli.StringFlag{Name: "precision", Value: "float32", Usage: "logistic regressions compute their objective in float32 (as scikit-learn on float32 embeddings) or float64"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "texts per forward pass"},
			&cli.IntFlag{Name: "threads", Usage: "onnxruntime and head threads (0 = one per core); results do not depend on it"},
			&cli.StringFlag{Name: "provider", Value: "cpu", Usage: "cpu | cuda[:DEVICE] | auto"},
			&cli.StringFlag{Name: "ort-lib", EnvVars: []string{"HEADSTART_ORT_LIB"}, Usage: "onnxruntime shared library (default: the setup cache)"},
		),
		Action: func(c *cli.Context) error {
			o := experimentOptions{
				Model: c.String("model"), Train: c.String("train"), Test: c.String("test"), Valid: c.String("valid"),
				TextCol: c.String("text-col"), LabelCol: c.String("label-col"), Out: c.String("out"),
				Strategies: c.String("strategies"), Unfreeze: c.String("unfreeze"), Shots: c.String("shots"), Seeds: c.Int("seeds"), ShotsCap: c.Bool("shots-cap"),
				Protocol: c.String("protocol"), SamplesPerLabel: c.Int("samples-per-label"), Experiments: c.Int("experiments"),
				Spec:      readSpecFlags(c),
				BatchSize: c.Int("batch-size"), Threads: c.Int("threads"), Provider: c.String("provider"), RuntimeLib: c.String("ort-lib"),
				Precision: c.String("precision"),
				Command:   commandLine(os.Args),
			}
			if c.IsSet("strategies") && c.IsSet("unfreeze") {
				return usagef("--unfreeze and --strategies both name the strategies; give one")
			}
			for _, f := range []string{"strategies", "unfreeze", "shots", "seeds", "shots-cap", "valid"} {
				if c.IsSet(f) {
					o.gridOnlyFlags = append(o.gridOnlyFlags, "--"+f)
				}
			}
			return runExperiment(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// commandLine quotes args for a shell where needed.
func commandLine(args []string) string {
	if len(args) == 0 {
		return ""
	}
	out := []string{"pipeline"}
	safe := regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)
	for _, a := range args[1:] {
		if !safe.MatchString(a) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// runExperiment turns the flags into headstart.ExperimentOptions (parsing what the
// library takes typed, and refusing what only a command line can get wrong), runs the
// experiment, and prints its summary table.
func runExperiment(ctx context.Context, o experimentOptions, stdout, stderr io.Writer) error {
	lo, err := o.toLib(stderr)
	if err != nil {
		return err
	}
	sum, err := headstart.RunExperiment(ctx, lo)
	if errors.Is(err, headstart.ErrBadOption) {
		return usageError{err}
	} else if err != nil {
		return err
	}
	if sum.MTEB != nil {
		r := sum.MTEB
		fmt.Fprintf(stdout, "mteb: accuracy %.2f (mean of %d experiments, std %.2f), macro-F1 %.2f; %s\n",
			100*r.Accuracy, len(r.Experiments), 100*r.AccuracyStd, 100*r.MacroF1, sum.Results)
		return nil
	}
	fmt.Fprintf(stdout, "%-16s %6s %10s %18s %18s %10s\n", "strategy", "shots", "rows", "accuracy", "macro-F1", "params")
	for _, s := range sum.Grid.Summary {
		fmt.Fprintf(stdout, "%-16s %6s %10.0f %9.4f ± %.4f %9.4f ± %.4f %10d\n", s.Strategy, experiment.ShotsName(s.Shots), s.TrainRows,
			s.AccuracyMean, s.AccuracyStd, s.MacroF1Mean, s.MacroF1Std, s.Params)
	}
	return nil
}

// toLib parses the flags the library takes typed (provider, precision, strategies,
// shots) and checks the ones whose zero value the library reads as its default.
func (o experimentOptions) toLib(stderr io.Writer) (headstart.ExperimentOptions, error) {
	lo := headstart.ExperimentOptions{
		Model: o.Model, Train: o.Train, Test: o.Test, Valid: o.Valid, TextCol: o.TextCol, LabelCol: o.LabelCol, Out: o.Out,
		Protocol: o.Protocol, Spec: o.Spec, BatchSize: o.BatchSize, Threads: o.Threads, RuntimeLib: o.RuntimeLib,
		MTEB:    experiment.MTEBSettings{SamplesPerLabel: o.SamplesPerLabel, Experiments: o.Experiments},
		Command: o.Command, Log: stderr,
		NewProgress: func(desc string) headstart.Progress { return newProgress(stderr, desc, "rows") },
	}
	if o.BatchSize < 1 {
		return lo, usagef("--batch-size %d: want at least 1", o.BatchSize)
	}
	var err error
	if lo.Provider, err = onnx.ParseProvider(o.Provider); err != nil {
		return lo, usageError{err}
	}
	if lo.Precision, err = head.ParsePrecision(o.Precision); err != nil {
		return lo, usageError{err}
	}
	if o.Protocol == headstart.ProtocolMTEB {
		if len(o.gridOnlyFlags) > 0 {
			return lo, usagef("%s: not used by --protocol mteb (it fits one logistic regression per experiment on the undersampled training split)", strings.Join(o.gridOnlyFlags, ", "))
		}
		if o.SamplesPerLabel < 1 || o.Experiments < 1 {
			return lo, usagef("--samples-per-label %d, --experiments %d: want at least 1 each", o.SamplesPerLabel, o.Experiments)
		}
		return lo, nil
	}
	g := &lo.Grid
	g.MeasureMemory = true
	if o.Unfreeze != "" {
		g.Strategies, err = experiment.ParseUnfreeze(o.Unfreeze)
		lo.Unfreeze = true
	} else {
		g.Strategies, err = experiment.ParseStrategies(o.Strategies)
	}
	if err != nil {
		return lo, usageError{err}
	}
	if g.Shots, err = experiment.ParseShots(o.Shots); err != nil {
		return lo, usageError{err}
	}
	if o.Seeds < 1 {
		return lo, usagef("--seeds %d: want at least 1", o.Seeds)
	}
	g.Seeds, g.CapShots = o.Seeds, o.ShotsCap
	return lo, nil
}
