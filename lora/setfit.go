package lora

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// SetFitSettings configure SetFit, the contrastive stage of SetFit (Tunstall et al.
// 2022, "Efficient Few-Shot Learning Without Prompts"). The zero value is the setfit
// package's (1.2.0) defaults with num_iterations 20: 1 epoch over the pairs, 16 pairs a
// step, body learning rate 2e-5, weight decay 0.01 on weight matrices (setfit's
// l2_weight, which its Trainer hands to sentence-transformers' as weight_decay), the
// gradient clipped to a global L2 norm of 1 (HuggingFace Trainer's max_grad_norm), linear
// warmup over the first 10% of the steps then linear decay to 0, AdamW (β 0.9, 0.999,
// ε 1e-8).
type SetFitSettings struct {
	// Iterations is num_iterations: Iterations·N positive and as many negative pairs
	// are drawn for N examples. Default 20; a negative value means none: as many of
	// each as the larger of the two kinds has (setfit's "oversampling").
	Iterations int
	// Epochs over the pairs. Default 1.
	Epochs int
	// MaxSteps, when positive, is setfit's max_steps: training takes exactly MaxSteps
	// steps (as many epochs over the pairs as that needs, overriding Epochs), the
	// learning-rate schedule spans them, and the pairs are drawn from the first
	// MaxSteps·BatchSize/2 distinct pairs of each kind (see SetFitPairs). Default 0:
	// Epochs over all the pairs.
	MaxSteps int
	// BatchSize is the number of pairs a step. Default 16.
	BatchSize int
	// LR is the peak learning rate. Default 2e-5.
	LR float64
	// WeightDecay is AdamW's decoupled weight decay on weight matrices (not biases or
	// LayerNorms). Default 0.01 (setfit's l2_weight); negative: none.
	WeightDecay float64
	// MaxGradNorm clips each step's gradient, all trained parameters together, to this
	// L2 norm before the AdamW update, as torch.nn.utils.clip_grad_norm_ does in
	// HuggingFace Trainer (max_grad_norm). Default 1; negative: no clipping.
	MaxGradNorm float64
	// Warmup is the fraction of the steps with a linear warmup. Default 0.1; negative:
	// none.
	Warmup float64
	// Heads is the attention head count. Default DefaultHeads.
	Heads int
	// Seed seeds the pairs' order (the shuffle of the combinations and of each epoch).
	Seed uint64
	// Embeddings, when set, train with the blocks from the examples' input ids (see
	// TrainSettings.Embeddings).
	Embeddings *EmbeddingWeights[float32]
	// Recompute: see TrainSettings.Recompute.
	Recompute bool
	// Progress, when set, is called after every step and epoch.
	Progress func(TrainProgress)
}

// SetFitResult is what SetFit returns.
type SetFitResult struct {
	// Blocks are the fine-tuned blocks; Embeddings the fine-tuned tables, nil when
	// they did not train.
	Blocks     []Weights[float32]
	Embeddings *EmbeddingWeights[float32]
	// Pairs is the number of pairs an epoch; Positive how many of them are positive.
	Pairs, Positive int
	// History has one entry per epoch (the mean cosine-similarity loss).
	History []EpochStats
	// Trainable counts the trained parameters.
	Trainable int
}

// Pair is two examples and whether they share a class (Label 1) or not (0).
type Pair struct {
	A, B  int
	Label float32
}

// SetFitPairs draws SetFit's training pairs for the classes labels (one per example),
// as setfit 1.2.0's ContrastiveDataset does: every combination (i, j) with i ≤ j (an
// example paired with itself included), in a random order drawn from seed, is
// positive when the classes agree and negative otherwise; with iterations > 0,
// iterations·N of each kind are taken (cycling through each list as often as needed),
// otherwise as many of each as the larger list has; the two kinds alternate, positive
// first. It returns an error wrapping ErrBadData when pairs of both kinds cannot be
// formed: fewer than two classes, or a class with a single example (its only positive
// pair would be the example with itself).
func SetFitPairs(labels []int, iterations int, seed uint64) ([]Pair, error) {
	return setfitPairs(labels, iterations, 0, seed)
}

