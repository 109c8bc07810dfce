package lora

import (
	"fmt"
	"math"
	"slices"
)

// Examples are sequences of cached hidden states (the activation cache of pipeline
// extract --cut-top, features.TokenCache) with their classes.
type Examples struct {
	// Hidden holds every sequence's token states back to back, (tokens, C) row-major.
	Hidden []float32
	// Offsets has one entry per sequence and one more: sequence i is
	// Hidden[Offsets[i]·C : Offsets[i+1]·C].
	Offsets []int64
	// Labels are the classes, in [0, K); nil for prediction.
	Labels []int
	// IDs are the tokens' input ids, Offsets[Len()] of them, which a stack with
	// embeddings (Stack.SetEmbeddings) starts from instead of Hidden; Hidden may then
	// be nil. Token type ids are 0 (one text per sequence).
	IDs []int64
}

// Len returns the number of sequences.
func (e *Examples) Len() int { return len(e.Offsets) - 1 }

// check validates e against the hidden size c and k classes; with k < 1 the labels
// are not checked (for what reads no labels).
func (e *Examples) check(what string, c, k int) error {
	n := e.Len()
	if n < 1 {
		return fmt.Errorf("%w: %s: no sequences", ErrBadData, what)
	}
	if e.IDs != nil && int64(len(e.IDs)) != e.Offsets[n] {
		return fmt.Errorf("%w: %s: %d input ids for %d tokens", ErrBadData, what, len(e.IDs), e.Offsets[n])
	}
	if e.Offsets[0] != 0 || (e.Hidden != nil || e.IDs == nil) && int64(len(e.Hidden)) != e.Offsets[n]*int64(c) {
		return fmt.Errorf("%w: %s: offsets 0..%d do not cover %d values of width %d", ErrBadData, what, e.Offsets[n], len(e.Hidden), c)
	}
	for i := range n {
		if e.Offsets[i+1] <= e.Offsets[i] {
			return fmt.Errorf("%w: %s: sequence %d is empty", ErrBadData, what, i)
		}
	}
	if e.Labels != nil && k >= 1 {
		if len(e.Labels) != n {
			return fmt.Errorf("%w: %s: %d labels for %d sequences", ErrBadData, what, len(e.Labels), n)
		}
		for i, l := range e.Labels {
			if l < 0 || l >= k {
				return fmt.Errorf("%w: %s: sequence %d has class %d; want 0..%d", ErrBadData, what, i, l, k-1)
			}
		}
	}
	for i, v := range e.Hidden {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w: %s: token %d holds %v", ErrBadData, what, i/c, v)
		}
	}
	return nil
}

// Stack is the trained top of an encoder: blocks applied in order to the cached states,
// mean pooling over each sequence's tokens, and a linear softmax classifier,
//
//	p = softmax(W · mean_t(blocks(x)_t) + b)
//
// It computes probabilities for evaluation and prediction; Train builds one to train.
type Stack struct {
	// Blocks are the encoder blocks, bottom first.
	Blocks []*Block[float32]
	// W (K, C) row-major and B (K) are the classifier.
	W, B []float32
	// Embed, when set (SetEmbeddings), computes the input of the bottom block from
	// the examples' input ids.
	Embed *Embeddings[float32]
	// Normalize scales each pooled vector to unit L2 norm (floored at 1e-12, as
	// features.Normalize) before the classifier, for a head fitted on normalised
	// embeddings (SetFit's, on a model whose card normalises). Evaluation only:
	// training does not normalise. Default false.
	Normalize bool

	c, k int

	// Scratch of the last Forward: hs[i] is the input of block i, hs[len] the top
	// output; pooled (n, C); logits (n, K).
	hs     [][]float32
	pooled []float32
	logits []float32
	rows   Rows
	lens   []int
	ids    []int64
}

// NewStack returns a stack on merged block weights (no adapters; the weights are used,
// not copied) and a classifier w (K, C), b (K). heads is the attention head count
// (default DefaultHeads).
func NewStack(blocks []Weights[float32], heads int, w, b []float32) (*Stack, error) {
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%w: a stack needs at least one block", ErrBadWeights)
	}
	s := &Stack{W: w, B: b}
	for i, bw := range blocks {
		blk, err := NewBlock(bw, Settings{Heads: heads, FreezeBase: true})
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
		s.Blocks = append(s.Blocks, blk)
	}
	ShareCache(s.Blocks) // evaluation only: one block's activations at a time
	if err := s.init(); err != nil {
		return nil, err
	}
	return s, nil
}

