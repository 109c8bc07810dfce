package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
)

type fitHeadOptions struct {
	Train, Valid, Out string
	Kind, C           string
	MaxIter           int
	Tol               float64
	ClassWeight       string
	Standardize       bool
	Seed              uint64
	Threads           int
	Precision         string
	Hidden            string
	Dropout, LR, WD   float64
	Epochs, Patience  int
	BatchSize         int
	JSON              bool
	Resume            bool
	AllowUnconverged  bool
}

func newFitHeadCommand() *cli.Command {
	return &cli.Command{
		Name:  "fit-head",
		Usage: "train a head (logistic regression or MLP) on a feature store",
		Description: "logreg minimises scikit-learn's LogisticRegression(lbfgs, l2) objective with the same C, tol and\n" +
			"max_iter semantics; --C auto picks C by stratified 5-fold cross-validation over 1e-4..1e4.\n" +
			"mlp trains 1-2 GELU hidden layers with AdamW and early stopping on --valid (or 10% held out).\n" +
			"On a multi-label store (extract --label-sep) both fit one sigmoid output per label (one-vs-rest).\n" +
			"The head file records the fingerprint of the training features (backbone, pooling, layers, ...).\n" +
			"The MLP keeps a checkpoint (OUT.ckpt) after every epoch; after Ctrl-C (exit 130, taken between solver\n" +
			"iterations, epochs or a few hundred batches), a kill or a crash, rerun with --resume\n" +
			"to continue: the head is byte-identical to an uninterrupted run's. logreg has no checkpoint: --resume\n" +
			"reruns its deterministic solve, which gives the same bytes.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "train", Required: true, Usage: "training `FEATURES.safetensors` (from extract), or an activation cache (extract --cut-top) with --mode lora|full|reinit"},
			&cli.StringFlag{Name: "valid", Usage: "validation `FEATURES.safetensors` (MLP early stopping; reported for logreg)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "head `FILE` to write"},
			&cli.StringFlag{Name: "head", Value: "logreg", Usage: "logreg | mlp"},
			&cli.StringFlag{Name: "C", Value: "1.0", Usage: "inverse L2 strength (> 0), or auto (cross-validated)"},
			&cli.IntFlag{Name: "max-iter", Value: 100, Usage: "logreg solver iterations"},
			&cli.Float64Flag{Name: "tol", Value: 1e-4, Usage: "logreg: stop when max |gradient| <= tol"},
			&cli.StringFlag{Name: "class-weight", Value: "none", Usage: "none | balanced"},
			&cli.BoolFlag{Name: "standardize", Usage: "scale features to zero mean, unit variance (stored in the head)"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed for CV folds, MLP init, batches, dropout"},
			&cli.IntFlag{Name: "threads", Usage: "worker threads (0 = all cores); results do not depend on it"},
			&cli.StringFlag{Name: "precision", Value: "float32", Usage: "logreg: float32 | float64, the type the loss and gradient are computed in (float32: as scikit-learn on float32 features)"},
			&cli.StringFlag{Name: "hidden", Value: "256", Usage: "mlp: hidden widths, one or two, e.g. 512,256"},
			&cli.Float64Flag{Name: "dropout", Usage: "mlp: dropout probability"},
			&cli.Float64Flag{Name: "lr", Value: 1e-3, Usage: "mlp: AdamW learning rate"},
			&cli.Float64Flag{Name: "weight-decay", Value: 0.01, Usage: "mlp: AdamW weight decay"},
			&cli.IntFlag{Name: "epochs", Value: 100, Usage: "mlp: maximum epochs"},
			&cli.IntFlag{Name: "patience", Value: 10, Usage: "mlp: epochs without validation improvement before stopping"},
			&cli.IntFlag{Name: "batch-size", Value: 64, Usage: "mlp: rows per update"},
			&cli.BoolFlag{Name: "json", Usage: "print the training summary as JSON on stdout"},
			&cli.BoolFlag{Name: "allow-unconverged", Usage: "logreg: write the head even when the solver failed (a failed line search, a loss that is not finite), which it refuses by default"},
		}, topFlags()...),
		Action: func(c *cli.Context) error {
			o := fitHeadOptions{
				Train: c.String("train"), Valid: c.String("valid"), Out: c.String("out"),
				Kind: c.String("head"), C: c.String("C"), MaxIter: c.Int("max-iter"), Tol: c.Float64("tol"),
				ClassWeight: c.String("class-weight"), Standardize: c.Bool("standardize"), Seed: c.Uint64("seed"),
				Threads: c.Int("threads"), Precision: c.String("precision"), Hidden: c.String("hidden"), Dropout: c.Float64("dropout"),
				LR: c.Float64("lr"), WD: c.Float64("weight-decay"), Epochs: c.Int("epochs"),
				Patience: c.Int("patience"), BatchSize: c.Int("batch-size"), JSON: c.Bool("json"), Resume: c.Bool("resume"),
				AllowUnconverged: c.Bool("allow-unconverged"),
			}
			if c.String("mode") != "head" {
				return runFitTop(c.Context, newFitTopOptions(c, o), c.App.Writer, c.App.ErrWriter)
			}
			return runFitHead(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func (o fitHeadOptions) settings(progress func(head.Progress)) (head.Options, error) {
	var ho head.Options
	var err error
	if ho.Kind, err = head.ParseKind(o.Kind); err != nil {
		return ho, usageError{err}
	}
	cw, err := head.ParseClassWeight(o.ClassWeight)
	if err != nil {
		return ho, usageError{err}
	}
	if o.Threads < 0 {
		return ho, usagef("--threads %d: want 0 (all cores) or more", o.Threads)
	}
	switch ho.Kind {
	case head.LogReg:
		c, auto, err := head.ParseC(o.C)
		if err != nil {
			return ho, usageError{err}
		}
		if o.MaxIter < 1 {
			return ho, usagef("--max-iter %d: want at least 1", o.MaxIter)
		}
		if !(o.Tol > 0) {
			return ho, usagef("--tol %g: want > 0", o.Tol)
		}
		prec, err := head.ParsePrecision(o.Precision)
		if err != nil {
			return ho, usageError{fmt.Errorf("--precision: %w", err)}
		}
		ho.LogReg = head.LogRegSettings{C: c, AutoC: auto, Tol: o.Tol, MaxIter: o.MaxIter, ClassWeight: cw,
			Precision: prec, Standardize: o.Standardize, Seed: o.Seed, Threads: o.Threads, Progress: progress}
	case head.MLP:
		switch {
		case o.BatchSize < 1:
			return ho, usagef("--batch-size %d: want at least 1", o.BatchSize)
		case o.Epochs < 1:
			return ho, usagef("--epochs %d: want at least 1", o.Epochs)
		case o.Patience < 1:
			return ho, usagef("--patience %d: want at least 1", o.Patience)
		case !(o.LR > 0):
			return ho, usagef("--lr %g: want > 0", o.LR)
		case !(o.Dropout >= 0 && o.Dropout < 1):
			return ho, usagef("--dropout %g: want a probability in [0, 1)", o.Dropout)
		case !(o.WD >= 0):
			return ho, usagef("--weight-decay %g: want 0 (none) or more", o.WD)
		}
		wd := o.WD
		if wd == 0 {
			wd = -1 // MLPSettings: 0 is the default (0.01), a negative value none
		}
		var hidden []int
		for _, f := range strings.Split(o.Hidden, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return ho, usagef("--hidden %q: want one or two positive widths, e.g. 256 or 512,256", o.Hidden)
			}
			hidden = append(hidden, n)
		}
		ho.MLP = head.MLPSettings{Hidden: hidden, Dropout: o.Dropout, LearningRate: o.LR, WeightDecay: wd,
			BatchSize: o.BatchSize, MaxEpochs: o.Epochs, Patience: o.Patience, ClassWeight: cw,
			Standardize: o.Standardize, Seed: o.Seed, Threads: o.Threads, Progress: progress,
			Checkpoint: o.Out + ".ckpt", Resume: o.Resume}
	}
	return ho, nil
}

// checkCheckpoint is headstart.CheckCheckpoint, a usage error.
func checkCheckpoint(ck string, resume bool) error {
	if err := headstart.CheckCheckpoint(ck, resume); err != nil {
		return usageError{err}
	}
	return nil
}

func runFitHead(ctx context.Context, o fitHeadOptions, stdout, stderr io.Writer) (err error) {
	// On a terminal the progress rewrites one line, ended before anything else is said.
	tty, pending := isTerminal(stderr), false
	endLine := func() {
		if pending {
			fmt.Fprintln(stderr)
			pending = false
		}
	}
	progress := func(p head.Progress) {
		if tty {
			fmt.Fprintf(stderr, "\r\033[K%s", fitProgressLine(p))
			pending = true
		} else {
			fmt.Fprintln(stderr, fitProgressLine(p))
		}
	}
	ho, err := o.settings(progress)
	if err != nil {
		return err
	}
	lock, err := fileio.Claim(o.Out, o.Train, o.Valid)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	sum, err := headstart.FitHead(ctx, headstart.FitHeadOptions{Train: o.Train, Valid: o.Valid, Out: o.Out, Head: ho,
		Resume: o.Resume, AllowUnconverged: o.AllowUnconverged,
		Warn: func(msg string) { endLine(); fmt.Fprintln(stderr, "fit-head: warning: "+msg) }})
	endLine()
	if errors.Is(err, headstart.ErrCheckpointExists) {
		return usageError{err}
	} else if err != nil {
		return err
	}
	h, s := sum.Head, sum.Head.Summary
	if o.JSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"out": o.Out, "head": h.Kind.String(), "classes": len(h.Classes),
			"multi_label": h.MultiLabel, "dim": h.Dim, "summary": s, "seconds": s.Elapsed.Seconds(), "cpu_seconds": sum.FitCPU.Seconds(), "resumed_epochs": s.Resumed})
	}
	fmt.Fprintln(stderr, fitSummaryLine(h, o.Out, ho.LogReg.AutoC))
	return nil
}

