package lora_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/headstart-ml/headstart/lora"
)

// ExampleNewBlock adapts a small random block with LoRA on the query and
// value projections, runs a padded batch forward and backward, and lists
// what an optimiser would update.
func ExampleNewBlock() {
	const c, inter = 16, 32
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64()) * 0.2
		}
		return s
	}
	lin := func(in, out int) lora.Linear[float32] {
		return lora.Linear[float32]{In: in, Out: out, W: rnd(in * out), B: rnd(out)}
	}
	norm := func() lora.LayerNorm[float32] {
		g := make([]float32, c)
		for i := range g {
			g[i] = 1
		}
		return lora.LayerNorm[float32]{Gamma: g, Beta: make([]float32, c), Eps: 1e-12}
	}
	w := lora.Weights[float32]{
		Query: lin(c, c), Key: lin(c, c), Value: lin(c, c), AttentionOutput: lin(c, c),
		Intermediate: lin(c, inter), Output: lin(inter, c),
		AttentionNorm: norm(), OutputNorm: norm(),
	}
	blk, err := lora.NewBlock(w, lora.Settings{
		Heads: 4,
		LoRA:  lora.LoRA{Rank: 2, Alpha: 4, Targets: lora.TargetQuery | lora.TargetValue},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Two sequences of 3 and 2 tokens, padded to 3: (B,T,C) = (2,3,16).
	rows := lora.Padded(3, []int{3, 2})
	x := rnd(2 * 3 * c)
	y := make([]float32, len(x))
	blk.Forward(y, x, rows)

	dy := make([]float32, len(y)) // ∂loss/∂y, from the head
	dy[0] = 1
	dx := make([]float32, len(x))
	blk.ZeroGrad()
	blk.Backward(dx, dy, rows)
	for _, p := range blk.Params() {
		fmt.Println(p.Name, len(p.Value))
	}
	// Output:
	// attention.self.query.lora_A 32
	// attention.self.query.lora_B 32
	// attention.self.value.lora_A 32
	// attention.self.value.lora_B 32
}
