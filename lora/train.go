package lora

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// Mode says what of the top blocks trains.
type Mode int

const (
	// ModeLoRA trains LoRA adapters on the blocks' dense layers (TrainSettings.LoRA);
	// the blocks' own weights stay frozen.
	ModeLoRA Mode = iota
	// ModeFull trains every weight of the blocks.
	ModeFull
	// ModeReinit re-initialises the blocks as BERT initialises a new model (dense
	// weights N(0, 0.02²), biases 0, LayerNorms γ = 1, β = 0) and trains every weight:
	// Zhang et al. 2020, "Revisiting few-sample BERT fine-tuning".
	ModeReinit
)

var modeNames = []string{"lora", "full", "reinit"}

func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses lora, full or reinit.
func ParseMode(s string) (Mode, error) {
	if i := slices.Index(modeNames, s); i >= 0 {
		return Mode(i), nil
	}
	return 0, fmt.Errorf("%w: mode %q; want one of %s", ErrBadSetting, s, strings.Join(modeNames, ", "))
}

// TrainSettings configure Train. The zero value trains LoRA adapters (rank 8, α 16, on
// query and value) for 3 epochs, batch 32, learning rate 1e-3, with AdamW (β 0.9, 0.999,
// ε 1e-8, weight decay 0.01 on weight matrices), linear warmup over the first 10% of the
// steps and linear decay to 0: the recipe of HuggingFace transformers' Trainer with
// PEFT.
type TrainSettings struct {
	// Mode is what trains. Default ModeLoRA.
	Mode Mode
	// LoRA configures the adapters of ModeLoRA. Defaults: Rank 8, Alpha 16, Targets
	// query and value, Dropout 0.
	LoRA LoRA
	// Heads is the attention head count. Default DefaultHeads.
	Heads int
	// Epochs is the number of passes over the training set. Default 3.
	Epochs int
	// BatchSize is the number of sequences per step. Default 32.
	BatchSize int
	// LR is the peak learning rate. Default 1e-3 for ModeLoRA, 1e-4 otherwise.
	LR float64
	// WeightDecay is AdamW's decoupled weight decay, applied to weight matrices
	// (dense weights, adapters, the classifier), not to biases or LayerNorms. Default
	// 0.01; a negative value means none.
	WeightDecay float64
	// Warmup is the fraction of the steps over which the learning rate rises linearly
	// from 0 before it decays linearly to 0 at the last step. Default 0.1; a negative
	// value means none (decay from the first step).
	Warmup float64
	// Patience stops training after this many epochs in a row without a better
	// validation accuracy. Default 0: train every epoch. Either way, with validation
	// examples the weights of the best epoch are kept.
	Patience int
	// Seed seeds the classifier's and the adapters' initialisation, the re-initialised
	// weights, the order of the examples each epoch and the dropout.
	Seed uint64

	// Checkpoint, when set, is a file that Train rewrites atomically after every
	// epoch, with everything needed to continue; Resume continues from it (from the
	// next epoch, drawing what an uninterrupted run draws, so the result is the same).
	// Key identifies the training data in the checkpoint (a checkpoint made on other
	// data or with other settings is refused with ErrCheckpoint).
	Checkpoint string
	Resume     bool
	Key        string

	// HeadW (K, C) and HeadB (K), when set, initialise the classifier, for example
	// with a logistic regression fitted on the frozen features (linear probing then
	// fine-tuning, Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
	// Underperform Out-of-Distribution"); HeadInit names that initialisation in
	// records. Default: torch.nn.Linear's, U(−1/√C, 1/√C).
	HeadW, HeadB []float32 `json:"-"`
	HeadInit     string    `json:"head_init,omitempty"`

	// Embeddings, when set, are BERT's pretrained embedding tables (copied, not
	// modified), which then train with the blocks from the examples' input ids
	// (Examples.IDs): true full fine-tuning when the blocks are all of the encoder's.
	// ModeFull only. Default nil: the blocks start from the cached states.
	Embeddings *EmbeddingWeights[float32] `json:"-"`

	// Recompute keeps only each block's input between the forward and the backward
	// pass and runs each block's forward again just before its backward (activation
	// checkpointing per block): the activations of one block are held instead of
	// one per block, for about a third more compute on the blocks below the top.
	// The result is the same, bit for bit. Default false.
	Recompute bool `json:"-"`

	// Progress, when set, is called after every step and every epoch.
	Progress func(TrainProgress) `json:"-"`
}

