package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestKernel512SameBits: the AVX-512 paths (6×32 tiles in float32, 6×16 in float64)
// give the same bits as the AVX2 ones (6×16, 6×8) for every shape, transposition and
// thread count, packed or not, since each element is accumulated in the same order
// with the same fused multiply-adds; so results do not depend on which CPU ran them.
func TestKernel512SameBits(t *testing.T) {
	if !HaveKernel || !cpu.X86.HasAVX512F {
		t.Skip("no AVX-512F (or no AVX2/FMA) on this CPU: one kernel only")
	}
	t.Run("float32", testKernel512SameBits[float32])
	t.Run("float64", testKernel512SameBits[float64])
}

func testKernel512SameBits[T Float](t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	was := Have512
	defer func() { Have512 = was }()
	for _, sh := range [][3]int{{6, 32, 4}, {7, 33, 5}, {13, 77, 300}, {80, 260, 270}, {9, 530, 40}, {300, 64, 31}, {5, 48, 257}} {
		m, n, k := sh[0], sh[1], sh[2]
		a := make([]T, m*k)
		b := make([]T, k*n)
		for i := range a {
			a[i] = T(rng.NormFloat64())
		}
		for i := range b {
			b[i] = T(rng.NormFloat64())
		}
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, threads := range []int{1, 3} {
					for _, packed := range []bool{false, true} {
						lda, ldb := k, n
						if tA {
							lda = m
						}
						if tB {
							ldb = k
						}
						run := func(on bool) []T {
							Have512 = on
							c := make([]T, m*n)
							for i := range c {
								c[i] = T(i%5) - 2
							}
							ao := Operand[T]{Trans: tA, Data: a, LD: lda}
							bo := Operand[T]{Trans: tB, Data: b, LD: ldb}
							if packed {
								ao = Operand[T]{Packed: Pack(true, tA, a, lda, m, k)}
								bo = Operand[T]{Packed: Pack(false, tB, b, ldb, n, k)}
							}
							Op(ao, bo, m, n, k, 1, c, n, threads)
							return c
						}
						off, on := run(false), run(true)
						name := fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/threads=%d/packed=%v", m, n, k, tA, tB, threads, packed)
						for i := range off {
							if math.Float64bits(float64(off[i])) != math.Float64bits(float64(on[i])) {
								t.Fatalf("%s: element %d: AVX2 %v, AVX-512 %v", name, i, off[i], on[i])
							}
						}
					}
				}
			}
		}
	}
}
