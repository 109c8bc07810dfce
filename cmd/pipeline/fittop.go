package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/lora"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// topFlags are fit-head's flags for training the top blocks (--mode lora|full|reinit).
func topFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "head", Usage: "head: a head on pooled features | lora | full | reinit: train the top blocks (LoRA adapters, all their weights, or re-initialised) with a linear head, on an activation cache from extract --cut-top | setfit: fine-tune the top blocks contrastively on pairs (SetFit), then fit a logistic regression on the embeddings"},
		&cli.IntFlag{Name: "top-k", Usage: "top blocks to train, 1 to the cache's --cut-top (default: all the cache's); the frozen blocks between run once in Go, so one cache cut at the embeddings (--cut-top L) feeds every depth"},
		&cli.IntFlag{Name: "iterations", Value: 20, Usage: "setfit: num_iterations, the positive (and as many negative) pairs drawn per example"},
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
		Iterations: c.Int("iterations"), Embeddings: c.Bool("embeddings"), Recompute: c.Bool("recompute"),
		Rank: c.Int("rank"), Alpha: c.Float64("alpha"), Targets: c.String("targets"), LoRADropout: c.Float64("lora-dropout"),
		HeadInit: c.String("head-init"), Warmup: c.Float64("warmup")}
	for _, f := range fitTopGiven {
		if c.IsSet(f) {
			o.Given = append(o.Given, f)
		}
	}
	return o
}

// runFitTop trains the top blocks and a linear head on activation caches.
func runFitTop(ctx context.Context, o fitTopOptions, stdout, stderr io.Writer) (err error) {
	s, err := o.settings()
	if err != nil {
		return err
	}
	lock, err := fileio.Claim(o.Out, o.Train, o.Valid)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	d, err := o.openCaches(s.Mode)
	if err != nil {
		return err
	}
	blocks, err := o.pretrained(d, &s)
	if err != nil {
		return err
	}
	if o.Mode == "setfit" {
		return runSetFit(ctx, o, stdout, stderr, setfitRun{s: s, blocks: blocks, heads: s.Heads, train: d.train, valid: d.valid, tm: d.tm, cut: d.cut, out: o.Out})
	}
	switch o.HeadInit {
	case "logreg":
		if s.HeadW, s.HeadB, err = head.LinearProbe(blocks, s.Heads, d.train, d.tm.LabelNames, 0); err != nil {
			return err
		}
		s.HeadInit = "logreg"
	case "random":
	default:
		return usagef("--head-init %q: want logreg or random", o.HeadInit)
	}

	s.Checkpoint, s.Resume = o.Out+".ckpt", o.Resume
	if err := checkCheckpoint(s.Checkpoint, s.Resume); err != nil {
		return err
	}
	key := sha256.New()
	for _, x := range []string{d.tm.Dataset.SHA256, d.tm.Backbone.SHA256, fmt.Sprint(d.tm.CutBlock, d.tm.MaxLen, d.rows, d.cut)} {
		key.Write([]byte(x + "\x00"))
	}
	s.Key = hex.EncodeToString(key.Sum(nil))

	if n := o.Threads; n > 0 { // the blocks' products and attention run on GOMAXPROCS goroutines
		runtime.GOMAXPROCS(n)
	} else if n < 0 {
		return usagef("--threads %d: want 0 (all cores) or more", n)
	}
	s.Progress = topProgress(stderr, s.Mode, d.valid != nil)
	res, err := lora.Train(ctx, blocks, len(d.tm.LabelNames), d.train, d.valid, s)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("fit-head interrupted (finished epochs kept in %s; rerun with --resume): %w", s.Checkpoint, err)
		}
		return err
	}
	h := topHead(res, d.tm, d.cut, s, d.train.Len())
	if err := h.Save(o.Out); err != nil {
		return err
	}
	os.Remove(s.Checkpoint)
	if o.JSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"out": o.Out, "mode": s.Mode.String(), "classes": len(h.Classes),
			"top_k": d.topK, "trainable_params": res.Trainable, "best_epoch": res.BestEpoch, "stop": res.Stop,
			"resumed_epochs": res.Resumed, "epochs": res.History})
	}
	last := res.History[len(res.History)-1]
	fmt.Fprintf(stderr, "fit-head: %s on the top %d block(s), %d trainable parameters, %d rows, %d classes -> %s (%d epochs, best %d; %s",
		s.Mode, d.topK, res.Trainable, d.train.Len(), len(h.Classes), o.Out, len(res.History), res.BestEpoch, res.Stop)
	if d.valid != nil {
		fmt.Fprintf(stderr, "; valid accuracy %.4f", res.History[res.BestEpoch-1].ValidAccuracy)
	}
	fmt.Fprintf(stderr, "; last epoch %.1fs)\n", last.TrainSeconds)
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