// setfitPairs is SetFitPairs drawing from at most maxPairs/2 distinct pairs of each
// kind when maxPairs > 0: the shuffled combinations are read only until both lists
// are that long, as setfit's ContrastiveDataset does with max_pairs (max_steps times
// the batch size) so that a large training set need not enumerate all N(N+1)/2
// combinations.
func setfitPairs(labels []int, iterations, maxPairs int, seed uint64) ([]Pair, error) {
	if err := CheckSetFitLabels(labels, nil); err != nil {
		return nil, err
	}
	n := len(labels)
	// The combinations (i, j), i ≤ j, row by row: row i starts at start[i].
	start := make([]int, n+1)
	for i := range n {
		start[i+1] = start[i] + n - i
	}
	limit := -1
	if maxPairs > 0 {
		limit = max(maxPairs/2, 1)
	}
	var pos, neg []Pair
	for _, k := range rand.New(rand.NewPCG(seed, 0x7061697273)).Perm(start[n]) { // "pairs"
		posFull, negFull := limit >= 0 && len(pos) >= limit, limit >= 0 && len(neg) >= limit
		if posFull && negFull {
			break
		}
		i := sort.SearchInts(start, k+1) - 1
		j := i + k - start[i]
		switch {
		case labels[i] == labels[j] && !posFull:
			pos = append(pos, Pair{i, j, 1})
		case labels[i] != labels[j] && !negFull:
			neg = append(neg, Pair{i, j, 0})
		}
	}
	np, nn := max(len(pos), len(neg)), max(len(pos), len(neg))
	if iterations > 0 {
		np, nn = iterations*n, iterations*n
	}
	out := make([]Pair, 0, np+nn)
	for i := range max(np, nn) {
		if i < np {
			out = append(out, pos[i%len(pos)])
		}
		if i < nn {
			out = append(out, neg[i%len(neg)])
		}
	}
	return out, nil
}

// CheckSetFitLabels returns an error wrapping ErrBadData unless labels (one class per
// example) let SetFit form positive and negative pairs: at least two classes, and at
// least two examples of each class. names, when not nil, name the classes in the
// error.
func CheckSetFitLabels(labels []int, names []string) error {
	count := make(map[int]int)
	for _, y := range labels {
		count[y]++
	}
	if len(count) < 2 {
		return fmt.Errorf("%w: SetFit needs examples of at least two classes; there are %d examples of %d class(es)", ErrBadData, len(labels), len(count))
	}
	for _, y := range slices.Sorted(maps.Keys(count)) {
		if c := count[y]; c < 2 {
			name := fmt.Sprint(y)
			if y < len(names) {
				name = fmt.Sprintf("%q", names[y])
			}
			return fmt.Errorf("%w: class %s has %d example; SetFit pairs each example with others of its class, which needs at least 2 per class", ErrBadData, name, c)
		}
	}
	return nil
}

// cosineLoss returns sentence-transformers' CosineSimilarityLoss of n pairs of
// vectors, the rows of u and v (n, C), against the labels y,
//
//	L = (1/n) Σ_b (cos(u_b, v_b) − y_b)²,   cos(u, v) = u·v / (‖u‖·‖v‖)
//
// and writes its gradients into du and dv:
//
//	∂L/∂u = (2/n)(cos − y) · (v/(‖u‖‖v‖) − cos·u/‖u‖²)
//
// (symmetrically for v). Norms are floored at 1e-8, as torch's cosine_similarity does
// with its eps. u, v and y are not modified.
func cosineLoss[F Float](du, dv, u, v, y []F, n, c int) float64 {
	var loss float64
	for b := range n {
		ub, vb := u[b*c:(b+1)*c], v[b*c:(b+1)*c]
		var uv, uu, vv float64
		for j := range ub {
			uv += float64(ub[j]) * float64(vb[j])
			uu += float64(ub[j]) * float64(ub[j])
			vv += float64(vb[j]) * float64(vb[j])
		}
		nu, nv := max(math.Sqrt(uu), 1e-8), max(math.Sqrt(vv), 1e-8)
		cos := uv / (nu * nv)
		d := cos - float64(y[b])
		loss += d * d
		g := 2 * d / float64(n)
		dub, dvb := du[b*c:(b+1)*c], dv[b*c:(b+1)*c]
		for j := range ub {
			dub[j] = F(g * (float64(vb[j])/(nu*nv) - cos*float64(ub[j])/(nu*nu)))
			dvb[j] = F(g * (float64(ub[j])/(nu*nv) - cos*float64(vb[j])/(nv*nv)))
		}
	}
	return loss / float64(n)
}

