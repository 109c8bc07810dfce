package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/lora"
)

// topFlags are fit-head's flags for training the top blocks (--mode lora|full|reinit).
func topFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "head", Usage: "head: a head on pooled features | lora | full | reinit: train the top blocks (LoRA adapters, all their weights, or re-initialised) with a linear head, on an activation cache from extract --cut-top | setfit: fine-tune the top blocks contrastively on pairs (SetFit), then fit a logistic regression on the embeddings"},
		&cli.IntFlag{Name: "top-k", Usage: "top blocks to train, 1 to the cache's --cut-top (default: all the cache's); the frozen blocks between run once in Go, so one cache cut at the embeddings (--cut-top L) feeds every depth"},
		&cli.IntFlag{Name: "iterations", Value: 20, Usage: "setfit: num_iterations, the positive (and as many negative) pairs drawn per example"},
		&cli.IntFlag{Name: "max-steps", Usage: "setfit: stop after this many steps (setfit's max_steps: the schedule spans them, and the pairs come from the first steps·batch/2 distinct pairs of each kind); 0: every pair, --epochs times"},
		&cli.BoolFlag{Name: "embeddings", Usage: "full: also train the embedding tables and their LayerNorm (every block must train: --top-k L on a --cut-top L cache, which holds the token ids)"},
		&cli.BoolFlag{Name: "recompute", Usage: "lora/full/reinit: keep one block's activations and recompute each block's forward before its backward (less memory for many blocks, about a third more time below the top block; same result)"},
		&cli.StringFlag{Name: "model", Usage: "backbone `NAME|DIR` whose top blocks to train (default: the one the cache names; its sha256 must match)"},
		&cli.IntFlag{Name: "rank", Value: 8, Usage: "lora: adapter rank r"},
		&cli.Float64Flag{Name: "alpha", Value: 16, Usage: "lora: scaling alpha (adapters add alpha/r · B·A)"},
		&cli.StringFlag{Name: "targets", Value: "query,value", Usage: "lora: adapted layers, any of query,key,value,output,ffn"},
		&cli.Float64Flag{Name: "lora-dropout", Value: 0.1, Usage: "lora: dropout on the adapters' input"},
		&cli.StringFlag{Name: "head-init", Value: "logreg", Usage: "lora/full/reinit: start the linear head from a logistic regression (C=1) fitted on the frozen features (linear probing then fine-tuning), or random (torch.nn.Linear's init)"},
		&cli.Float64Flag{Name: "warmup", Value: 0.1, Usage: "lora/full/reinit: fraction of steps with linear warmup (then linear decay to 0)"},
		&cli.BoolFlag{Name: "resume", Usage: "continue an interrupted run from its checkpoint (OUT.ckpt)"},
	}
}

// Defaults of the top-block modes where fit-head's shared flags default for the MLP.
const (
	topEpochs    = 3
	topBatchSize = 32
)

// fitTopOptions configure fit-head --mode lora|full|reinit|setfit: fit-head's options
// (Kind is --head, which must be logreg) and the top-block flags.
type fitTopOptions struct {
	fitHeadOptions
	Mode        string // lora, full, reinit or setfit
	Model       string // backbone NAME|DIR; default the one the cache names
	TopK        int    // blocks to train; used when given (see Given), else all the cache's
	Iterations  int    // setfit: pairs per example and kind
	MaxSteps    int    // setfit: steps at most, 0 for no limit
	Embeddings  bool
	Recompute   bool
	Rank        int
	Alpha       float64
	Targets     string
	LoRADropout float64
	HeadInit    string // logreg or random
	Warmup      float64
	// Given lists the flags given on the command line whose defaults depend on the mode
	// (epochs, batch-size, lr, weight-decay, patience) or that apply to one mode only.
	Given []string
}

// fitTopGiven are the flags fitTopOptions.Given records.
var fitTopGiven = []string{"epochs", "batch-size", "lr", "weight-decay", "patience", "top-k", "rank", "alpha", "targets", "lora-dropout", "valid"}

