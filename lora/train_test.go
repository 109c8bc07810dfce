package lora

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// A small block for training tests: C = 24, 4 heads, I = 48.
const (
	tC, tHeads, tI = 24, 4, 48
)

// toyExamples returns n sequences of 3..9 tokens whose class (of k) is carried by a
// direction added to every token of the sequence, plus noise: learnable through the
// mean pooling.
func toyExamples(seed uint64, n, k int) *Examples {
	rng := rand.New(rand.NewPCG(seed, 7))
	dirs := randSlice[float32](rand.New(rand.NewPCG(99, 1)), k*tC, 1)
	ex := &Examples{Offsets: []int64{0}}
	for range n {
		l := 3 + rng.IntN(7)
		y := rng.IntN(k)
		for range l {
			for j := range tC {
				ex.Hidden = append(ex.Hidden, float32(rng.NormFloat64())+0.8*dirs[y*tC+j])
			}
		}
		ex.Offsets = append(ex.Offsets, ex.Offsets[len(ex.Offsets)-1]+int64(l))
		ex.Labels = append(ex.Labels, y)
	}
	return ex
}

func toyBlocks(n int) []Weights[float32] {
	var out []Weights[float32]
	for i := range n {
		out = append(out, randWeights[float32](uint64(10+i), tC, tI))
	}
	return out
}

func stackValues(r *Result) [][]float32 {
	var out [][]float32
	for _, w := range r.Blocks {
		out = append(out, weightSlices(w)...)
	}
	return append(out, r.Stack.W, r.Stack.B)
}

// toySettings are the toy task's training settings for mode: batches of 16 at lr 3e-3
// and, in LoRA mode, rank 4 (alpha 8) adapters on the query, value and FFN with dropout.
func toySettings(mode Mode, epochs int, seed uint64, dropout float64) TrainSettings {
	s := TrainSettings{Mode: mode, Heads: tHeads, Epochs: epochs, BatchSize: 16, LR: 3e-3, Seed: seed}
	if mode == ModeLoRA {
		s.LoRA = LoRA{Rank: 4, Alpha: 8, Dropout: dropout, Targets: TargetQuery | TargetValue | TargetFFN}
	}
	return s
}