// fitProgressLine is the line fit-head prints per solver iteration (logistic
// regression) or epoch (MLP, stage "train").
func fitProgressLine(p head.Progress) string {
	unit := "iter"
	if p.Stage == "train" {
		unit = "epoch"
	}
	line := fmt.Sprintf("fit-head: %s %s %d loss %.6g", p.Stage, unit, p.Iter, p.Loss)
	if p.GradMax > 0 {
		line += fmt.Sprintf(" max|grad| %.3g", p.GradMax)
	}
	if p.ValidLoss > 0 {
		line += fmt.Sprintf(" valid loss %.4g acc %.4f", p.ValidLoss, p.ValidAccuracy)
	}
	return line
}

// fitSummaryLine is fit-head's last line: what was fitted to what, and how it went. C
// is shown to 4 significant digits (the head file keeps it exactly); autoC says it was
// chosen by cross-validation.
func fitSummaryLine(h *head.Head, out string, autoC bool) string {
	s := h.Summary
	classes := count(len(h.Classes), "class", "classes")
	if h.MultiLabel {
		classes = count(len(h.Classes), "label", "labels") + " (multi-label: one-vs-rest sigmoids)"
	}
	line := fmt.Sprintf("fit-head: %s on %s x %s, %s -> %s (%.2fs", h.Kind, count(s.Rows, "row", "rows"),
		count(h.Dim, "feature", "features"), classes, out, s.Elapsed.Seconds())
	if h.Kind == head.LogReg {
		c := "C=" + strconv.FormatFloat(s.C, 'g', 4, 64)
		if autoC {
			c += " (cross-validated)"
		}
		return line + fmt.Sprintf("; %s, %s, converged=%v)", c, count(s.Iterations, "iteration", "iterations"), s.Converged)
	}
	return line + fmt.Sprintf("; %s (%d resumed), best %d, valid accuracy %.4f)", count(s.Epochs, "epoch", "epochs"), s.Resumed, s.BestEpoch, s.ValidAccuracy)
}