// given reports whether flag was given on the command line.
func (o *fitTopOptions) given(flag string) bool { return slices.Contains(o.Given, flag) }

// newFitTopOptions reads the top-block flags of fit-head over its shared options.
func newFitTopOptions(c *cli.Context, ho fitHeadOptions) fitTopOptions {
	o := fitTopOptions{fitHeadOptions: ho, Mode: c.String("mode"), Model: c.String("model"), TopK: c.Int("top-k"),
		Iterations: c.Int("iterations"), MaxSteps: c.Int("max-steps"), Embeddings: c.Bool("embeddings"), Recompute: c.Bool("recompute"),
		Rank: c.Int("rank"), Alpha: c.Float64("alpha"), Targets: c.String("targets"), LoRADropout: c.Float64("lora-dropout"),
		HeadInit: c.String("head-init"), Warmup: c.Float64("warmup")}
	for _, f := range fitTopGiven {
		if c.IsSet(f) {
			o.Given = append(o.Given, f)
		}
	}
	return o
}

// runFitTop trains the top blocks and a linear head on activation caches
// (headstart.FitTop).
func runFitTop(ctx context.Context, o fitTopOptions, stdout, stderr io.Writer) (err error) {
	s, err := o.settings()
	if err != nil {
		return err
	}
	lo := headstart.FitTopOptions{Train: o.Train, Valid: o.Valid, Out: o.Out, Model: o.Model, Embeddings: o.Embeddings,
		Settings: s, HeadInit: o.HeadInit, Resume: o.Resume}
	if o.given("top-k") {
		if lo.TopK = o.TopK; lo.TopK == 0 {
			return usagef("--top-k 0: want the number of top blocks to train, 1 to the cache's --cut-top")
		}
	}
	if o.Mode == "setfit" {
		if lo.SetFit, err = o.setfitSettings(s, stderr); err != nil {
			return err
		}
	} else {
		lo.Settings.Progress = topProgress(stderr, s.Mode, o.Valid != "")
	}
	if n := o.Threads; n > 0 { // the blocks' products and attention run on GOMAXPROCS goroutines
		runtime.GOMAXPROCS(n)
	} else if n < 0 {
		return usagef("--threads %d: want 0 (all cores) or more", n)
	}
	lock, err := fileio.Claim(o.Out, o.Train, o.Valid)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	sum, err := headstart.FitTop(ctx, lo)
	if errors.Is(err, headstart.ErrBadOption) || errors.Is(err, headstart.ErrCheckpointExists) {
		return usageError{err}
	} else if err != nil {
		return err
	}
	if sum.SetFit != nil {
		return reportSetFit(sum, o, stdout, stderr)
	}
	return reportTop(sum, o, stdout, stderr)
}

// setfitSettings are SetFit's settings: the mode's (settings) with --iterations and
// --max-steps, and SetFit's default weight decay (setfit's) unless --weight-decay is
// given.
func (o *fitTopOptions) setfitSettings(s lora.TrainSettings, stderr io.Writer) (*lora.SetFitSettings, error) {
	if o.given("valid") && o.Valid == "" {
		return nil, usagef("--valid: no examples")
	}
	if o.MaxSteps < 0 {
		return nil, usagef("--max-steps %d: want 0 (no limit) or more", o.MaxSteps)
	}
	fs := &lora.SetFitSettings{Iterations: o.Iterations, Epochs: s.Epochs, MaxSteps: o.MaxSteps, BatchSize: s.BatchSize, LR: s.LR,
		Warmup: s.Warmup, Seed: s.Seed, Recompute: s.Recompute, Progress: setfitProgress(stderr)}
	if o.given("weight-decay") {
		fs.WeightDecay = s.WeightDecay // -1 for --weight-decay 0: none
	}
	return fs, nil
}