// SetFit fine-tunes the blocks (bottom first; copied, not modified) contrastively, as
// SetFit's first stage: pairs of train's examples (SetFitPairs) pass through the blocks
// and mean pooling over each sequence's tokens, and the cosine similarity of the two
// pooled vectors regresses on whether the pair shares a class (cosineLoss). The
// classifier SetFit then fits on the fine-tuned embeddings is the caller's (a logistic
// regression, package head). Cancelling ctx stops it after the current step.
func SetFit(ctx context.Context, blocks []Weights[float32], train *Examples, s SetFitSettings) (*SetFitResult, error) {
	if s.Iterations == 0 {
		s.Iterations = 20
	}
	if s.Epochs == 0 {
		s.Epochs = 1
	}
	if s.BatchSize == 0 {
		s.BatchSize = 16
	}
	if s.LR == 0 {
		s.LR = 2e-5
	}
	if s.Warmup == 0 {
		s.Warmup = 0.1
	}
	if s.MaxGradNorm == 0 {
		s.MaxGradNorm = 1
	}
	switch {
	case s.Epochs < 1:
		return nil, fmt.Errorf("%w: epochs %d; want >= 1", ErrBadSetting, s.Epochs)
	case s.BatchSize < 1:
		return nil, fmt.Errorf("%w: batch size %d; want >= 1", ErrBadSetting, s.BatchSize)
	case s.MaxSteps < 0:
		return nil, fmt.Errorf("%w: max steps %d; want >= 0 (0: no limit)", ErrBadSetting, s.MaxSteps)
	case !(s.LR > 0) || math.IsInf(s.LR, 0):
		return nil, fmt.Errorf("%w: learning rate %v; want a positive finite value", ErrBadSetting, s.LR)
	case s.Warmup >= 1 || math.IsNaN(s.Warmup):
		return nil, fmt.Errorf("%w: warmup %v; want a fraction of the steps below 1", ErrBadSetting, s.Warmup)
	case len(blocks) == 0:
		return nil, fmt.Errorf("%w: no blocks to train", ErrBadWeights)
	}
	if train.Labels == nil {
		return nil, fmt.Errorf("%w: training examples have no labels", ErrBadData)
	}
	classes := 0
	for _, y := range train.Labels {
		classes = max(classes, y+1)
	}
	pairs, err := setfitPairs(train.Labels, s.Iterations, s.MaxSteps*s.BatchSize, s.Seed)
	if err != nil {
		return nil, err
	}
	ts := TrainSettings{Mode: ModeFull, Heads: s.Heads, Epochs: s.Epochs, BatchSize: s.BatchSize, LR: s.LR,
		WeightDecay: s.WeightDecay, Warmup: s.Warmup, Seed: s.Seed, Embeddings: s.Embeddings, Recompute: s.Recompute}
	if err := ts.setDefaults(); err != nil {
		return nil, err
	}
	t, err := newTrainer(blocks, max(classes, 1), ts)
	if err != nil {
		return nil, err
	}
	t.params = t.params[:len(t.params)-2] // no classifier: SetFit's head is fitted afterwards
	if err := t.st.checkExamples("training examples", train, classes); err != nil {
		return nil, err
	}
	t.train = train
	res := &SetFitResult{Pairs: len(pairs)}
	for _, p := range pairs {
		res.Positive += int(p.Label)
	}
	perEpoch := (len(pairs) + s.BatchSize - 1) / s.BatchSize
	t.steps = perEpoch * s.Epochs
	if s.MaxSteps > 0 { // HF Trainer's max_steps: as many epochs as the steps need
		s.Epochs = (s.MaxSteps + perEpoch - 1) / perEpoch
		t.steps = s.MaxSteps
	}
	t.warm = int(math.Ceil(ts.Warmup * float64(t.steps)))
	var buf pairBuffers
	for epoch := 1; epoch <= s.Epochs; epoch++ {
		t0 := time.Now()
		perm := rand.New(rand.NewPCG(s.Seed, 0x73657466697400|uint64(epoch))).Perm(len(pairs)) // "setfit"
		var lossSum float64
		steps := min(perEpoch, t.steps-(epoch-1)*perEpoch)
		for step := range steps {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			batch := perm[step*s.BatchSize : min((step+1)*s.BatchSize, len(pairs))]
			n := len(batch)
			loss := t.pairGrad(&buf, train, pairs, batch)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("%w: the SetFit loss is %v at epoch %d, step %d; lower the learning rate (%g)", ErrDiverged, loss, epoch, step+1, s.LR)
			}
			if s.MaxGradNorm > 0 {
				t.clipGradNorm(s.MaxGradNorm)
			}
			t.adamW()
			lossSum += loss * float64(n)
			if s.Progress != nil {
				s.Progress(TrainProgress{Epoch: epoch, Epochs: s.Epochs, Step: step + 1, Steps: steps,
					Loss: lossSum / float64(min((step+1)*s.BatchSize, len(pairs)))})
			}
		}
		es := EpochStats{Epoch: epoch, TrainLoss: lossSum / float64(min(steps*s.BatchSize, len(pairs))), TrainSeconds: time.Since(t0).Seconds()}
		res.History = append(res.History, es)
		if s.Progress != nil {
			s.Progress(TrainProgress{Epoch: epoch, Epochs: s.Epochs, Step: steps, Steps: steps, Loss: es.TrainLoss, Done: &es})
		}
	}
	for _, p := range t.params {
		res.Trainable += len(p.value)
	}
	for _, b := range t.st.Blocks {
		res.Blocks = append(res.Blocks, b.MergedWeights())
	}
	if e := t.st.Embed; e != nil {
		w := e.W.clone()
		res.Embeddings = &w
	}
	return res, nil
}