// Advance runs the frozen blocks (bottom first, merged weights, heads attention heads,
// default DefaultHeads) over every sequence of ex, in batches of batch sequences
// (default 64), and writes the top block's token states into dst, laid out as
// ex.Hidden: the states a cache cut above these blocks would hold. dst may be
// ex.Hidden itself (the states are then replaced in place); otherwise ex is not
// modified. One block's activations are held at a time.
func Advance(dst []float32, blocks []Weights[float32], heads int, ex *Examples, batch int) error {
	if len(blocks) == 0 {
		copy(dst, ex.Hidden)
		return nil
	}
	var bs []*Block[float32]
	for i, bw := range blocks {
		blk, err := NewBlock(bw, Settings{Heads: heads, FreezeBase: true})
		if err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
		bs = append(bs, blk)
	}
	ShareCache(bs)
	c := bs[0].Hidden()
	unlabelled := *ex
	unlabelled.Labels = nil
	if err := unlabelled.check("examples", c, 0); err != nil {
		return err
	}
	if len(dst) != len(ex.Hidden) {
		return fmt.Errorf("%w: dst holds %d values; want %d", ErrBadData, len(dst), len(ex.Hidden))
	}
	if batch <= 0 {
		batch = 64
	}
	var a, b []float32
	var lens []int
	for lo := 0; lo < ex.Len(); lo += batch {
		hi := min(lo+batch, ex.Len())
		lens = lens[:0]
		for i := lo; i < hi; i++ {
			lens = append(lens, int(ex.Offsets[i+1]-ex.Offsets[i]))
		}
		rows := Packed(lens)
		from, to := ex.Offsets[lo]*int64(c), ex.Offsets[hi]*int64(c)
		a = append(a[:0], ex.Hidden[from:to]...)
		b = grow(b, len(a))
		for _, blk := range bs {
			blk.Forward(b, a, rows)
			a, b = b, a
		}
		copy(dst[from:to], a)
	}
	return nil
}

func (s *Stack) init() error {
	s.c = s.Blocks[0].Hidden()
	for i, b := range s.Blocks {
		if b.Hidden() != s.c {
			return fmt.Errorf("%w: block %d has hidden size %d; block 0 has %d", ErrBadWeights, i, b.Hidden(), s.c)
		}
	}
	if len(s.B) == 0 || len(s.W) != len(s.B)*s.c {
		return fmt.Errorf("%w: classifier of %d weights and %d biases; want K·%d and K with K >= 1", ErrBadWeights, len(s.W), len(s.B), s.c)
	}
	s.k = len(s.B)
	s.hs = make([][]float32, len(s.Blocks)+1)
	return nil
}

// SetEmbeddings puts BERT's embeddings (the tables w, used in place) under the
// bottom block: the stack then starts from the examples' input ids (Examples.IDs).
func (s *Stack) SetEmbeddings(w EmbeddingWeights[float32]) error {
	e, err := NewEmbeddings(w)
	if err != nil {
		return err
	}
	if w.Hidden() != s.c {
		return fmt.Errorf("%w: embeddings of width %d under blocks of hidden size %d", ErrBadWeights, w.Hidden(), s.c)
	}
	s.Embed = e
	return nil
}

