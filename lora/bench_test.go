package lora

import (
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
