package lora

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCosineLossGradient checks cosineLoss's gradients against central finite
// differences of its value (float64), within gradTol in the infinity norm, on pairs
// with labels 0 and 1 and one pair of nearly opposite vectors; u, v and y unchanged.
func TestCosineLossGradient(t *testing.T) {
	const n, c = 4, 7
	rng := rand.New(rand.NewPCG(3, 3))
	u, v := randSlice[float64](rng, n*c, 1), randSlice[float64](rng, n*c, 1)
	for j := range c {
		v[3*c+j] = -0.9*u[3*c+j] + 0.01*float64(j)
	}
	y := []float64{1, 0, 1, 0}
	uB, vB, yB := slices.Clone(u), slices.Clone(v), slices.Clone(y)
	du, dv := make([]float64, n*c), make([]float64, n*c)
	loss := cosineLoss(du, dv, u, v, y, n, c)
	if !sameBits(u, uB) || !sameBits(v, vB) || !sameBits(y, yB) {
		t.Fatal("cosineLoss modified its inputs")
	}
	scratchU, scratchV := make([]float64, n*c), make([]float64, n*c)
	for _, x := range []struct {
		name string
		in   []float64
		an   []float64
	}{{"u", u, du}, {"v", v, dv}} {
		checkGrad(t, x.name, x.an, numericGrad(x.in, func() float64 { return cosineLoss(scratchU, scratchV, u, v, y, n, c) }))
	}
	if !(loss > 0) {
		t.Fatalf("loss %v; want > 0", loss)
	}
}