// checkExamples checks ex for this stack: with embeddings, every sequence's ids must
// be in range.
func (s *Stack) checkExamples(what string, ex *Examples, k int) error {
	if err := ex.check(what, s.c, k); err != nil {
		return err
	}
	if s.Embed == nil {
		return nil
	}
	if ex.IDs == nil {
		return fmt.Errorf("%w: %s: no input ids; training or running the embeddings needs them (a cache from extract --cut-top with ids)", ErrBadData, what)
	}
	lens := make([]int, ex.Len())
	for i := range lens {
		lens[i] = int(ex.Offsets[i+1] - ex.Offsets[i])
	}
	if err := s.Embed.CheckIDs(ex.IDs, Packed(lens)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Hidden returns C; Classes K.
func (s *Stack) Hidden() int  { return s.c }
func (s *Stack) Classes() int { return s.k }

// forward runs sequences lo..hi of ex through the stack, leaving the logits in
// s.logits (and every activation for backward).
func (s *Stack) forward(ex *Examples, idx []int) {
	c := s.c
	s.lens = s.lens[:0]
	tokens := 0
	for _, i := range idx {
		l := int(ex.Offsets[i+1] - ex.Offsets[i])
		s.lens = append(s.lens, l)
		tokens += l
	}
	s.rows = Packed(s.lens)
	x := grow(s.hs[0], tokens*c)
	if s.Embed != nil {
		s.ids = s.ids[:0]
		for _, i := range idx {
			s.ids = append(s.ids, ex.IDs[ex.Offsets[i]:ex.Offsets[i+1]]...)
		}
		s.Embed.Forward(x, s.ids, nil, s.rows)
	} else {
		at := 0
		for _, i := range idx {
			n := copy(x[at:], ex.Hidden[ex.Offsets[i]*int64(c):ex.Offsets[i+1]*int64(c)])
			at += n
		}
	}
	s.hs[0] = x
	for j, b := range s.Blocks {
		s.hs[j+1] = grow(s.hs[j+1], tokens*c)
		b.Forward(s.hs[j+1], s.hs[j], s.rows)
	}
	top := s.hs[len(s.Blocks)]
	n := len(idx)
	s.pooled = grow(s.pooled, n*c)
	clear(s.pooled)
	for r, st := range s.rows.Start {
		p := s.pooled[r*c : (r+1)*c]
		for t := st; t < st+s.rows.Len[r]; t++ {
			for j, v := range top[t*c : (t+1)*c] {
				p[j] += v
			}
		}
		inv := 1 / float32(s.rows.Len[r])
		for j := range p {
			p[j] *= inv
		}
		if s.Normalize {
			var ss float64
			for _, v := range p {
				ss += float64(v) * float64(v)
			}
			inv := float32(1 / max(math.Sqrt(ss), 1e-12))
			for j := range p {
				p[j] *= inv
			}
		}
	}
	s.logits = grow(s.logits, n*s.k)
	for r := range n {
		copy(s.logits[r*s.k:(r+1)*s.k], s.B)
	}
	gemm(false, true, n, s.k, c, 1, s.pooled, c, s.W, c, 1, s.logits, s.k)
}

// Probs writes the class probabilities of every sequence of ex into dst (N, K), in
// batches of batch sequences (default 64), in evaluation mode (no dropout).
func (s *Stack) Probs(dst []float32, ex *Examples, batch int) error {
	if err := s.checkExamples("examples", ex, s.k); err != nil {
		return err
	}
	n := ex.Len()
	if len(dst) != n*s.k {
		return fmt.Errorf("%w: dst holds %d values; want %d·%d", ErrBadData, len(dst), n, s.k)
	}
	s.inBatches(ex, batch, func(lo, n int) {
		for r := range n {
			softmaxRow(dst[(lo+r)*s.k:(lo+r+1)*s.k], s.logits[r*s.k:(r+1)*s.k])
		}
	})
	return nil
}

// inBatches runs ex through the stack in evaluation mode, batch sequences at a time
// (default 64), calling done with the first sequence and the count of each batch while
// its activations are in the stack's scratch.
func (s *Stack) inBatches(ex *Examples, batch int, done func(lo, n int)) {
	if batch <= 0 {
		batch = 64
	}
	for _, b := range s.Blocks {
		b.Train = false
	}
	n := ex.Len()
	idx := make([]int, 0, batch)
	for lo := 0; lo < n; lo += batch {
		idx = idx[:0]
		for i := lo; i < min(lo+batch, n); i++ {
			idx = append(idx, i)
		}
		s.forward(ex, idx)
		done(lo, len(idx))
	}
}

// Pooled writes the mean over its tokens of the top block's output for every sequence
// of ex into dst (N, C), normalised when Normalize is set (what the classifier takes),
// in batches of batch sequences (default 64), in evaluation mode: with the pretrained
// blocks, the frozen features a linear probe fits on. ex.Labels are not read: they may
// name more classes than the stack's classifier has (SetFit's head is fitted on these
// features afterwards).
func (s *Stack) Pooled(dst []float32, ex *Examples, batch int) error {
	if err := s.checkExamples("examples", ex, 0); err != nil {
		return err
	}
	n := ex.Len()
	if len(dst) != n*s.c {
		return fmt.Errorf("%w: dst holds %d values; want %d·%d", ErrBadData, len(dst), n, s.c)
	}
	s.inBatches(ex, batch, func(lo, n int) { copy(dst[lo*s.c:], s.pooled[:n*s.c]) })
	return nil
}

// softmaxRow writes softmax(z) into p, in float64.
func softmaxRow(p, z []float32) {
	m := slices.Max(z)
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v - m))
	}
	for i, v := range z {
		p[i] = float32(math.Exp(float64(v-m)) / sum)
	}
}