// reportTop prints what a top-block training did: JSON on stdout with --json, else a
// line on stderr.
func reportTop(sum headstart.FitTopSummary, o fitTopOptions, stdout, stderr io.Writer) error {
	h, res := sum.Head, sum.Train
	if o.JSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"out": o.Out, "mode": h.Top.Training.Mode, "classes": len(h.Classes),
			"top_k": sum.TopK, "trainable_params": res.Trainable, "best_epoch": res.BestEpoch, "stop": res.Stop,
			"resumed_epochs": res.Resumed, "epochs": res.History})
	}
	last := res.History[len(res.History)-1]
	fmt.Fprintf(stderr, "fit-head: %s on the top %d block(s), %d trainable parameters, %d rows, %d classes -> %s (%d epochs, best %d; %s",
		h.Top.Training.Mode, sum.TopK, res.Trainable, sum.Rows, len(h.Classes), o.Out, len(res.History), res.BestEpoch, res.Stop)
	if o.Valid != "" {
		fmt.Fprintf(stderr, "; valid accuracy %.4f", res.History[res.BestEpoch-1].ValidAccuracy)
	}
	fmt.Fprintf(stderr, "; last epoch %.1fs)\n", last.TrainSeconds)
	return nil
}

// reportSetFit prints what a SetFit training did.
func reportSetFit(sum headstart.FitTopSummary, o fitTopOptions, stdout, stderr io.Writer) error {
	h, res := sum.Head, sum.SetFit
	if o.JSON {
		out := map[string]any{"out": o.Out, "mode": "setfit", "classes": len(h.Classes), "top_k": sum.TopK,
			"trainable_params": res.Trainable, "pairs": res.Pairs, "epochs": res.History, "body_seconds": sum.BodySeconds,
			"seconds": sum.Seconds, "normalize": sum.Normalize}
		if sum.ValidAccuracy >= 0 {
			out["valid_accuracy"] = sum.ValidAccuracy
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stderr, "fit-head: setfit on the top %d block(s)%s, %d pairs, %d rows, %d classes -> %s (body %.1fs, head %.1fs",
		sum.TopK, map[bool]string{true: " and the embeddings"}[res.Embeddings != nil], res.Pairs, sum.Rows, len(h.Classes), o.Out,
		sum.BodySeconds, sum.Seconds-sum.BodySeconds)
	if sum.ValidAccuracy >= 0 {
		fmt.Fprintf(stderr, "; valid accuracy %.4f", sum.ValidAccuracy)
	}
	fmt.Fprintln(stderr, ")")
	return nil
}

// settings checks the training flags, before any file is read, and returns the
// settings they give: the mode's defaults with the flags given over them.
func (o *fitTopOptions) settings() (lora.TrainSettings, error) {
	setfit := o.Mode == "setfit"
	mode, err := lora.ParseMode(o.Mode)
	if setfit { // the blocks train fully, contrastively
		mode, err = lora.ModeFull, nil
	}
	if err != nil {
		return lora.TrainSettings{}, usagef("--mode %q: want head, lora, full, reinit or setfit", o.Mode)
	}
	if o.Kind != "logreg" {
		return lora.TrainSettings{}, usagef("--head %s: with --mode %s the head is linear (softmax) and trains with the blocks", o.Kind, mode)
	}
	s := lora.TrainSettings{Mode: mode, Seed: o.Seed, Epochs: topEpochs, BatchSize: topBatchSize, Patience: 0, Warmup: o.Warmup, Recompute: o.Recompute}
	if setfit { // setfit 1.2.0's defaults: 1 epoch over the pairs, 16 pairs a step, lr 2e-5
		s.Epochs, s.BatchSize, s.LR = 1, 16, 2e-5
	}
	if o.given("epochs") {
		s.Epochs = o.Epochs
	}
	if o.given("batch-size") {
		s.BatchSize = o.BatchSize
	}
	if o.given("lr") {
		s.LR = o.LR
	}
	if o.given("weight-decay") {
		if s.WeightDecay = o.WD; s.WeightDecay == 0 {
			s.WeightDecay = -1 // none
		}
	}
	if o.given("patience") {
		s.Patience = o.Patience
	}
	if s.Warmup == 0 {
		s.Warmup = -1 // none
	}
	switch {
	case s.Epochs < 1:
		return s, usagef("--epochs %d: want at least 1", s.Epochs)
	case s.BatchSize < 1:
		return s, usagef("--batch-size %d: want at least 1", s.BatchSize)
	case o.given("lr") && !(s.LR > 0):
		return s, usagef("--lr %g: want > 0", s.LR)
	case s.Warmup >= 1:
		return s, usagef("--warmup %g: want a fraction of the steps in [0, 1)", s.Warmup)
	}
	if mode != lora.ModeLoRA {
		for _, f := range []string{"rank", "alpha", "targets", "lora-dropout"} {
			if o.given(f) {
				return s, usagef("--%s applies to --mode lora only", f)
			}
		}
		return s, nil
	}
	targets, err := lora.ParseTargets(o.Targets)
	if err != nil {
		return s, usageError{fmt.Errorf("--targets: %w", err)}
	}
	switch {
	case o.Rank < 1:
		return s, usagef("--rank %d: want at least 1", o.Rank)
	case !(o.Alpha > 0):
		return s, usagef("--alpha %g: want > 0", o.Alpha)
	case !(o.LoRADropout >= 0 && o.LoRADropout < 1):
		return s, usagef("--lora-dropout %g: want 0 <= p < 1", o.LoRADropout)
	}
	s.LoRA = lora.LoRA{Rank: o.Rank, Alpha: o.Alpha, Dropout: o.LoRADropout, Targets: targets}
	return s, nil
}

// topProgress prints training progress: a line per epoch, and on a terminal the step
// within it, overwritten in place.
func topProgress(stderr io.Writer, mode lora.Mode, valid bool) func(lora.TrainProgress) {
	tty := isTerminal(stderr)
	return func(p lora.TrainProgress) {
		var line string
		if d := p.Done; d != nil {
			line = fmt.Sprintf("fit-head: %s epoch %d/%d loss %.4f (%.1fs)", mode, p.Epoch, p.Epochs, d.TrainLoss, d.TrainSeconds)
			if valid {
				line += fmt.Sprintf(" valid loss %.4f acc %.4f macro-F1 %.4f", d.ValidLoss, d.ValidAccuracy, d.ValidMacroF1)
			}
		} else if tty {
			line = fmt.Sprintf("fit-head: %s epoch %d/%d step %d/%d loss %.4f", mode, p.Epoch, p.Epochs, p.Step, p.Steps, p.Loss)
		} else {
			return
		}
		if tty {
			fmt.Fprintf(stderr, "\r\033[K%s", line)
			if p.Done != nil {
				fmt.Fprintln(stderr)
			}
		} else {
			fmt.Fprintln(stderr, line)
		}
	}
}

// setfitProgress prints SetFit's progress: a line per epoch, and on a terminal the step
// within it, overwritten in place.
func setfitProgress(stderr io.Writer) func(lora.TrainProgress) {
	tty := isTerminal(stderr)
	return func(p lora.TrainProgress) {
		switch {
		case p.Done != nil:
			line := fmt.Sprintf("fit-head: setfit epoch %d/%d cosine loss %.4f (%.1fs)", p.Epoch, p.Epochs, p.Done.TrainLoss, p.Done.TrainSeconds)
			if tty {
				fmt.Fprintf(stderr, "\r\033[K%s\n", line)
			} else {
				fmt.Fprintln(stderr, line)
			}
		case tty:
			fmt.Fprintf(stderr, "\r\033[Kfit-head: setfit epoch %d/%d step %d/%d cosine loss %.4f", p.Epoch, p.Epochs, p.Step, p.Steps, p.Loss)
		}
	}
}