// topCaches is what the top blocks train on: the training cache's manifest and rows,
// its examples and the validation examples (nil without --valid), and the blocks to
// train (the top topK; cut is the first).
type topCaches struct {
	tm           features.TokenManifest
	rows         int
	train, valid *lora.Examples
	topK, cut    int
}

// openCaches reads the training and validation caches and checks --top-k and
// --embeddings against the training cache.
func (o *fitTopOptions) openCaches(mode lora.Mode) (*topCaches, error) {
	train, err := features.OpenTokens(o.Train)
	if err != nil {
		return nil, err
	}
	tm := train.Manifest
	d := &topCaches{tm: tm, rows: train.N, topK: tm.CutTop}
	if o.given("top-k") {
		d.topK = o.TopK
	}
	switch {
	case d.topK < 1:
		return nil, usagef("--top-k %d: want the number of top blocks to train, 1 to %d", d.topK, tm.CutTop)
	case d.topK > tm.NumBlocks:
		return nil, usagef("--top-k %d: the backbone of %s has %d encoder blocks; want 1 to %d", d.topK, o.Train, tm.NumBlocks, tm.CutTop)
	case d.topK > tm.CutTop:
		return nil, usagef("--top-k %d: the cache %s holds the states entering the top %d blocks (extract --cut-top %d), too shallow for %d; extract again with --cut-top %d (or %d: the embeddings' output, which feeds every depth)",
			d.topK, o.Train, tm.CutTop, tm.CutTop, d.topK, d.topK, tm.NumBlocks)
	}
	d.cut = tm.NumBlocks - d.topK
	if o.Embeddings {
		switch {
		case mode != lora.ModeFull:
			return nil, usagef("--embeddings trains with --mode full or setfit, not %s", mode)
		case d.cut != 0:
			return nil, usagef("--embeddings needs every block trained: --top-k %d (the model's blocks) on a --cut-top %d cache; --top-k is %d", tm.NumBlocks, tm.NumBlocks, d.topK)
		case !tm.IDs:
			return nil, usagef("--embeddings: the cache %s holds no token ids (made by an older version); extract it again", o.Train)
		}
	}
	if d.train, err = headstart.CacheExamples(train, o.Train, tm.LabelNames); err != nil {
		return nil, err
	}
	if o.Mode == "setfit" {
		if err := lora.CheckSetFitLabels(d.train.Labels, tm.LabelNames); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Train, err)
		}
	}
	if o.Valid == "" {
		return d, nil
	}
	valid, err := features.OpenTokens(o.Valid)
	if err != nil {
		return nil, err
	}
	vm := valid.Manifest
	// The spec's layers are the cached block's input (--cut-top).
	differ := vm.Spec.Compare(tm.Spec)
	if vm.Backbone.SHA256 != tm.Backbone.SHA256 || vm.Backbone.TokenizerSHA256 != tm.Backbone.TokenizerSHA256 {
		differ = errors.Join(differ, fmt.Errorf("backbone %s (sha256 %s, tokenizer %s) vs %s (sha256 %s, tokenizer %s)",
			vm.Backbone.Name, vm.Backbone.SHA256, vm.Backbone.TokenizerSHA256, tm.Backbone.Name, tm.Backbone.SHA256, tm.Backbone.TokenizerSHA256))
	}
	if differ != nil {
		return nil, fmt.Errorf("--valid %s was extracted differently from --train %s: %w", o.Valid, o.Train, differ)
	}
	if d.valid, err = headstart.CacheExamples(valid, o.Valid, tm.LabelNames); err != nil {
		return nil, err
	}
	return d, nil
}

// pretrained reads the backbone's pretrained blocks (checking that it is the one the
// cache was extracted with) and sets s.Heads and, with --embeddings, s.Embeddings. It
// returns the blocks from d.cut up; the frozen blocks between the cache's cut and d.cut
// are run once, in place on d's examples.
func (o *fitTopOptions) pretrained(d *topCaches, s *lora.TrainSettings) ([]lora.Weights[float32], error) {
	tm := d.tm
	paths, err := models.ResolveRecorded(o.Model, tm.Backbone)
	if err != nil {
		return nil, err
	}
	if err := fileio.CheckOutput(o.Out, paths.Model, paths.Tokenizer); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(paths.Model)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != tm.Backbone.SHA256 {
		return nil, fmt.Errorf("%w: %s (sha256 %s) is not the backbone the cache %s was extracted with (sha256 %s)",
			head.ErrFingerprint, paths.Model, hex.EncodeToString(sum[:])[:12], o.Train, tm.Backbone.SHA256[:12])
	}
	model, err := onnx.ParseModel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", paths.Model, err)
	}
	blocks, heads, err := headstart.TopBlocks(model, tm.CutBlock)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", paths.Model, err)
	}
	if o.Embeddings {
		e, err := headstart.Embeddings(model)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", paths.Model, err)
		}
		s.Embeddings = &e
	}
	s.Heads = heads
	if frozen := blocks[:d.cut-tm.CutBlock]; len(frozen) > 0 {
		// The cache was cut deeper than the blocks to train: run the frozen ones once,
		// in place, for the states entering block cut.
		for _, ex := range []*lora.Examples{d.train, d.valid} {
			if ex != nil {
				if err := lora.Advance(ex.Hidden, frozen, heads, ex, 0); err != nil {
					return nil, err
				}
			}
		}
		blocks = blocks[d.cut-tm.CutBlock:]
	}
	return blocks, nil
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

