package experiment

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/headstart-ml/headstart/lora"
)

// toyWeights returns a random block of width c, feed-forward i.
func toyWeights(rng *rand.Rand, c, i int) lora.Weights[float32] {
	lin := func(in, out int) lora.Linear[float32] {
		l := lora.Linear[float32]{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
		for j := range l.W {
			l.W[j] = float32(rng.NormFloat64() / 4)
		}
		return l
	}
	ln := func() lora.LayerNorm[float32] {
		n := lora.LayerNorm[float32]{Gamma: make([]float32, c), Beta: make([]float32, c), Eps: 1e-12}
		for j := range n.Gamma {
			n.Gamma[j] = 1
		}
		return n
	}
	return lora.Weights[float32]{Query: lin(c, c), Key: lin(c, c), Value: lin(c, c), AttentionOutput: lin(c, c),
		Intermediate: lin(c, i), Output: lin(i, c), AttentionNorm: ln(), OutputNorm: ln()}
}

// TestAdvanced: the token data of the top k of 3 cached blocks are the states the
// frozen blocks below compute (lora.Advance), with the top k blocks; the deep data are
// not modified; the same k is computed once.
func TestAdvanced(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const c = 8
	blocks := []lora.Weights[float32]{toyWeights(rng, c, 16), toyWeights(rng, c, 16), toyWeights(rng, c, 16)}
	ex := &lora.Examples{Offsets: []int64{0, 3, 7}, Labels: []int{0, 1}}
	for range 7 * c {
		ex.Hidden = append(ex.Hidden, float32(rng.NormFloat64()))
	}
	before := slices.Clone(ex.Hidden)
	d := &Data{Tokens: &TokenData{Blocks: blocks, Heads: 2, Train: ex, Test: ex}}
	a, err := d.advanced(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Blocks) != 1 || &a.Blocks[0].Query.W[0] != &blocks[2].Query.W[0] || a.Valid != nil {
		t.Fatalf("advanced(1) has %d blocks (want the top one), valid %v", len(a.Blocks), a.Valid)
	}
	want := make([]float32, len(ex.Hidden))
	if err := lora.Advance(want, blocks[:2], 2, ex, 0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Train.Hidden, want) || !slices.Equal(a.Test.Hidden, want) || !slices.Equal(ex.Hidden, before) {
		t.Fatal("advanced(1) is not the frozen blocks' output, or it changed the cached states")
	}
	if b, _ := d.advanced(1); b != a {
		t.Fatal("advanced(1) computed twice")
	}
	if b, _ := d.advanced(3); b != d.Tokens {
		t.Fatal("advanced(3) of a 3-block cut is not the data itself")
	}
}