// clipGradNorm scales the gradients of every trained parameter by one factor so that
// their global L2 norm is at most maxNorm, as torch.nn.utils.clip_grad_norm_ does,
//
//	‖g‖ = sqrt(Σ_p Σ_i g_pi²),   g ← g · min(1, maxNorm / (‖g‖ + 1e-6))
//
// and returns ‖g‖ before clipping.
func (t *trainer) clipGradNorm(maxNorm float64) float64 {
	var ss float64
	for _, p := range t.params {
		for _, g := range p.grad {
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	if c := maxNorm / (norm + 1e-6); c < 1 {
		for _, p := range t.params {
			for i := range p.grad {
				p.grad[i] = float32(float64(p.grad[i]) * c)
			}
		}
	}
	return norm
}

// pairBuffers are pairGrad's buffers, reused from step to step.
type pairBuffers struct {
	idx, slot, where         []int
	y, u, v, du, dv, dpooled []float32
}

// pairGrad sets the gradients of the trained parameters to those of the cosine loss
// (cosineLoss) of the pairs batch (indices into pairs of examples of train) and
// returns the loss. The batch's distinct examples run forward once each: the blocks
// have no dropout, so an example's repeats have the same output, and the gradient of
// its pooled output is the sum over its slots in the pairs (the pairs of a few
// examples repeat them often).
func (t *trainer) pairGrad(b *pairBuffers, train *Examples, pairs []Pair, batch []int) float64 {
	c, n := t.st.c, len(batch)
	if len(b.where) != train.Len() {
		b.where = make([]int, train.Len())
		for i := range b.where {
			b.where[i] = -1 // not in idx yet
		}
	}
	b.idx, b.slot, b.y = b.idx[:0], b.slot[:0], b.y[:0]
	add := func(e int) {
		if b.where[e] < 0 {
			b.where[e] = len(b.idx)
			b.idx = append(b.idx, e)
		}
		b.slot = append(b.slot, b.where[e])
	}
	for _, k := range batch {
		add(pairs[k].A)
		b.y = append(b.y, pairs[k].Label)
	}
	for _, k := range batch {
		add(pairs[k].B)
	}
	for _, e := range b.idx {
		b.where[e] = -1
	}
	for _, blk := range t.st.Blocks {
		blk.ZeroGrad()
	}
	if t.st.Embed != nil {
		t.st.Embed.ZeroGrad()
	}
	t.st.forward(train, b.idx)
	b.u, b.v = grow(b.u, n*c), grow(b.v, n*c)
	for i := range n {
		copy(b.u[i*c:(i+1)*c], t.st.pooled[b.slot[i]*c:(b.slot[i]+1)*c])
		copy(b.v[i*c:(i+1)*c], t.st.pooled[b.slot[n+i]*c:(b.slot[n+i]+1)*c])
	}
	b.du, b.dv = grow(b.du, n*c), grow(b.dv, n*c)
	loss := cosineLoss(b.du, b.dv, b.u, b.v, b.y, n, c)
	b.dpooled = grow(b.dpooled, len(b.idx)*c)
	clear(b.dpooled)
	for i := range n {
		for _, g := range [2]struct {
			d []float32
			r int
		}{{b.du[i*c : (i+1)*c], b.slot[i]}, {b.dv[i*c : (i+1)*c], b.slot[n+i]}} {
			row := b.dpooled[g.r*c : (g.r+1)*c]
			for j, x := range g.d {
				row[j] += x
			}
		}
	}
	t.backwardPooled(b.dpooled)
	return loss
}