// mustTrain is Train with a background context; an error ends the test.
func mustTrain(t *testing.T, blocks []Weights[float32], classes int, train, valid *Examples, s TrainSettings) *Result {
	t.Helper()
	r, err := Train(context.Background(), blocks, classes, train, valid, s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestTrainLearns: every mode lowers the training loss and beats chance on held-out
// examples of the toy task; the result is deterministic for a seed.
func TestTrainLearns(t *testing.T) {
	train, valid := toyExamples(1, 240, 3), toyExamples(2, 90, 3)
	for _, mode := range []Mode{ModeLoRA, ModeFull, ModeReinit} {
		t.Run(mode.String(), func(t *testing.T) {
			s := toySettings(mode, 4, 5, 0.1)
			r := mustTrain(t, toyBlocks(2), 3, train, valid, s)
			h := r.History
			if len(h) != 4 || !(h[3].TrainLoss < 0.8*h[0].TrainLoss) {
				t.Fatalf("training loss did not fall: %+v", h)
			}
			best := h[r.BestEpoch-1]
			if best.ValidAccuracy < 0.8 {
				t.Fatalf("valid accuracy %.3f at the best epoch; want >= 0.8 (chance 0.33)", best.ValidAccuracy)
			}
			// The returned stack is the best epoch's: it reproduces its accuracy.
			probs := make([]float32, valid.Len()*3)
			if err := r.Stack.Probs(probs, valid, 7); err != nil {
				t.Fatal(err)
			}
			if _, acc, _ := Scores(probs, valid.Labels, 3); acc != best.ValidAccuracy {
				t.Fatalf("stack accuracy %v; best epoch's %v", acc, best.ValidAccuracy)
			}
			r2 := mustTrain(t, toyBlocks(2), 3, train, valid, s)
			a, b := stackValues(r), stackValues(r2)
			if i := firstDiff(a, b); i >= 0 {
				t.Fatalf("two runs with seed 5 differ in tensor %d", i)
			}
			wantTrainable := 3*tC + 3
			switch mode {
			case ModeLoRA:
				wantTrainable += 2 * (2*4*(tC+tC) + 4*(tC+tI) + 4*(tI+tC))
			default:
				wantTrainable += 2 * (4*(tC*tC+tC) + tC*tI + tI + tI*tC + tC + 4*tC)
			}
			if r.Trainable != wantTrainable {
				t.Fatalf("trainable %d; want %d", r.Trainable, wantTrainable)
			}
		})
	}
}

// TestTrainResume: a run interrupted after an epoch and resumed from its checkpoint ends
// with the same bits as an uninterrupted one.
func TestTrainResume(t *testing.T) {
	train, valid := toyExamples(3, 120, 2), toyExamples(4, 40, 2)
	s := TrainSettings{Heads: tHeads, Epochs: 3, BatchSize: 16, LR: 3e-3, Seed: 9, LoRA: LoRA{Rank: 2, Dropout: 0.2}}
	whole := mustTrain(t, toyBlocks(1), 2, train, valid, s)
	s.Checkpoint = filepath.Join(t.TempDir(), "run.ckpt")
	ctx, cancel := context.WithCancel(context.Background())
	s.Progress = func(p TrainProgress) {
		if p.Epoch == 2 && p.Step == 1 {
			cancel()
		}
	}
	if _, err := Train(ctx, toyBlocks(1), 2, train, valid, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	s.Progress, s.Resume = nil, true
	resumed := mustTrain(t, toyBlocks(1), 2, train, valid, s)
	if resumed.Resumed != 1 || len(resumed.History) != 3 {
		t.Fatalf("resumed %d epochs, history %d", resumed.Resumed, len(resumed.History))
	}
	a, b := stackValues(whole), stackValues(resumed)
	if i := firstDiff(a, b); i >= 0 {
		t.Fatalf("resumed run differs from the uninterrupted one in tensor %d", i)
	}
	// Other settings: the checkpoint is refused.
	s.LR = 1e-2
	if _, err := Train(context.Background(), toyBlocks(1), 2, train, valid, s); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("resume with another lr: %v; want ErrCheckpoint", err)
	}
}

// TestTrainDiverges: a learning rate that blows the loss up stops with ErrDiverged.
func TestTrainDiverges(t *testing.T) {
	train := toyExamples(5, 64, 2)
	_, err := Train(context.Background(), toyBlocks(1), 2, train, nil, TrainSettings{Mode: ModeFull, Heads: tHeads, LR: 1e6, Warmup: -1, Epochs: 3})
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("lr 1e6: %v; want ErrDiverged", err)
	}
}

// TestTrainBadInput: examples and settings that cannot train give clear errors.
func TestTrainBadInput(t *testing.T) {
	good := toyExamples(6, 20, 2)
	nan := toyExamples(6, 20, 2)
	nan.Hidden[5] = float32(math.NaN())
	badLabel := toyExamples(6, 20, 2)
	badLabel.Labels[3] = 2
	for _, c := range []struct {
		name  string
		ex    *Examples
		s     TrainSettings
		want  error
		class int
	}{
		{"nan state", nan, TrainSettings{}, ErrBadData, 2},
		{"label out of range", badLabel, TrainSettings{}, ErrBadData, 2},
		{"one class", good, TrainSettings{}, ErrBadData, 1},
		{"rank too large", good, TrainSettings{LoRA: LoRA{Rank: tC + 1}}, ErrBadSetting, 2},
		{"rank with full", good, TrainSettings{Mode: ModeFull, LoRA: LoRA{Rank: 4}}, ErrBadSetting, 2},
		{"negative lr", good, TrainSettings{LR: -1}, ErrBadSetting, 2},
		{"warmup 1", good, TrainSettings{Warmup: 1}, ErrBadSetting, 2},
	} {
		c.s.Heads = tHeads
		if _, err := Train(context.Background(), toyBlocks(1), c.class, c.ex, nil, c.s); !errors.Is(err, c.want) {
			t.Errorf("%s: %v; want %v", c.name, err, c.want)
		}
	}
}

// TestTrainGradient checks the whole training loss's gradient (blocks, mean pooling,
// classifier) against central differences along random directions, in float32 with a
// large step: a wrong pooling or classifier backward is off by far more.
func TestTrainGradient(t *testing.T) {
	ex := toyExamples(7, 6, 3)
	s := TrainSettings{Mode: ModeFull, Heads: tHeads}
	if err := s.setDefaults(); err != nil {
		t.Fatal(err)
	}
	tr, err := newTrainer(toyBlocks(2), 3, s)
	if err != nil {
		t.Fatal(err)
	}
	tr.train = ex
	idx := []int{0, 1, 2, 3, 4, 5}
	lossAt := func() float64 {
		tr.st.forward(ex, idx)
		var loss float64
		for r, i := range idx {
			z := tr.st.logits[r*3 : (r+1)*3]
			m := slices.Max(z)
			var sum float64
			for _, v := range z {
				sum += math.Exp(float64(v - m))
			}
			loss += math.Log(sum) - float64(z[ex.Labels[i]]-m)
		}
		return loss / float64(len(idx))
	}
	// Gradients: one step with a zero learning rate leaves the weights as they are.
	tr.s.LR, tr.warm, tr.steps = 0, 0, 1
	tr.trainStep(idx)
	rng := rand.New(rand.NewPCG(3, 3))
	for _, p := range tr.params {
		d := randSlice[float32](rng, len(p.value), 1)
		var g float64
		for i, v := range p.grad {
			g += float64(v) * float64(d[i])
		}
		const h = 1e-2
		orig := slices.Clone(p.value)
		for i := range p.value {
			p.value[i] = orig[i] + h*d[i]
		}
		up := lossAt()
		for i := range p.value {
			p.value[i] = orig[i] - h*d[i]
		}
		down := lossAt()
		copy(p.value, orig)
		fd := (up - down) / (2 * h)
		if diff := math.Abs(fd - g); !(diff <= 2e-2*math.Max(1e-2, math.Abs(fd))) {
			t.Errorf("%s: directional derivative %.6g, finite difference %.6g", p.name, g, fd)
		}
	}
}

// TestBackwardWithoutInputGradient: a nil dx gives the same parameter gradients.
func TestBackwardWithoutInputGradient(t *testing.T) {
	rows := Packed([]int{3, 5})
	rng := rand.New(rand.NewPCG(1, 1))
	x := randSlice[float32](rng, rows.Tokens()*tC, 1)
	dy := randSlice[float32](rng, len(x), 1)
	grads := func(withDX bool) [][]float32 {
		b, err := NewBlock(randWeights[float32](1, tC, tI), Settings{Heads: tHeads, LoRA: LoRA{Rank: 2, Targets: TargetQuery | TargetKey | TargetFFN}})
		if err != nil {
			t.Fatal(err)
		}
		y := make([]float32, len(x))
		b.Forward(y, x, rows)
		var dx []float32
		if withDX {
			dx = make([]float32, len(x))
		}
		b.Backward(dx, dy, rows)
		var out [][]float32
		for _, p := range b.Params() {
			out = append(out, p.Grad)
		}
		return out
	}
	a, b := grads(true), grads(false)
	if i := firstDiff(a, b); i >= 0 {
		t.Fatalf("gradient %d differs without the input gradient", i)
	}
}

// TestStackMergedEqualsAdapters: the merged stack computes what the stack with adapters
// computes in evaluation mode, and batching does not change it.
func TestStackMergedEqualsAdapters(t *testing.T) {
	ex := toyExamples(8, 30, 2)
	s := TrainSettings{Heads: tHeads, LR: 1e-2, Seed: 2, LoRA: LoRA{Rank: 4, Targets: TargetQuery | TargetValue | TargetOutput | TargetFFN}}
	if err := s.setDefaults(); err != nil {
		t.Fatal(err)
	}
	tr, err := newTrainer(toyBlocks(2), 2, s)
	if err != nil {
		t.Fatal(err)
	}
	tr.train, tr.steps = ex, 20
	for step := range 5 {
		tr.trainStep([]int{step, step + 5, step + 10, step + 20})
	}
	adapters := make([]float32, ex.Len()*2)
	if err := tr.st.Probs(adapters, ex, 8); err != nil {
		t.Fatal(err)
	}
	var blocks []Weights[float32]
	for _, b := range tr.st.Blocks {
		blocks = append(blocks, b.MergedWeights())
	}
	st, err := NewStack(blocks, tHeads, tr.st.W, tr.st.B)
	if err != nil {
		t.Fatal(err)
	}
	merged := make([]float32, len(adapters))
	if err := st.Probs(merged, ex, 64); err != nil {
		t.Fatal(err)
	}
	if d := testutil.MaxAbsDiff(adapters, merged); !(d < 1e-5) || testutil.MaxAbsDiff(adapters, make([]float32, len(adapters))) == 0 {
		t.Fatalf("merged and adapter stacks differ by %g", d)
	}
}

// TestTrainRecompute: recomputing each block's forward before its backward (one shared
// activation cache) trains to the same bits as keeping every block's activations, in
// every mode, LoRA dropout included (the recomputed forward redraws the same masks).
func TestTrainRecompute(t *testing.T) {
	train, valid := toyExamples(11, 80, 3), toyExamples(12, 30, 3)
	for _, mode := range []Mode{ModeLoRA, ModeFull, ModeReinit} {
		t.Run(mode.String(), func(t *testing.T) {
			s := toySettings(mode, 2, 4, 0.3)
			kept := mustTrain(t, toyBlocks(3), 3, train, valid, s)
			s.Recompute = true
			recomputed := mustTrain(t, toyBlocks(3), 3, train, valid, s)
			a, b := stackValues(kept), stackValues(recomputed)
			if i := firstDiff(a, b); i >= 0 {
				t.Fatalf("tensor %d differs with Recompute", i)
			}
		})
	}
}

// TestAdvance: running frozen blocks over cached states gives what the stack's own
// blocks compute (the input of the blocks above), in place or not, for any batch.
func TestAdvance(t *testing.T) {
	ex := toyExamples(13, 25, 2)
	blocks := toyBlocks(3)
	orig := slices.Clone(ex.Hidden)
	out := make([]float32, len(ex.Hidden))
	if err := Advance(out, blocks[:2], tHeads, ex, 4); err != nil {
		t.Fatal(err)
	}
	if !sameBits(ex.Hidden, orig) {
		t.Fatal("Advance modified its input")
	}
	// One sequence at a time, through two blocks by hand.
	for i := range ex.Len() {
		x := slices.Clone(ex.Hidden[ex.Offsets[i]*tC : ex.Offsets[i+1]*tC])
		rows := Packed([]int{len(x) / tC})
		for _, w := range blocks[:2] {
			b, err := NewBlock(w, Settings{Heads: tHeads, FreezeBase: true})
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(x))
			b.Forward(y, x, rows)
			x = y
		}
		got := out[ex.Offsets[i]*tC : ex.Offsets[i+1]*tC]
		for j := range x {
			// The blocks pack sequences, and the products' blocking depends on the
			// batch: agreement to float32 rounding, not bits.
			if d := math.Abs(float64(got[j] - x[j])); !(d < 1e-5) {
				t.Fatalf("sequence %d value %d: batched %v, alone %v", i, j, got[j], x[j])
			}
		}
	}
	inPlace := slices.Clone(ex.Hidden)
	ex2 := *ex
	ex2.Hidden = inPlace
	if err := Advance(inPlace, blocks[:2], tHeads, &ex2, 64); err != nil {
		t.Fatal(err)
	}
	for j := range out {
		if d := math.Abs(float64(inPlace[j] - out[j])); !(d < 1e-5) {
			t.Fatalf("in place, value %d: %v; not in place %v", j, inPlace[j], out[j])
		}
	}
	if err := Advance(out[1:], blocks[:1], tHeads, ex, 4); !errors.Is(err, ErrBadData) {
		t.Fatalf("short dst: %v; want ErrBadData", err)
	}
}
