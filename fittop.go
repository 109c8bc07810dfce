package headstart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/lora"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// FitTopOptions configure FitTop (pipeline fit-head --mode lora|full|reinit|setfit).
// The zero value needs Train and Out.
type FitTopOptions struct {
	// Train is the training activation cache (ExtractOptions.CutTop); Valid, optional,
	// one extracted the same way, scored after every epoch (early stopping with
	// Settings.Patience).
	Train, Valid string
	// Out is the head file to write; training checkpoints to Out+".ckpt".
	Out string
	// Model is the backbone whose top blocks train, a registry name or a directory.
	// Default: the one the cache records; its sha256 must be the cache's.
	Model string
	// TopK is the number of top blocks to train, 1 to the cache's CutTop. Default (0):
	// all the cache's. The frozen blocks between the cache's cut and the trained ones
	// run once, natively.
	TopK int
	// Embeddings also trains the embedding tables and their LayerNorm (lora.ModeFull or
	// SetFit only, every block trained, on a cache that holds the token ids).
	Embeddings bool
	// Settings train the blocks and a linear head (lora.Train). FitTop sets Heads,
	// Embeddings, HeadW/HeadB/HeadInit (HeadInit), Checkpoint, Resume and Key.
	Settings lora.TrainSettings
	// HeadInit starts the linear head from a logistic regression (C=1) fitted on the
	// frozen features ("logreg", default: linear probing then fine-tuning), or from
	// torch.nn.Linear's random init ("random").
	HeadInit string
	// Resume continues an interrupted run from its checkpoint; without it, a checkpoint
	// left by an interrupted run is an error wrapping ErrCheckpointExists.
	Resume bool
	// SetFit, when set, fine-tunes the blocks contrastively on pairs instead (lora.SetFit
	// with these settings; FitTop sets Heads and Embeddings), then fits a logistic
	// regression on the embeddings the fine-tuned blocks compute. Settings do not apply.
	SetFit *lora.SetFitSettings
}

// FitTopSummary reports what FitTop did.
type FitTopSummary struct {
	Head *head.Head // as written to Out
	TopK int        // blocks trained
	Rows int        // training rows
	// Train is lora.Train's result (nil with SetFit).
	Train *lora.Result
	// SetFit is lora.SetFit's result; BodySeconds the contrastive phase's wall time and
	// Seconds SetFit's whole (the head's fit and scoring too), Normalize whether the
	// head's embeddings are L2-normalised (the model card's), and ValidAccuracy the
	// head's accuracy on Valid (-1 without Valid).
	SetFit        *lora.SetFitResult
	BodySeconds   float64
	Seconds       float64
	Normalize     bool
	ValidAccuracy float64
}

// FitTop trains the top blocks of the backbone with a head on activation caches and
// writes the head file, which carries the trained blocks (head.Top). Every option is
// checked against the caches and the backbone before any training.
func FitTop(ctx context.Context, o FitTopOptions) (FitTopSummary, error) {
	if o.Train == "" || o.Out == "" {
		return FitTopSummary{}, fmt.Errorf("%w: FitTop needs Train and Out", ErrBadOption)
	}
	mode := o.Settings.Mode
	if o.SetFit != nil { // the blocks train fully, contrastively
		mode = lora.ModeFull
	}
	d, err := o.openCaches(mode)
	if err != nil {
		return FitTopSummary{}, err
	}
	s := o.Settings
	blocks, err := o.pretrained(d, &s)
	if err != nil {
		return FitTopSummary{}, err
	}
	if o.SetFit != nil {
		return fitSetFit(ctx, o, d, blocks, s)
	}
	switch o.HeadInit {
	case "", "logreg":
		if s.HeadW, s.HeadB, err = head.LinearProbe(blocks, s.Heads, d.train, d.tm.LabelNames, 0); err != nil {
			return FitTopSummary{}, err
		}
		s.HeadInit = "logreg"
	case "random":
	default:
		return FitTopSummary{}, badOptionf("--head-init %q: want logreg or random", o.HeadInit)
	}
	s.Checkpoint, s.Resume = o.Out+".ckpt", o.Resume
	if err := CheckCheckpoint(s.Checkpoint, s.Resume); err != nil {
		return FitTopSummary{}, err
	}
	key := sha256.New()
	for _, x := range []string{d.tm.Dataset.SHA256, d.tm.Backbone.SHA256, fmt.Sprint(d.tm.CutBlock, d.tm.MaxLen, d.rows, d.cut)} {
		key.Write([]byte(x + "\x00"))
	}
	s.Key = hex.EncodeToString(key.Sum(nil))
	res, err := lora.Train(ctx, blocks, len(d.tm.LabelNames), d.train, d.valid, s)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return FitTopSummary{}, fmt.Errorf("fit-head interrupted (finished epochs kept in %s; rerun with --resume): %w", s.Checkpoint, err)
		}
		return FitTopSummary{}, err
	}
	h := topHead(res, d.tm, d.cut, s, d.train.Len())
	if err := h.Save(o.Out); err != nil {
		return FitTopSummary{}, err
	}
	os.Remove(s.Checkpoint)
	return FitTopSummary{Head: h, TopK: d.topK, Rows: d.train.Len(), Train: res, ValidAccuracy: -1}, nil
}