// TrainProgress reports where training is.
type TrainProgress struct {
	Epoch, Epochs int     // 1-based
	Step, Steps   int     // within the epoch, 1-based
	Loss          float64 // mean training loss of the epoch so far
	// Done is set after an epoch, with its statistics.
	Done *EpochStats
}

// EpochStats are the statistics of one epoch.
type EpochStats struct {
	Epoch         int     `json:"epoch"`
	TrainLoss     float64 `json:"train_loss"`
	ValidLoss     float64 `json:"valid_loss,omitempty"`
	ValidAccuracy float64 `json:"valid_accuracy,omitempty"`
	ValidMacroF1  float64 `json:"valid_macro_f1,omitempty"`
	TrainSeconds  float64 `json:"train_seconds,omitempty"`
	EvalSeconds   float64 `json:"eval_seconds,omitempty"`
}

// Result is what Train returns.
type Result struct {
	// Stack is the trained top, ready for Probs: adapters merged, the best epoch's
	// weights when there were validation examples.
	Stack *Stack
	// Blocks are Stack's block weights (merged).
	Blocks []Weights[float32]
	// Embeddings are the trained embedding tables (TrainSettings.Embeddings); nil
	// when they did not train.
	Embeddings *EmbeddingWeights[float32]
	// History has one entry per epoch run (resumed ones included).
	History []EpochStats
	// BestEpoch is the 1-based epoch whose weights were kept.
	BestEpoch int
	// Trainable counts the trained parameters (adapters or block weights, and the
	// classifier).
	Trainable int
	// Stop says why training stopped.
	Stop string
	// Resumed is the number of epochs taken from the checkpoint.
	Resumed int
}

func (s *TrainSettings) setDefaults() error {
	if s.Epochs == 0 {
		s.Epochs = 3
	}
	if s.BatchSize == 0 {
		s.BatchSize = 32
	}
	if s.LR == 0 {
		s.LR = 1e-3
		if s.Mode != ModeLoRA {
			s.LR = 1e-4
		}
	}
	if s.WeightDecay == 0 {
		s.WeightDecay = 0.01
	}
	if s.Warmup == 0 {
		s.Warmup = 0.1
	}
	if s.Mode == ModeLoRA {
		if s.LoRA.Rank == 0 {
			s.LoRA.Rank = 8
		}
		if s.LoRA.Alpha == 0 {
			s.LoRA.Alpha = 16
		}
		if s.LoRA.Targets == 0 {
			s.LoRA.Targets = TargetQuery | TargetValue
		}
	}
	switch {
	case s.Mode < ModeLoRA || s.Mode > ModeReinit:
		return fmt.Errorf("%w: mode %v; want one of %s", ErrBadSetting, s.Mode, strings.Join(modeNames, ", "))
	case s.Mode != ModeLoRA && s.LoRA.Rank > 0:
		return fmt.Errorf("%w: LoRA rank %d with mode %v; adapters go with mode lora", ErrBadSetting, s.LoRA.Rank, s.Mode)
	case s.Epochs < 1:
		return fmt.Errorf("%w: epochs %d; want >= 1", ErrBadSetting, s.Epochs)
	case s.BatchSize < 1:
		return fmt.Errorf("%w: batch size %d; want >= 1", ErrBadSetting, s.BatchSize)
	case !(s.LR > 0) || math.IsInf(s.LR, 0):
		return fmt.Errorf("%w: learning rate %v; want a positive finite value", ErrBadSetting, s.LR)
	case s.Warmup >= 1 || math.IsNaN(s.Warmup):
		return fmt.Errorf("%w: warmup %v; want a fraction of the steps below 1", ErrBadSetting, s.Warmup)
	case s.Patience < 0:
		return fmt.Errorf("%w: patience %d; want >= 0", ErrBadSetting, s.Patience)
	}
	if s.WeightDecay < 0 {
		s.WeightDecay = 0
	}
	if s.Warmup < 0 {
		s.Warmup = 0
	}
	return nil
}