// topHead packs a training result as a head file: one softmax layer over the mean of
// the last hidden state, carrying the trained blocks.
func topHead(res *lora.Result, tm features.TokenManifest, cut int, s lora.TrainSettings, rows int) *head.Head {
	st := res.Stack
	c, k := st.Hidden(), st.Classes()
	l := head.Dense{Out: k, In: c, W: make([]float64, k*c), B: make([]float64, k)}
	for i, v := range st.W {
		l.W[i] = float64(v)
	}
	for i, v := range st.B {
		l.B[i] = float64(v)
	}
	fp := head.FingerprintOf(tm.Manifest, c)
	fp.Pooling, fp.Layers, fp.Normalize = features.PoolMean.String(), []int{tm.NumBlocks}, false
	best := res.History[res.BestEpoch-1]
	// The head file records the course of training but not its timings, so that the same
	// training gives the same bytes.
	history := slices.Clone(res.History)
	for i := range history {
		history[i].TrainSeconds, history[i].EvalSeconds = 0, 0
	}
	tr := head.TopTraining{Mode: s.Mode.String(), HeadInit: s.HeadInit, Epochs: s.Epochs, BatchSize: s.BatchSize, LR: s.LR, WeightDecay: s.WeightDecay,
		Warmup: s.Warmup, Patience: s.Patience, Seed: s.Seed, Trainable: res.Trainable, BestEpoch: res.BestEpoch, Stop: res.Stop, History: history}
	if s.Mode == lora.ModeLoRA {
		tr.Rank, tr.Alpha, tr.Targets, tr.LoRADropout = s.LoRA.Rank, s.LoRA.Alpha, s.LoRA.Targets.String(), s.LoRA.Dropout
	}
	return &head.Head{
		Kind: head.LogReg, Output: head.Softmax, Classes: tm.LabelNames, Dim: c, Fingerprint: fp,
		Layers: []head.Dense{l},
		Summary: head.Summary{Rows: rows, Classes: k, Epochs: len(res.History), BestEpoch: res.BestEpoch,
			ValidAccuracy: best.ValidAccuracy, TrainLoss: best.TrainLoss, Loss: best.ValidLoss},
		Top: &head.Top{CutBlock: cut, NumBlocks: tm.NumBlocks, Heads: s.Heads, Blocks: res.Blocks, Embeddings: res.Embeddings, Training: tr},
	}
}

// setfitRun is what runFitTop hands runSetFit: the settings and data it checked.
type setfitRun struct {
	s            lora.TrainSettings
	blocks       []lora.Weights[float32]
	heads        int
	train, valid *lora.Examples
	tm           features.TokenManifest
	cut          int
	out          string
}