// topCaches is what the top blocks train on: the training cache's manifest and rows,
// its examples and the validation examples (nil without Valid), and the blocks to
// train (the top topK; cut is the first).
type topCaches struct {
	tm           features.TokenManifest
	rows         int
	train, valid *lora.Examples
	topK, cut    int
}

// openCaches reads the training and validation caches and checks TopK and Embeddings
// against the training cache.
func (o *FitTopOptions) openCaches(mode lora.Mode) (*topCaches, error) {
	train, err := features.OpenTokens(o.Train)
	if err != nil {
		return nil, err
	}
	tm := train.Manifest
	d := &topCaches{tm: tm, rows: train.N, topK: tm.CutTop}
	if o.TopK != 0 {
		d.topK = o.TopK
	}
	switch {
	case d.topK < 1:
		return nil, badOptionf("--top-k %d: want the number of top blocks to train, 1 to %d", d.topK, tm.CutTop)
	case d.topK > tm.NumBlocks:
		return nil, badOptionf("--top-k %d: the backbone of %s has %d encoder blocks; want 1 to %d", d.topK, o.Train, tm.NumBlocks, tm.CutTop)
	case d.topK > tm.CutTop:
		return nil, badOptionf("--top-k %d: the cache %s holds the states entering the top %d blocks (extract --cut-top %d), too shallow for %d; extract again with --cut-top %d (or %d: the embeddings' output, which feeds every depth)",
			d.topK, o.Train, tm.CutTop, tm.CutTop, d.topK, d.topK, tm.NumBlocks)
	}
	d.cut = tm.NumBlocks - d.topK
	if o.Embeddings {
		switch {
		case mode != lora.ModeFull:
			return nil, badOptionf("--embeddings trains with --mode full or setfit, not %s", mode)
		case d.cut != 0:
			return nil, badOptionf("--embeddings needs every block trained: --top-k %d (the model's blocks) on a --cut-top %d cache; --top-k is %d", tm.NumBlocks, tm.NumBlocks, d.topK)
		case !tm.IDs:
			return nil, badOptionf("--embeddings: the cache %s holds no token ids (made by an older version); extract it again", o.Train)
		}
	}
	if d.train, err = CacheExamples(train, o.Train, tm.LabelNames); err != nil {
		return nil, err
	}
	if o.SetFit != nil {
		if err := lora.CheckSetFitLabels(d.train.Labels, tm.LabelNames); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Train, err)
		}
	}
	if o.Valid == "" {
		return d, nil
	}
	if d.valid, err = validCache(o.Valid, o.Train, tm); err != nil {
		return nil, err
	}
	return d, nil
}

// validCache reads the validation cache at path, which must have been extracted as the
// training cache trainPath (manifest tm) was.
func validCache(path, trainPath string, tm features.TokenManifest) (*lora.Examples, error) {
	valid, err := features.OpenTokens(path)
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
		return nil, fmt.Errorf("--valid %s was extracted differently from --train %s: %w", path, trainPath, differ)
	}
	return CacheExamples(valid, path, tm.LabelNames)
}

