package lora

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchImpls runs f twice: on the package's product (the AVX2 kernel of
// internal/gemm where the CPU has it) and on gonum's pure Go BLAS.
func benchImpls(b *testing.B, name string, f func(b *testing.B)) {
	for _, impl := range []string{"kernel", "gonum"} {
		b.Run(name+"/"+impl, func(b *testing.B) {
			plainBLAS = impl == "gonum"
			defer func() { plainBLAS = false }()
			f(b)
		})
	}
}

// all-MiniLM-L6-v2's block: C = 384, 12 heads, I = 1536.
const (
	benchC     = 384
	benchHeads = 12
	benchI     = 1536
)

// blockFlops counts the multiply-adds (×2) of the block's matrix products
// for sequences of the given lengths: per token the four C×C and two C×I
// projections, 2·(4C² + 2CI), per sequence of length L the scores and the
// context, 4·L²·C. The backward costs twice the forward (gradients of the
// input and of the weights), or once when the base weights are frozen (only
// the input's gradient; the adapters' small products are not counted).
func blockFlops(lens []int, c, inter int, frozen bool) (fwd, bwd float64) {
	for _, l := range lens {
		lin := float64(l) * 2 * float64(4*c*c+2*c*inter)
		att := 4 * float64(l*l) * float64(c)
		fwd += lin + att
		if frozen {
			bwd += lin + 2*att
		} else {
			bwd += 2*lin + 2*att
		}
	}
	return fwd, bwd
}

// BenchmarkBlock times one forward and backward of the block on B sequences
// of T tokens (packed), fully trainable and with LoRA (rank 8 on query and
// value, base frozen), and reports GFLOP/s of the counted products.
func BenchmarkBlock(b *testing.B) {
	for _, size := range []struct{ batch, seq int }{{8, 64}, {16, 128}} {
		for _, mode := range []string{"full", "lora"} {
			benchImpls(b, fmt.Sprintf("B=%d,T=%d,%s", size.batch, size.seq, mode), func(b *testing.B) {
				s := Settings{Heads: benchHeads}
				if mode == "lora" {
					s.LoRA = LoRA{Rank: 8, Alpha: 16, Targets: TargetQuery | TargetValue}
				}
				blk, err := NewBlock(randWeights[float32](1, benchC, benchI), s)
				if err != nil {
					b.Fatal(err)
				}
				lens := make([]int, size.batch)
				for i := range lens {
					lens[i] = size.seq
				}
				rows := Packed(lens)
				rng := rand.New(rand.NewPCG(1, 2))
				x := randSlice[float32](rng, rows.Tokens()*benchC, 1)
				dy := randSlice[float32](rng, len(x), 1)
				y, dx := make([]float32, len(x)), make([]float32, len(x))
				fwd, bwd := blockFlops(lens, benchC, benchI, mode == "lora")
				var tf, tb time.Duration
				b.ResetTimer()
				for b.Loop() {
					t0 := time.Now()
					blk.Forward(y, x, rows)
					t1 := time.Now()
					blk.Backward(dx, dy, rows)
					tf, tb = tf+t1.Sub(t0), tb+time.Since(t1)
				}
				n := float64(b.N)
				b.ReportMetric((fwd+bwd)*n/(tf+tb).Seconds()/1e9, "GFLOP/s")
				b.ReportMetric(fwd*n/tf.Seconds()/1e9, "fwd-GFLOP/s")
				b.ReportMetric(bwd*n/tb.Seconds()/1e9, "bwd-GFLOP/s")
				b.ReportMetric(float64(rows.Tokens())*n/(tf+tb).Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkSgemm measures the package's product and gonum's on the
// block's largest product shape, (n,C)·(C,I), as the peak the block's
// GFLOP/s compare with.
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{512, 2048} {
		benchImpls(b, fmt.Sprintf("%dx%dx%d", n, benchC, benchI), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			a := randSlice[float32](rng, n*benchC, 1)
			w := randSlice[float32](rng, benchI*benchC, 1)
			c := make([]float32, n*benchI)
			for b.Loop() {
				gemm(false, true, n, benchI, benchC, 1, a, benchC, w, benchC, 0, c, benchI)
			}
			b.ReportMetric(2*float64(n*benchC*benchI)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSetFitStep times SetFit steps (16 pairs, 32 sequences of 12 tokens) through
// six all-MiniLM-sized blocks, with the embeddings frozen (the input cached) and trained
// (a 30,522-word table: their AdamW update and gradient clearing are dense, as PyTorch's).
func BenchmarkSetFitStep(b *testing.B) {
	const rows, seqLen, vocab = 32, 12, 30522
	for _, emb := range []bool{false, true} {
		b.Run(fmt.Sprintf("embeddings=%v", emb), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(5, 5))
			blocks := make([]Weights[float32], 6)
			for i := range blocks {
				blocks[i] = randWeights[float32](uint64(i+1), benchC, benchI)
			}
			ex := &Examples{Offsets: []int64{0}}
			for i := range rows {
				ex.Offsets = append(ex.Offsets, int64((i+1)*seqLen))
				ex.Labels = append(ex.Labels, i%2)
			}
			s := SetFitSettings{Iterations: 1, BatchSize: 16, Heads: benchHeads, Seed: 1}
			if emb {
				for range rows * seqLen {
					ex.IDs = append(ex.IDs, int64(rng.IntN(vocab)))
				}
				gamma, beta := make([]float32, benchC), make([]float32, benchC)
				for i := range gamma {
					gamma[i] = 1
				}
				s.Embeddings = &EmbeddingWeights[float32]{Word: randSlice[float32](rng, vocab*benchC, 0.05),
					Position: randSlice[float32](rng, 512*benchC, 0.05), TokenType: randSlice[float32](rng, 2*benchC, 0.05),
					Norm: LayerNorm[float32]{Gamma: gamma, Beta: beta, Eps: 1e-12}}
			} else {
				ex.Hidden = randSlice[float32](rng, rows*seqLen*benchC, 1)
			}
			steps := 0
			s.Progress = func(p TrainProgress) {
				if p.Done == nil {
					steps++
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := SetFit(context.Background(), blocks, ex, s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(steps), "s/step")
		})
	}
}
