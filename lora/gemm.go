package lora

import (
	igemm "github.com/headstart-ml/headstart/internal/gemm"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// Float is the element type of a block: float32 for training and inference,
// float64 for gradient checks (the same code, instantiated twice).
type Float interface {
	float32 | float64
}

// gemm computes C = alpha·op(A)·op(B) + beta·C, row-major, with op(A) (m,k)
// and op(B) (k,n); tA (tB) means A (B) is stored transposed, (k,m) ((n,k)).
// Every matrix product of the package goes through here. With alpha 1 and
// beta 0 or 1, or any alpha and beta 0 (C is then scaled after the product), it
// runs on package internal/gemm, the
// AVX2/FMA micro-kernel that head's solvers use (which itself defers to
// gonum's blas32 or blas64 when the CPU lacks AVX2 or another implementation,
// such as OpenBLAS through gonum.org/v1/netlib, was installed with blas32.Use);
// otherwise (the small rank-r LoRA updates that add a scaled product) on gonum's
// BLAS directly.
func gemm[F Float](tA, tB bool, m, n, k int, alpha F, a []F, lda int, b []F, ldb int, beta F, c []F, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if !plainBLAS {
		switch {
		case alpha == 1 && (beta == 0 || beta == 1):
			igemm.Gemm(tA, tB, m, n, k, a, lda, b, ldb, float64(beta), c, ldc, maxWorkers())
			return
		case beta == 0: // the scaled products of attention and LoRA: product, then scale
			igemm.Gemm(tA, tB, m, n, k, a, lda, b, ldb, 0, c, ldc, maxWorkers())
			for i := range m {
				row := c[i*ldc : i*ldc+n]
				for j := range row {
					row[j] *= alpha
				}
			}
			return
		}
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	switch a := any(a).(type) {
	case []float32:
		blas32.Implementation().Sgemm(ta, tb, m, n, k, float32(alpha), a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blas64.Implementation().Dgemm(ta, tb, m, n, k, float64(alpha), a, lda, any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// grow returns buf resized to n elements, reallocating only when its
// capacity is too small. The contents are not preserved or cleared.
func grow[F Float](buf []F, n int) []F {
	if cap(buf) < n {
		return make([]F, n)
	}
	return buf[:n]
}

// plainBLAS sends every product to gonum's BLAS (benchmarks of the two paths).
var plainBLAS bool
