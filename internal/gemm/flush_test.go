package gemm

import (
	"math"
	"testing"

	"github.com/headstart-ml/headstart/internal/fpu"
)

// TestFlushSubnormal: float32 products on the kernels count a term below float32's
// smallest normal number (1.2e-38) as 0, through Gemm and the matrix-vector products,
// on one goroutine and several, and leave the calling thread's control word as they
// found it; float64 products keep such terms. The BLAS fallback keeps them too (it
// runs on goroutines of its own); only its control word is checked.
func TestFlushSubnormal(t *testing.T) {
	if !HaveKernel {
		t.Skip("no AVX2/FMA kernels on this CPU")
	}
	const tiny = 1e-20 // tiny·tiny = 1e-40: subnormal in float32, normal in float64
	for _, fallback := range []bool{false, true} {
		NoAssembly = fallback
		// 20×20 by 20×20: every product term is tiny² (threads=2 splits C in two
		// stripes once the flops pass the split threshold; 2·20³ does not, so also 200
		// rows).
		for _, m := range []int{20, 200} {
			const n, k = 20, 20
			a32, b32, c32 := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
			a64, b64, c64 := make([]float64, m*k), make([]float64, k*n), make([]float64, m*n)
			for i := range a32 {
				a32[i], a64[i] = tiny, tiny
			}
			for i := range b32 {
				b32[i], b64[i] = tiny, tiny
			}
			before := control()
			Gemm(false, false, m, n, k, a32, k, b32, n, 0, c32, n, 2)
			Gemm(false, false, m, n, k, a64, k, b64, n, 0, c64, n, 2)
			if after := control(); after != before {
				t.Errorf("fallback=%v m=%d: control word %#x after Gemm, %#x before", fallback, m, after, before)
			}
			for i := range c32 {
				if !fallback && c32[i] != 0 {
					t.Fatalf("fallback=%v m=%d: float32 C[%d] = %g; want 0 (subnormal terms flushed)", fallback, m, i, c32[i])
				}
				if want := k * tiny * tiny; !(math.Abs(c64[i]-want) <= 1e-12*want) {
					t.Fatalf("fallback=%v m=%d: float64 C[%d] = %g; want %g", fallback, m, i, c64[i], want)
				}
			}
		}
		z := make([]float32, 8)
		x := make([]float32, 8*40)
		w := make([]float32, 40)
		dst := make([]float32, 40)
		for i := range x {
			x[i] = tiny
		}
		for i := range w {
			w[i] = tiny
		}
		before := control()
		DotRows(z, x, 40, w)
		DotAxpyRows(dst, z, x, 40, w, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				z[i] = tiny
			}
		})
		if after := control(); after != before {
			t.Errorf("fallback=%v: control word %#x after the matrix-vector products, %#x before", fallback, after, before)
		}
		for i, v := range z {
			if v != tiny {
				t.Fatalf("fallback=%v: z[%d] = %g; want %g", fallback, i, v, float32(tiny))
			}
		}
		for j, v := range dst {
			if !fallback && v != 0 {
				t.Fatalf("fallback=%v: dst[%d] = %g; want 0 (subnormal terms flushed)", fallback, j, v)
			}
		}
		NoAssembly = false
	}
}

// control is the calling thread's control word without its sticky exception flags
// (the MXCSR's low 6 bits), which any arithmetic may set.
func control() uint32 { return fpu.Control() &^ 0x3f }
