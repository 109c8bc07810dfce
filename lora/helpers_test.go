package lora

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
)

// randLinear returns a dense layer with weights U(−scale, scale) and biases
// U(−0.1, 0.1).
func randLinear[F Float](rng *rand.Rand, in, out int, scale float64) Linear[F] {
	l := Linear[F]{In: in, Out: out, W: make([]F, in*out), B: make([]F, out)}
	for i := range l.W {
		l.W[i] = F((2*rng.Float64() - 1) * scale)
	}
	for i := range l.B {
		l.B[i] = F((2*rng.Float64() - 1) * 0.1)
	}
	return l
}

func randNorm[F Float](rng *rand.Rand, c int) LayerNorm[F] {
	n := LayerNorm[F]{Gamma: make([]F, c), Beta: make([]F, c), Eps: 1e-12}
	for i := range n.Gamma {
		n.Gamma[i] = F(0.8 + 0.4*rng.Float64())
		n.Beta[i] = F((2*rng.Float64() - 1) * 0.1)
	}
	return n
}

// randWeights returns random block weights of hidden size c and
// feed-forward size inter, scaled like a trained BERT block (weights about
// 1/√In so that activations stay of order 1 and the softmax is not flat).
func randWeights[F Float](seed uint64, c, inter int) Weights[F] {
	rng := rand.New(rand.NewPCG(seed, 1))
	s, si := 2/math.Sqrt(float64(c)), 1/math.Sqrt(float64(inter))
	return Weights[F]{
		Query:           randLinear[F](rng, c, c, s),
		Key:             randLinear[F](rng, c, c, s),
		Value:           randLinear[F](rng, c, c, s),
		AttentionOutput: randLinear[F](rng, c, c, s),
		Intermediate:    randLinear[F](rng, c, inter, s),
		Output:          randLinear[F](rng, inter, c, si),
		AttentionNorm:   randNorm[F](rng, c),
		OutputNorm:      randNorm[F](rng, c),
	}
}

// convertWeights converts weights to another float type.
func convertWeights[T, F Float](w Weights[F]) Weights[T] {
	l := func(l Linear[F]) Linear[T] {
		return Linear[T]{In: l.In, Out: l.Out, W: convert[T](l.W), B: convert[T](l.B)}
	}
	n := func(n LayerNorm[F]) LayerNorm[T] {
		return LayerNorm[T]{Gamma: convert[T](n.Gamma), Beta: convert[T](n.Beta), Eps: n.Eps}
	}
	out := Weights[T]{
		Query: l(w.Query), Key: l(w.Key), Value: l(w.Value), AttentionOutput: l(w.AttentionOutput),
		Intermediate: l(w.Intermediate), Output: l(w.Output),
		AttentionNorm: n(w.AttentionNorm), OutputNorm: n(w.OutputNorm),
	}
	if r := w.RelativeBias; r != nil {
		out.RelativeBias = &RelativeBias[T]{Table: convert[T](r.Table), Buckets: r.Buckets, MaxDistance: r.MaxDistance}
	}
	return out
}

func convert[T, F Float](s []F) []T {
	if s == nil {
		return nil
	}
	out := make([]T, len(s))
	for i, v := range s {
		out[i] = T(v)
	}
	return out
}

// randSlice returns n values N(0, 1)·scale; slots outside rows (padding)
// are NaN when nanPadding, so that a block that reads them fails.
func randSlice[F Float](rng *rand.Rand, n int, scale float64) []F {
	s := make([]F, n)
	for i := range s {
		s[i] = F(rng.NormFloat64() * scale)
	}
	return s
}

// padNaN sets the padding slots (outside rows) of an (N,c) matrix to NaN.
func padNaN[F Float](m []F, rows Rows, c int) {
	in := inRows(rows, len(m)/c)
	for t, ok := range in {
		if !ok {
			for j := range c {
				m[t*c+j] = F(math.NaN())
			}
		}
	}
}

// inRows reports, per slot, whether it belongs to a sequence.
func inRows(rows Rows, slots int) []bool {
	in := make([]bool, slots)
	for b, s := range rows.Start {
		for t := s; t < s+rows.Len[b]; t++ {
			in[t] = true
		}
	}
	return in
}

// infNorm returns max_i |a_i|.
func infNorm[F Float](a []F) float64 {
	m := 0.0
	for _, v := range a {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// sameBits reports whether a and b hold identical values (NaN equal to NaN),
// for checking that inputs were not modified.
func sameBits[F Float](a, b []F) bool {
	return slices.EqualFunc(a, b, func(x, y F) bool { return x == y || (x != x && y != y) })
}

// numericGrad is the central finite-difference gradient of loss with respect to x,
// which it perturbs in place and restores.
func numericGrad(x []float64, loss func() float64) []float64 {
	orig := slices.Clone(x)
	g := fd.Gradient(nil, func(v []float64) float64 {
		copy(x, v)
		return loss()
	}, orig, &fd.Settings{Formula: fd.Central})
	copy(x, orig)
	return g
}

// firstDiff returns the index of the first tensor of a whose bits differ from b's
// (sameBits), or -1 when none does.
func firstDiff[F Float](a, b [][]F) int {
	for i := range a {
		if !sameBits(a[i], b[i]) {
			return i
		}
	}
	return -1
}

// weightSlices lists every slice of w, for checking that weights were not
// modified.
func weightSlices[F Float](w Weights[F]) [][]F {
	return [][]F{
		w.Query.W, w.Query.B, w.Key.W, w.Key.B, w.Value.W, w.Value.B,
		w.AttentionOutput.W, w.AttentionOutput.B, w.Intermediate.W, w.Intermediate.B, w.Output.W, w.Output.B,
		w.AttentionNorm.Gamma, w.AttentionNorm.Beta, w.OutputNorm.Gamma, w.OutputNorm.Beta,
	}
}

func cloneAll[F Float](ss [][]F) [][]F {
	out := make([][]F, len(ss))
	for i, s := range ss {
		out[i] = slices.Clone(s)
	}
	return out
}

func checkUnchanged[F Float](t *testing.T, what string, before, after [][]F) {
	t.Helper()
	for i := range before {
		if !sameBits(before[i], after[i]) {
			t.Errorf("%s: slice %d was modified", what, i)
		}
	}
}