// runSetFit runs SetFit: the top blocks (and the embeddings, with --embeddings) are
// fine-tuned contrastively on pairs (lora.SetFit), then a logistic regression (C=1, as
// setfit's default LogisticRegression) is fitted on the mean-pooled embeddings the
// fine-tuned blocks compute, normalised when the backbone's model card normalises. The
// head file carries the blocks like any top-block head.
func runSetFit(ctx context.Context, o fitTopOptions, stdout, stderr io.Writer, r setfitRun) error {
	if o.given("valid") && r.valid == nil {
		return usagef("--valid: no examples")
	}
	if n := o.Threads; n > 0 {
		runtime.GOMAXPROCS(n)
	} else if n < 0 {
		return usagef("--threads %d: want 0 (all cores) or more", n)
	}
	fs := lora.SetFitSettings{Iterations: o.Iterations, Epochs: r.s.Epochs, BatchSize: r.s.BatchSize, LR: r.s.LR,
		WeightDecay: max(r.s.WeightDecay, 0), Warmup: r.s.Warmup, Heads: r.heads, Seed: r.s.Seed, Embeddings: r.s.Embeddings, Recompute: r.s.Recompute}
	if !o.given("weight-decay") {
		fs.WeightDecay = 0
	}
	if fs.Iterations < 1 {
		return usagef("--iterations %d: want at least 1 (pairs per example and kind)", fs.Iterations)
	}
	fs.Progress = setfitProgress(stderr)
	t0 := time.Now()
	res, err := lora.SetFit(ctx, r.blocks, r.train, fs)
	if err != nil {
		return err
	}
	bodySeconds := time.Since(t0).Seconds()

	h, normalize, err := setfitHead(res, r, fs, o.Train)
	if err != nil {
		return err
	}
	validAcc := -1.0
	if r.valid != nil {
		hs, err := h.Stack()
		if err != nil {
			return err
		}
		probs := make([]float32, r.valid.Len()*hs.Classes())
		if err := hs.Probs(probs, r.valid, 64); err != nil {
			return err
		}
		_, validAcc, _ = lora.Scores(probs, r.valid.Labels, hs.Classes())
	}
	if err := h.Save(r.out); err != nil {
		return err
	}
	if o.JSON {
		out := map[string]any{"out": r.out, "mode": "setfit", "classes": len(h.Classes), "top_k": r.tm.NumBlocks - r.cut,
			"trainable_params": res.Trainable, "pairs": res.Pairs, "epochs": res.History, "body_seconds": bodySeconds,
			"seconds": time.Since(t0).Seconds(), "normalize": normalize}
		if validAcc >= 0 {
			out["valid_accuracy"] = validAcc
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stderr, "fit-head: setfit on the top %d block(s)%s, %d pairs, %d rows, %d classes -> %s (body %.1fs, head %.1fs",
		r.tm.NumBlocks-r.cut, map[bool]string{true: " and the embeddings"}[res.Embeddings != nil], res.Pairs, r.train.Len(), len(h.Classes), r.out,
		bodySeconds, time.Since(t0).Seconds()-bodySeconds)
	if validAcc >= 0 {
		fmt.Fprintf(stderr, "; valid accuracy %.4f", validAcc)
	}
	fmt.Fprintln(stderr, ")")
	return nil
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

// setfitHead fits SetFit's head, setfit's LogisticRegression() on the model's sentence
// embeddings computed by the fine-tuned blocks (normalised when the backbone's model
// card normalises), and packs it with the blocks as a head file; trainPath names the
// training data in the head.
func setfitHead(res *lora.SetFitResult, r setfitRun, fs lora.SetFitSettings, trainPath string) (h *head.Head, normalize bool, err error) {
	if man, err := models.Lookup(r.tm.Backbone.Name); err == nil {
		normalize = man.Normalize
	}
	hid := res.Blocks[0].Query.In
	st, err := lora.NewStack(res.Blocks, r.heads, make([]float32, 2*hid), make([]float32, 2))
	if err != nil {
		return nil, false, err
	}
	if res.Embeddings != nil {
		if err := st.SetEmbeddings(*res.Embeddings); err != nil {
			return nil, false, err
		}
	}
	st.Normalize = normalize
	x := make([]float32, r.train.Len()*hid)
	if err := st.Pooled(x, r.train, 64); err != nil { // normalised with st.Normalize
		return nil, false, err
	}
	fp := head.FingerprintOf(r.tm.Manifest, hid)
	fp.Pooling, fp.Layers, fp.Normalize = features.PoolMean.String(), []int{r.tm.NumBlocks}, normalize
	h, err = head.FitLogReg(head.Dataset{N: r.train.Len(), D: hid, X: x, Labels: r.train.Labels, Classes: r.tm.LabelNames, Fingerprint: fp, Name: trainPath},
		head.LogRegSettings{})
	if err != nil {
		return nil, false, fmt.Errorf("setfit head: %w", err)
	}
	history := slices.Clone(res.History)
	for i := range history {
		history[i].TrainSeconds = 0
	}
	h.Top = &head.Top{CutBlock: r.cut, NumBlocks: r.tm.NumBlocks, Heads: r.heads, Blocks: res.Blocks, Embeddings: res.Embeddings,
		Training: head.TopTraining{Mode: "setfit", Epochs: fs.Epochs, BatchSize: fs.BatchSize, LR: fs.LR, WeightDecay: fs.WeightDecay,
			Warmup: fs.Warmup, Seed: fs.Seed, Trainable: res.Trainable, BestEpoch: len(res.History), Stop: fmt.Sprintf("%d pairs (%d positive), %d iterations", res.Pairs, res.Positive, fs.Iterations), History: history}}
	return h, normalize, nil
}