// TestSetFitPairs: as many positive as negative pairs (iterations·N each), alternating
// positive first, each labelled by whether its classes agree, deterministic for a seed;
// oversampling without iterations; one class or a class of one example is refused.
func TestSetFitPairs(t *testing.T) {
	labels := []int{0, 1, 0, 2, 1, 2, 0}
	pairs, err := SetFitPairs(labels, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 2*3*len(labels) {
		t.Fatalf("%d pairs; want %d", len(pairs), 2*3*len(labels))
	}
	for i, p := range pairs {
		same := labels[p.A] == labels[p.B]
		if (p.Label == 1) != same || (i%2 == 0) != same || p.A > p.B {
			t.Fatalf("pair %d %+v: classes %d and %d", i, p, labels[p.A], labels[p.B])
		}
	}
	again, _ := SetFitPairs(labels, 3, 5)
	other, _ := SetFitPairs(labels, 3, 6)
	if !slices.Equal(pairs, again) || slices.Equal(pairs, other) {
		t.Fatal("pairs are not a function of the seed")
	}
	// 28 combinations with replacement: 3+1+1 same-class pairs among distinct examples
	// plus 7 self pairs = 12 positive, 16 negative; oversampling takes 16 of each.
	over, err := SetFitPairs(labels, -1, 5)
	if err != nil || len(over) != 32 {
		t.Fatalf("oversampling: %d pairs, %v; want 32", len(over), err)
	}
	for _, bad := range [][]int{{0, 0, 0}, {0, 0, 1}} {
		if _, err := SetFitPairs(bad, 20, 1); !errors.Is(err, ErrBadData) {
			t.Fatalf("labels %v: %v; want ErrBadData", bad, err)
		}
	}
}

// TestSetFitPairsMax: with maxPairs (setfit's max_pairs, max_steps times the batch
// size) the pairs come from at most maxPairs/2 distinct pairs of each kind, still
// iterations·N of each; without it, the same pairs as SetFitPairs.
func TestSetFitPairsMax(t *testing.T) {
	labels := []int{0, 1, 0, 2, 1, 2, 0, 1, 2, 0}
	all, err := SetFitPairs(labels, 4, 9)
	if err != nil {
		t.Fatal(err)
	}
	same, err := setfitPairs(labels, 4, 0, 9)
	if err != nil || !slices.Equal(all, same) {
		t.Fatalf("maxPairs 0: %v; want SetFitPairs' pairs", err)
	}
	const maxPairs = 6
	capped, err := setfitPairs(labels, 4, maxPairs, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(capped) != 2*4*len(labels) {
		t.Fatalf("%d pairs; want %d", len(capped), 2*4*len(labels))
	}
	distinct := map[float32]map[Pair]bool{0: {}, 1: {}}
	for _, p := range capped {
		if (labels[p.A] == labels[p.B]) != (p.Label == 1) {
			t.Fatalf("pair %+v mislabelled", p)
		}
		distinct[p.Label][p] = true
	}
	for y, m := range distinct {
		if len(m) != maxPairs/2 {
			t.Fatalf("label %v: %d distinct pairs; want %d", y, len(m), maxPairs/2)
		}
	}
}

// TestSetFitMaxSteps: MaxSteps stops training after that many steps, over as many
// epochs as they need, whatever Epochs says.
func TestSetFitMaxSteps(t *testing.T) {
	train := toyExamples(31, 12, 2)
	var steps, epochs int
	s := SetFitSettings{Iterations: 2, BatchSize: 8, Epochs: 5, MaxSteps: 9, LR: 2e-3, Heads: tHeads, Seed: 1,
		Progress: func(p TrainProgress) {
			if p.Done != nil {
				epochs++
			} else {
				steps++
			}
		}}
	r, err := SetFit(context.Background(), toyBlocks(2), train, s) // 48 pairs: 6 steps an epoch
	if err != nil {
		t.Fatal(err)
	}
	if steps != 9 || epochs != 2 || len(r.History) != 2 {
		t.Fatalf("%d steps over %d epochs (%d in the history); want 9 over 2", steps, epochs, len(r.History))
	}
	s.MaxSteps = -1
	if _, err := SetFit(context.Background(), toyBlocks(2), train, s); !errors.Is(err, ErrBadSetting) {
		t.Fatalf("MaxSteps -1: %v; want ErrBadSetting", err)
	}
}

// meanCos returns the mean cosine similarity of the pooled outputs of blocks over
// pairs of examples of the same class and of different classes.
func meanCos(t *testing.T, blocks []Weights[float32], ex *Examples) (same, diff float64) {
	t.Helper()
	st, err := NewStack(blocks, tHeads, make([]float32, 2*tC), make([]float32, 2))
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, ex.Len()*tC)
	if err := st.Pooled(p, ex, 16); err != nil {
		t.Fatal(err)
	}
	var ns, nd int
	for i := range ex.Len() {
		for j := i + 1; j < ex.Len(); j++ {
			var uv, uu, vv float64
			for k := range tC {
				a, b := float64(p[i*tC+k]), float64(p[j*tC+k])
				uv, uu, vv = uv+a*b, uu+a*a, vv+b*b
			}
			cos := uv / math.Sqrt(uu*vv)
			if ex.Labels[i] == ex.Labels[j] {
				same += cos
				ns++
			} else {
				diff += cos
				nd++
			}
		}
	}
	return same / float64(ns), diff / float64(nd)
}

// TestSetFitLearns: contrastive fine-tuning of two toy blocks draws examples of a class
// together: the gap between same-class and different-class cosine similarity widens; the caller's
// blocks are unchanged; the result is deterministic for a seed.
func TestSetFitLearns(t *testing.T) {
	train := toyExamples(31, 24, 2)
	blocks := toyBlocks(2)
	before := cloneAll(weightSlices(blocks[0]))
	s0, d0 := meanCos(t, blocks, train)
	s := SetFitSettings{Iterations: 5, LR: 2e-3, Heads: tHeads, Seed: 1}
	r, err := SetFit(context.Background(), blocks, train, s)
	if err != nil {
		t.Fatal(err)
	}
	checkUnchanged(t, "blocks", before, weightSlices(blocks[0]))
	s1, d1 := meanCos(t, r.Blocks, train)
	if !(s1-d1 > s0-d0+0.1) {
		t.Fatalf("same-class minus different-class cos: %.3f before, %.3f after; want a gain of 0.1", s0-d0, s1-d1)
	}
	if r.Pairs != 2*5*24 || r.Positive != 5*24 {
		t.Fatalf("%d pairs, %d positive", r.Pairs, r.Positive)
	}
	r2, _ := SetFit(context.Background(), blocks, train, s)
	if !sameBits(r.Blocks[1].Output.W, r2.Blocks[1].Output.W) {
		t.Fatal("two runs with the same seed differ")
	}
	one := toyExamples(32, 6, 2)
	one.Labels = []int{0, 0, 0, 0, 0, 1}
	if _, err := SetFit(context.Background(), blocks, one, s); !errors.Is(err, ErrBadData) {
		t.Fatalf("a class of one example: %v; want ErrBadData", err)
	}
}

// TestClipGradNorm: a gradient above the limit is scaled, every parameter by one
// factor, to the limit's norm (torch.nn.utils.clip_grad_norm_, whose 1e-6 in the
// denominator bounds the difference); one below it is left as it is.
func TestClipGradNorm(t *testing.T) {
	s := TrainSettings{Mode: ModeFull, Heads: tHeads}
	if err := s.setDefaults(); err != nil {
		t.Fatal(err)
	}
	tr, err := newTrainer(toyBlocks(2), 2, s)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	var before [][]float32
	for _, p := range tr.params {
		for i := range p.grad {
			p.grad[i] = float32(rng.NormFloat64())
		}
		before = append(before, slices.Clone(p.grad))
	}
	norm := func() float64 {
		var ss float64
		for _, p := range tr.params {
			for _, g := range p.grad {
				ss += float64(g) * float64(g)
			}
		}
		return math.Sqrt(ss)
	}
	n0 := norm()
	if got := tr.clipGradNorm(2 * n0); got != n0 {
		t.Fatalf("returned norm %v; want %v", got, n0)
	}
	for i, p := range tr.params {
		if !sameBits(p.grad, before[i]) {
			t.Fatalf("%s: a gradient below the limit changed", p.name)
		}
	}
	const limit = 1.5
	tr.clipGradNorm(limit)
	const tol = 1e-5 // float32 rounding of the scaled gradient and the 1e-6 in the denominator
	if n := norm(); !(math.Abs(n-limit) <= tol*limit) {
		t.Fatalf("norm after clipping %v; want %v", n, limit)
	}
	c := float64(tr.params[0].grad[0]) / float64(before[0][0])
	for i, p := range tr.params {
		for j, g := range p.grad {
			if want := c * float64(before[i][j]); !(math.Abs(float64(g)-want) <= tol*math.Abs(want)+1e-12) {
				t.Fatalf("%s[%d]: %v; want %v (one factor for every parameter)", p.name, j, g, want)
			}
		}
	}
}

// TestPooledIgnoresLabels: Pooled reads no labels, so examples of more classes than the
// stack's classifier has (SetFit's three-class data through the two-output stack its
// head is fitted with) pool as they do without labels.
func TestPooledIgnoresLabels(t *testing.T) {
	ex := toyExamples(5, 6, 3)
	if slices.Max(ex.Labels) < 2 {
		t.Fatalf("labels %v: want a third class", ex.Labels)
	}
	st, err := NewStack(toyBlocks(2), tHeads, make([]float32, 2*tC), make([]float32, 2))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, ex.Len()*tC)
	if err := st.Pooled(got, ex, 4); err != nil {
		t.Fatalf("Pooled with three classes on a two-class stack: %v", err)
	}
	bare := *ex
	bare.Labels = nil
	want := make([]float32, ex.Len()*tC)
	if err := st.Pooled(want, &bare, 4); err != nil {
		t.Fatal(err)
	}
	if !sameBits(got, want) {
		t.Fatal("pooled features depend on the labels")
	}
}