// pretrained reads the backbone's pretrained blocks (checking that it is the one the
// cache was extracted with) and sets s.Heads and, with Embeddings, s.Embeddings. It
// returns the blocks from d.cut up; the frozen blocks between the cache's cut and d.cut
// are run once, in place on d's examples.
func (o *FitTopOptions) pretrained(d *topCaches, s *lora.TrainSettings) ([]lora.Weights[float32], error) {
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
	blocks, heads, err := TopBlocks(model, tm.CutBlock)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", paths.Model, err)
	}
	if o.Embeddings {
		e, err := Embeddings(model)
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

// fitSetFit runs SetFit: the top blocks (and the embeddings, with Embeddings) are
// fine-tuned contrastively on pairs (lora.SetFit), then a logistic regression (C=1, as
// setfit's default LogisticRegression) is fitted on the mean-pooled embeddings the
// fine-tuned blocks compute, normalised when the backbone's model card normalises. The
// head file carries the blocks like any top-block head.
func fitSetFit(ctx context.Context, o FitTopOptions, d *topCaches, blocks []lora.Weights[float32], s lora.TrainSettings) (FitTopSummary, error) {
	fs := *o.SetFit
	fs.Heads, fs.Embeddings = s.Heads, s.Embeddings
	if fs.Iterations < 1 {
		return FitTopSummary{}, badOptionf("--iterations %d: want at least 1 (pairs per example and kind)", fs.Iterations)
	}
	t0 := time.Now()
	res, err := lora.SetFit(ctx, blocks, d.train, fs)
	if err != nil {
		return FitTopSummary{}, err
	}
	sum := FitTopSummary{TopK: d.topK, Rows: d.train.Len(), SetFit: res, BodySeconds: time.Since(t0).Seconds(), ValidAccuracy: -1}
	if sum.Head, sum.Normalize, err = setfitHead(res, d, fs, o.Train); err != nil {
		return sum, err
	}
	if d.valid != nil {
		hs, err := sum.Head.Stack()
		if err != nil {
			return sum, err
		}
		probs := make([]float32, d.valid.Len()*hs.Classes())
		if err := hs.Probs(probs, d.valid, 64); err != nil {
			return sum, err
		}
		_, sum.ValidAccuracy, _ = lora.Scores(probs, d.valid.Labels, hs.Classes())
	}
	if err := sum.Head.Save(o.Out); err != nil {
		return sum, err
	}
	sum.Seconds = time.Since(t0).Seconds()
	return sum, nil
}

// setfitHead fits SetFit's head, setfit's LogisticRegression() on the model's sentence
// embeddings computed by the fine-tuned blocks (normalised when the backbone's model
// card normalises), and packs it with the blocks as a head file; trainPath names the
// training data in the head.
func setfitHead(res *lora.SetFitResult, d *topCaches, fs lora.SetFitSettings, trainPath string) (h *head.Head, normalize bool, err error) {
	if man, err := models.Lookup(d.tm.Backbone.Name); err == nil {
		normalize = man.Normalize
	}
	hid := res.Blocks[0].Query.In
	st, err := lora.NewStack(res.Blocks, fs.Heads, make([]float32, 2*hid), make([]float32, 2))
	if err != nil {
		return nil, false, err
	}
	if res.Embeddings != nil {
		if err := st.SetEmbeddings(*res.Embeddings); err != nil {
			return nil, false, err
		}
	}
	st.Normalize = normalize
	x := make([]float32, d.train.Len()*hid)
	if err := st.Pooled(x, d.train, 64); err != nil { // normalised with st.Normalize
		return nil, false, err
	}
	fp := head.FingerprintOf(d.tm.Manifest, hid)
	fp.Pooling, fp.Layers, fp.Normalize = features.PoolMean.String(), []int{d.tm.NumBlocks}, normalize
	h, err = head.FitLogReg(head.Dataset{N: d.train.Len(), D: hid, X: x, Labels: d.train.Labels, Classes: d.tm.LabelNames, Fingerprint: fp, Name: trainPath},
		head.LogRegSettings{})
	if err != nil {
		return nil, false, fmt.Errorf("setfit head: %w", err)
	}
	history := slices.Clone(res.History)
	for i := range history {
		history[i].TrainSeconds = 0
	}
	h.Top = &head.Top{CutBlock: d.cut, NumBlocks: d.tm.NumBlocks, Heads: fs.Heads, Blocks: res.Blocks, Embeddings: res.Embeddings,
		Training: head.TopTraining{Mode: "setfit", Epochs: fs.Epochs, BatchSize: fs.BatchSize, LR: fs.LR, WeightDecay: fs.WeightDecay,
			Warmup: fs.Warmup, Seed: fs.Seed, Trainable: res.Trainable, BestEpoch: len(res.History), Stop: fmt.Sprintf("%d pairs (%d positive), %d iterations", res.Pairs, res.Positive, fs.Iterations), History: history}}
	return h, normalize, nil
}