// tparam is one trainable tensor with its AdamW state.
type tparam struct {
	name       string
	value      []float32
	grad       []float32
	m, v       []float32
	decay      bool
	best       []float32
	blockIndex int // -1: the classifier
}

// trainer holds a training run.
type trainer struct {
	s            TrainSettings
	st           *Stack
	params       []*tparam
	gW, gB       []float32
	dlogits      []float32
	dpooled      []float32
	grads        [][]float32 // per block output, backward scratch
	dxs          [][]float32 // per block input, backward scratch
	step         int         // optimiser steps done (global)
	steps        int         // total steps
	warm         int         // warmup steps
	bestEpoch    int
	bestAcc      float64
	bestLoss     float64
	badEpochs    int
	history      []EpochStats
	hasValid     bool
	train, valid *Examples
}

// Train trains the top blocks, whose pretrained weights are blocks (bottom first; they
// are copied, not modified), with a linear softmax classifier over the mean of the top
// block's token states, on train (every example labelled, classes in [0, classes)), and
// evaluates on valid (optional) after every epoch. See TrainSettings for the recipe.
//
// Cancelling ctx stops training after the current step with ctx's error; with a
// Checkpoint the last finished epoch is kept there. A NaN or infinite loss stops it
// with ErrDiverged; the checkpoint (if any) keeps the last finished epoch.
func Train(ctx context.Context, blocks []Weights[float32], classes int, train, valid *Examples, s TrainSettings) (*Result, error) {
	if err := s.setDefaults(); err != nil {
		return nil, err
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%w: no blocks to train", ErrBadWeights)
	}
	if classes < 2 {
		return nil, fmt.Errorf("%w: %d classes; want at least 2", ErrBadData, classes)
	}
	if s.Embeddings != nil && s.Mode != ModeFull {
		return nil, fmt.Errorf("%w: embeddings train with mode full, not %v", ErrBadSetting, s.Mode)
	}
	t, err := newTrainer(blocks, classes, s)
	if err != nil {
		return nil, err
	}
	if err := t.st.checkExamples("training examples", train, classes); err != nil {
		return nil, err
	}
	if train.Labels == nil {
		return nil, fmt.Errorf("%w: training examples have no labels", ErrBadData)
	}
	if valid != nil {
		if err := t.st.checkExamples("validation examples", valid, classes); err != nil {
			return nil, err
		}
		if valid.Labels == nil {
			return nil, fmt.Errorf("%w: validation examples have no labels", ErrBadData)
		}
	}
	t.train, t.valid, t.hasValid = train, valid, valid != nil
	perEpoch := (train.Len() + s.BatchSize - 1) / s.BatchSize
	t.steps = perEpoch * s.Epochs
	t.warm = int(math.Ceil(s.Warmup * float64(t.steps)))
	res := &Result{}
	start := 0
	if s.Checkpoint != "" && s.Resume {
		if start, err = t.load(); err != nil {
			return nil, err
		}
		res.Resumed = start
	}
	stop := fmt.Sprintf("ran all %d epochs", s.Epochs)
	for epoch := start + 1; epoch <= s.Epochs; epoch++ {
		es, err := t.epoch(ctx, epoch, perEpoch)
		if err != nil {
			if errors.Is(err, ErrDiverged) && s.Checkpoint != "" && epoch > 1 {
				err = fmt.Errorf("%w; the checkpoint %s keeps epoch %d", err, s.Checkpoint, epoch-1)
			}
			return nil, err
		}
		t.history = append(t.history, es)
		if t.hasValid {
			if es.ValidAccuracy > t.bestAcc || (es.ValidAccuracy == t.bestAcc && es.ValidLoss < t.bestLoss) || t.bestEpoch == 0 {
				t.bestEpoch, t.bestAcc, t.bestLoss, t.badEpochs = epoch, es.ValidAccuracy, es.ValidLoss, 0
				for _, p := range t.params {
					p.best = append(p.best[:0], p.value...)
				}
			} else {
				t.badEpochs++
			}
		} else {
			t.bestEpoch = epoch
		}
		if s.Checkpoint != "" {
			if err := t.save(epoch); err != nil {
				return nil, err
			}
		}
		if s.Progress != nil {
			s.Progress(TrainProgress{Epoch: epoch, Epochs: s.Epochs, Step: perEpoch, Steps: perEpoch, Loss: es.TrainLoss, Done: &es})
		}
		if s.Patience > 0 && t.badEpochs >= s.Patience && epoch < s.Epochs {
			stop = fmt.Sprintf("early stopping: no better validation accuracy in %d epochs after epoch %d", s.Patience, t.bestEpoch)
			break
		}
	}
	if t.hasValid {
		for _, p := range t.params {
			copy(p.value, p.best)
		}
	}
	res.History, res.BestEpoch, res.Stop = t.history, t.bestEpoch, stop
	for _, p := range t.params {
		res.Trainable += len(p.value)
	}
	for _, b := range t.st.Blocks {
		res.Blocks = append(res.Blocks, b.MergedWeights())
	}
	if res.Stack, err = NewStack(res.Blocks, s.Heads, slices.Clone(t.st.W), slices.Clone(t.st.B)); err != nil {
		return nil, err
	}
	if e := t.st.Embed; e != nil {
		w := e.W.clone()
		res.Embeddings = &w
		if err := res.Stack.SetEmbeddings(w); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// newTrainer builds the stack to train: copies of the blocks (re-initialised for
// ModeReinit), with adapters for ModeLoRA, and a fresh classifier.
func newTrainer(blocks []Weights[float32], classes int, s TrainSettings) (*trainer, error) {
	t := &trainer{s: s, st: &Stack{}}
	reinit := rand.New(rand.NewPCG(s.Seed, 0x7265696e6974)) // "reinit"
	for i, w := range blocks {
		w = copyWeights(w)
		if s.Mode == ModeReinit {
			reinitWeights(&w, reinit)
		}
		bs := Settings{Heads: s.Heads, Seed: s.Seed + uint64(i)}
		if s.Mode == ModeLoRA {
			bs.LoRA = s.LoRA
		}
		blk, err := NewBlock(w, bs)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
		t.st.Blocks = append(t.st.Blocks, blk)
		for _, p := range blk.Params() {
			t.params = append(t.params, &tparam{name: fmt.Sprintf("blocks.%d.%s", i, p.Name), value: p.Value, grad: p.Grad,
				decay: decays(p.Name), blockIndex: i})
		}
	}
	c := t.st.Blocks[0].Hidden()
	t.st.W, t.st.B = make([]float32, classes*c), make([]float32, classes)
	if s.HeadW != nil || s.HeadB != nil {
		if len(s.HeadW) != classes*c || len(s.HeadB) != classes {
			return nil, fmt.Errorf("%w: initial classifier of %d weights and %d biases; want %d·%d and %d", ErrBadSetting, len(s.HeadW), len(s.HeadB), classes, c, classes)
		}
		copy(t.st.W, s.HeadW)
		copy(t.st.B, s.HeadB)
	} else {
		// torch.nn.Linear's initialisation: U(−1/√C, 1/√C) for weights and biases.
		rng := rand.New(rand.NewPCG(s.Seed, 0x68656164)) // "head"
		bound := 1 / math.Sqrt(float64(c))
		for i := range t.st.W {
			t.st.W[i] = float32((2*rng.Float64() - 1) * bound)
		}
		for i := range t.st.B {
			t.st.B[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
	if s.Recompute {
		ShareCache(t.st.Blocks)
	}
	if err := t.st.init(); err != nil {
		return nil, err
	}
	if s.Embeddings != nil {
		if err := t.st.SetEmbeddings(s.Embeddings.clone()); err != nil {
			return nil, err
		}
		var ps []*tparam
		for _, p := range t.st.Embed.Params() {
			ps = append(ps, &tparam{name: "embeddings." + p.Name, value: p.Value, grad: p.Grad, decay: decays(p.Name), blockIndex: -2})
		}
		t.params = append(ps, t.params...)
	}
	t.gW, t.gB = make([]float32, len(t.st.W)), make([]float32, len(t.st.B))
	t.params = append(t.params,
		&tparam{name: "classifier.weight", value: t.st.W, grad: t.gW, decay: true, blockIndex: -1},
		&tparam{name: "classifier.bias", value: t.st.B, grad: t.gB, blockIndex: -1})
	for _, p := range t.params {
		p.m, p.v = make([]float32, len(p.value)), make([]float32, len(p.value))
	}
	t.grads = make([][]float32, len(t.st.Blocks))
	t.dxs = make([][]float32, len(t.st.Blocks))
	return t, nil
}

// decays says whether AdamW decays a parameter: weight matrices and adapters, not
// biases or LayerNorms (HuggingFace Trainer's grouping).
func decays(name string) bool {
	if strings.Contains(name, "LayerNorm") {
		return false
	}
	return strings.HasSuffix(name, ".weight") || strings.HasSuffix(name, ".lora_A") || strings.HasSuffix(name, ".lora_B")
}

func copyWeights(w Weights[float32]) Weights[float32] {
	cp := func(l Linear[float32]) Linear[float32] {
		return Linear[float32]{In: l.In, Out: l.Out, W: slices.Clone(l.W), B: slices.Clone(l.B)}
	}
	cn := func(n LayerNorm[float32]) LayerNorm[float32] {
		return LayerNorm[float32]{Gamma: slices.Clone(n.Gamma), Beta: slices.Clone(n.Beta), Eps: n.Eps}
	}
	return Weights[float32]{
		Query: cp(w.Query), Key: cp(w.Key), Value: cp(w.Value), AttentionOutput: cp(w.AttentionOutput),
		Intermediate: cp(w.Intermediate), Output: cp(w.Output),
		AttentionNorm: cn(w.AttentionNorm), OutputNorm: cn(w.OutputNorm),
		RelativeBias: w.RelativeBias, // frozen: shared, not copied
	}
}

// reinitWeights draws w afresh as BertPreTrainedModel._init_weights does
// (initializer_range 0.02).
func reinitWeights(w *Weights[float32], rng *rand.Rand) {
	for _, l := range []*Linear[float32]{&w.Query, &w.Key, &w.Value, &w.AttentionOutput, &w.Intermediate, &w.Output} {
		for i := range l.W {
			l.W[i] = float32(0.02 * rng.NormFloat64())
		}
		clear(l.B)
	}
	for _, n := range []*LayerNorm[float32]{&w.AttentionNorm, &w.OutputNorm} {
		for i := range n.Gamma {
			n.Gamma[i] = 1
		}
		clear(n.Beta)
	}
}

// lrAt is the learning rate of optimiser step s (0-based), as
// transformers.get_linear_schedule_with_warmup.
func (t *trainer) lrAt(s int) float64 {
	if s < t.warm {
		return t.s.LR * float64(s) / float64(max(1, t.warm))
	}
	return t.s.LR * max(0, float64(t.steps-s)/float64(max(1, t.steps-t.warm)))
}

// epoch trains one epoch and evaluates.
func (t *trainer) epoch(ctx context.Context, epoch, perEpoch int) (EpochStats, error) {
	s := t.s
	es := EpochStats{Epoch: epoch}
	t0 := time.Now()
	n := t.train.Len()
	perm := rand.New(rand.NewPCG(s.Seed, uint64(epoch))).Perm(n)
	for j, b := range t.st.Blocks {
		b.Train = true
		b.Reseed(s.Seed ^ uint64(epoch)<<20 ^ uint64(j)<<40)
	}
	var lossSum float64
	for step := range perEpoch {
		if err := ctx.Err(); err != nil {
			return es, err
		}
		idx := perm[step*s.BatchSize : min((step+1)*s.BatchSize, n)]
		loss := t.trainStep(idx)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return es, fmt.Errorf("%w: the training loss is %v at epoch %d, step %d; lower the learning rate (%g)", ErrDiverged, loss, epoch, step+1, s.LR)
		}
		lossSum += loss * float64(len(idx))
		if s.Progress != nil {
			s.Progress(TrainProgress{Epoch: epoch, Epochs: s.Epochs, Step: step + 1, Steps: perEpoch,
				Loss: lossSum / float64(min((step+1)*s.BatchSize, n))})
		}
	}
	es.TrainLoss = lossSum / float64(n)
	es.TrainSeconds = time.Since(t0).Seconds()
	if t.hasValid {
		t1 := time.Now()
		var err error
		if es.ValidLoss, es.ValidAccuracy, es.ValidMacroF1, err = t.evaluate(t.valid); err != nil {
			return es, err
		}
		es.EvalSeconds = time.Since(t1).Seconds()
	}
	return es, nil
}

// trainStep runs one optimiser step on the examples idx and returns their mean loss.
func (t *trainer) trainStep(idx []int) float64 {
	st, c, k, n := t.st, t.st.c, t.st.k, len(idx)
	for _, b := range st.Blocks {
		b.ZeroGrad()
	}
	if st.Embed != nil {
		st.Embed.ZeroGrad()
	}
	clear(t.gW)
	clear(t.gB)
	st.forward(t.train, idx)

	// Softmax cross-entropy, mean over the batch.
	t.dlogits = grow(t.dlogits, n*k)
	var loss float64
	for r, i := range idx {
		z, d := st.logits[r*k:(r+1)*k], t.dlogits[r*k:(r+1)*k]
		m := slices.Max(z)
		var sum float64
		for _, v := range z {
			sum += math.Exp(float64(v - m))
		}
		y := t.train.Labels[i]
		loss += math.Log(sum) - float64(z[y]-m)
		for j, v := range z {
			d[j] = float32(math.Exp(float64(v-m)) / sum / float64(n))
		}
		d[y] -= 1 / float32(n)
	}
	loss /= float64(n)

	// The classifier, then the mean pooling, then the blocks top down.
	gemm(true, false, k, c, n, 1, t.dlogits, k, st.pooled, c, 1, t.gW, c)
	for r := range n {
		for j, v := range t.dlogits[r*k : (r+1)*k] {
			t.gB[j] += v
		}
	}
	t.dpooled = grow(t.dpooled, n*c)
	gemm(false, false, n, c, k, 1, t.dlogits, k, st.W, c, 0, t.dpooled, c)
	t.backwardPooled(t.dpooled)
	t.adamW()
	return loss
}

// backwardPooled takes the gradient of the loss with respect to the pooled vectors of
// the last forward, dpooled (n, C), back through the mean pooling, the blocks top down
// and the embeddings, accumulating the parameters' gradients.
func (t *trainer) backwardPooled(dpooled []float32) {
	st, c := t.st, t.st.c
	top := len(st.Blocks)
	dy := grow(t.grads[top-1], len(st.hs[top]))
	t.grads[top-1] = dy
	for r, start := range st.rows.Start {
		l := st.rows.Len[r]
		inv := 1 / float32(l)
		dp := dpooled[r*c : (r+1)*c]
		for tok := start; tok < start+l; tok++ {
			row := dy[tok*c : (tok+1)*c]
			for j, v := range dp {
				row[j] = v * inv
			}
		}
	}
	for j := top - 1; j >= 0; j-- {
		if t.s.Recompute && j < top-1 {
			// The cache holds block j+1's activations: recompute block j's, with the
			// dropout masks it drew.
			st.Blocks[j].Rewind()
			st.Blocks[j].Forward(st.hs[j+1], st.hs[j], st.rows)
		}
		var dx []float32
		if j > 0 || st.Embed != nil {
			dx = grow(t.dxs[j], len(st.hs[j]))
			clear(dx)
			t.dxs[j] = dx
		}
		st.Blocks[j].Backward(dx, dy, st.rows)
		dy = dx
	}
	if st.Embed != nil {
		st.Embed.Backward(dy, st.rows)
	}
}

// adamW applies one step of torch.optim.AdamW (β₁ 0.9, β₂ 0.999, ε 1e-8) at the
// scheduled learning rate.
func (t *trainer) adamW() {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	lr := t.lrAt(t.step)
	t.step++
	bc1 := 1 - math.Pow(b1, float64(t.step))
	bc2 := 1 - math.Pow(b2, float64(t.step))
	stepSize := lr / bc1
	sq := math.Sqrt(bc2)
	for _, p := range t.params {
		decay := float32(1)
		if p.decay {
			decay = float32(1 - lr*t.s.WeightDecay)
		}
		for i, g := range p.grad {
			m := b1*float64(p.m[i]) + (1-b1)*float64(g)
			v := b2*float64(p.v[i]) + (1-b2)*float64(g)*float64(g)
			p.m[i], p.v[i] = float32(m), float32(v)
			p.value[i] = p.value[i]*decay - float32(stepSize*m/(math.Sqrt(v)/sq+eps))
		}
	}
}

// evaluate returns the mean loss, accuracy and macro-F1 of the stack on ex.
func (t *trainer) evaluate(ex *Examples) (loss, acc, macroF1 float64, err error) {
	k := t.st.k
	probs := make([]float32, ex.Len()*k)
	if err := t.st.Probs(probs, ex, 64); err != nil {
		return 0, 0, 0, err
	}
	loss, acc, macroF1 = Scores(probs, ex.Labels, k)
	return loss, acc, macroF1, nil
}

// Scores returns the mean log-loss, the accuracy and the macro-averaged F1 (over the
// classes that occur in labels or predictions, as scikit-learn's f1_score) of the
// probabilities probs (N, K) against labels.
func Scores(probs []float32, labels []int, k int) (loss, acc, macroF1 float64) {
	tp, fp, fn := make([]int, k), make([]int, k), make([]int, k)
	for i, y := range labels {
		p := probs[i*k : (i+1)*k]
		pred := 0
		for j, v := range p {
			if v > p[pred] {
				pred = j
			}
		}
		loss -= math.Log(max(float64(p[y]), 1e-15))
		if pred == y {
			tp[y]++
			acc++
		} else {
			fp[pred]++
			fn[y]++
		}
	}
	n := float64(len(labels))
	used := 0
	for j := range k {
		if tp[j]+fp[j]+fn[j] == 0 {
			continue
		}
		used++
		if tp[j] > 0 {
			macroF1 += 2 * float64(tp[j]) / float64(2*tp[j]+fp[j]+fn[j])
		}
	}
	if used > 0 {
		macroF1 /= float64(used)
	}
	return loss / n, acc / n, macroF1
}

// checkpointFile is the header of a training checkpoint: a gob message followed, for
// every parameter in Names' order, by four gob messages (the []float32 of its value,
// AdamW's m and v, and the best epoch's value), then the SHA-256 of everything before
// it. One message per tensor keeps the encoder's buffer at one tensor.
type checkpointFile struct {
	Version   int
	Key       string
	Epoch     int
	Step      int
	Names     []string
	Sizes     []int
	BestEpoch int
	BestAcc   float64
	BestLoss  float64
	BadEpochs int
	History   []EpochStats
}

// checkpointVersion is the version of checkpointFile's layout.
const checkpointVersion = 2

// key identifies the settings and data a checkpoint continues.
func (t *trainer) key() string {
	s := t.s
	s.Progress, s.Checkpoint, s.Resume = nil, "", false
	b, _ := json.Marshal(struct {
		S       TrainSettings
		Classes int
		Blocks  int
		Train   int
		HeadW   []float32
		HeadB   []float32
		Embed   bool
	}{s, t.st.k, len(t.st.Blocks), t.train.Len(), t.s.HeadW, t.s.HeadB, t.s.Embeddings != nil})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// save writes the checkpoint of the state after epoch, atomically.
func (t *trainer) save(epoch int) error {
	ck := checkpointFile{Version: checkpointVersion, Key: t.key(), Epoch: epoch, Step: t.step, BestEpoch: t.bestEpoch,
		BestAcc: t.bestAcc, BestLoss: t.bestLoss, BadEpochs: t.badEpochs, History: t.history}
	for _, p := range t.params {
		ck.Names = append(ck.Names, p.name)
		ck.Sizes = append(ck.Sizes, len(p.value))
	}
	path := t.s.Checkpoint
	f, err := fileio.Create(path)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	enc := gob.NewEncoder(w)
	err = enc.Encode(&ck)
	for _, p := range t.params {
		for _, v := range [][]float32{p.value, p.m, p.v, p.best} {
			if err == nil {
				err = enc.Encode(v)
			}
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		_, err = f.Write(h.Sum(nil))
	}
	if err == nil {
		err = f.Commit()
	}
	if err != nil {
		return errors.Join(fmt.Errorf("checkpoint %s: %w", path, err), f.Abort())
	}
	return nil
}

// load restores the checkpoint, if there is one, and returns the epochs it holds.
func (t *trainer) load() (_ int, err error) {
	path := t.s.Checkpoint
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	size := fi.Size() - sha256.Size
	if size < 0 {
		return 0, fmt.Errorf("%w: %s is truncated", ErrCheckpoint, path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	sum := make([]byte, sha256.Size)
	if _, err := f.ReadAt(sum, size); err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if !bytes.Equal(h.Sum(nil), sum) {
		return 0, fmt.Errorf("%w: %s: checksum mismatch (corrupt or truncated); delete it to start afresh", ErrCheckpoint, path)
	}
	dec := gob.NewDecoder(bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 1<<20))
	var ck checkpointFile
	if err := dec.Decode(&ck); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrCheckpoint, path, err)
	}
	if ck.Version != checkpointVersion || ck.Key != t.key() {
		return 0, fmt.Errorf("%w: %s was made with other settings or data (or by another version); rerun with the same ones, or without resume to start afresh", ErrCheckpoint, path)
	}
	if len(ck.Names) != len(t.params) || len(ck.Sizes) != len(t.params) || ck.Epoch < 1 || ck.Epoch > t.s.Epochs {
		return 0, fmt.Errorf("%w: %s: %d tensors for %d parameters, epoch %d", ErrCheckpoint, path, len(ck.Names), len(t.params), ck.Epoch)
	}
	var buf []float32
	for i, p := range t.params {
		if ck.Names[i] != p.name || ck.Sizes[i] != len(p.value) {
			return 0, fmt.Errorf("%w: %s: tensor %d is %s of %d values; want %s of %d", ErrCheckpoint, path, i, ck.Names[i], ck.Sizes[i], p.name, len(p.value))
		}
		for j, dst := range []*[]float32{&p.value, &p.m, &p.v, &p.best} {
			buf = buf[:0]
			if err := dec.Decode(&buf); err != nil {
				return 0, fmt.Errorf("%w: %s: tensor %s: %v", ErrCheckpoint, path, p.name, err)
			}
			if j == 3 { // best: empty before the first validated epoch
				*dst = append((*dst)[:0], buf...)
				continue
			}
			if len(buf) != len(p.value) {
				return 0, fmt.Errorf("%w: %s: tensor %s holds %d values; want %d", ErrCheckpoint, path, p.name, len(buf), len(p.value))
			}
			copy(*dst, buf)
		}
	}
	t.step, t.bestEpoch, t.bestAcc, t.bestLoss, t.badEpochs, t.history = ck.Step, ck.BestEpoch, ck.BestAcc, ck.BestLoss, ck.BadEpochs, ck.History
	return ck.Epoch, nil
}