// TestPairGradRepeats: pairGrad, which runs each distinct example of a batch forward
// once and sums the gradient over its slots, gives the gradients of running every slot
// (repeats included) forward on its own, within float32 summation-order rounding, with
// the embeddings trained; the examples are not modified.
func TestPairGradRepeats(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 1))
	emb := EmbeddingWeights[float32]{Word: randSlice[float32](rng, 20*tC, 1), Position: randSlice[float32](rng, 12*tC, 0.3),
		TokenType: randSlice[float32](rng, 2*tC, 0.3), Norm: randNorm[float32](rng, tC)}
	ex := toyIDs(9, 5)
	s := TrainSettings{Mode: ModeFull, Heads: tHeads, Embeddings: &emb}
	if err := s.setDefaults(); err != nil {
		t.Fatal(err)
	}
	tr, err := newTrainer(toyBlocks(2), 2, s)
	if err != nil {
		t.Fatal(err)
	}
	tr.params = tr.params[:len(tr.params)-2] // no classifier, as SetFit
	ids := slices.Clone(ex.IDs)
	pairs := []Pair{{0, 0, 1}, {0, 1, 0}, {2, 0, 1}, {3, 4, 1}, {4, 4, 1}, {1, 2, 0}}
	batch := []int{5, 0, 1, 3, 2, 4}
	var buf pairBuffers
	loss := tr.pairGrad(&buf, ex, pairs, batch)
	var got [][]float32
	for _, p := range tr.params {
		got = append(got, slices.Clone(p.grad))
	}

	// Every slot on its own: 2n rows, the pairs' first examples then their second.
	n, c := len(batch), tC
	var idx []int
	var y []float32
	for _, k := range batch {
		idx = append(idx, pairs[k].A)
		y = append(y, pairs[k].Label)
	}
	for _, k := range batch {
		idx = append(idx, pairs[k].B)
	}
	for _, b := range tr.st.Blocks {
		b.ZeroGrad()
	}
	tr.st.Embed.ZeroGrad()
	tr.st.forward(ex, idx)
	d := make([]float32, 2*n*c)
	want := cosineLoss(d[:n*c], d[n*c:], tr.st.pooled[:n*c], tr.st.pooled[n*c:2*n*c], y, n, c)
	tr.backwardPooled(d)
	const tol = 1e-5 // float32 sums taken in another order
	if !(math.Abs(loss-want) <= tol*math.Abs(want)) {
		t.Fatalf("loss %v; want %v", loss, want)
	}
	var nonzero bool
	for i, p := range tr.params {
		for j, g := range p.grad {
			if !(math.Abs(float64(got[i][j]-g)) <= tol*(1+math.Abs(float64(g)))) {
				t.Fatalf("%s[%d]: %v; want %v", p.name, j, got[i][j], g)
			}
			nonzero = nonzero || g != 0
		}
	}
	if !nonzero {
		t.Fatal("every gradient is zero")
	}
	if !slices.Equal(ids, ex.IDs) {
		t.Fatal("pairGrad modified the examples")
	}
}
