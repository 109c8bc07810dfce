//go:build openblas && cgo

// Package openblas installs OpenBLAS's cblas_sgemm and cblas_dgemm as the Sgemm and
// Dgemm of gonum's blas32 and blas64 (the rest of the BLAS stays gonum's). It is the
// optional cgo BLAS of issue 4, the only cgo of headstart's training code, and is
// compiled only with the openblas build tag: package gemm then imports it
// (internal/gemm/openblas.go), and gemm, seeing an implementation other than gonum's
// installed, runs every product on it instead of its AVX2/FMA kernel, and Pack returns
// nil so that callers pass plain operands. Without the tag none of this is compiled
// and nothing needs OpenBLAS.
//
// Build and test with it (Debian: apt-get install libopenblas-dev):
//
//	go test -tags openblas ./internal/gemm/ ./lora/ ./head/
//	OPENBLAS_NUM_THREADS=2 go test -tags openblas -run '^$' -bench 'Block|Sgemm' ./lora/
//
// OpenBLAS runs its own threads, OPENBLAS_NUM_THREADS of them (all cores when unset),
// read once when the library loads; gemm's threads argument does not bound them. Set
// OPENBLAS_NUM_THREADS to GOMAXPROCS to compare with the kernel on the same cores.
// Results are OpenBLAS's: correct to gemm's tolerances, but neither bit-identical to
// the kernel's nor promised independent of the thread count.
//
// Measured on the 2-core development machine (BENCHMARKS.md, "Matrix products: pure
// Go kernel vs OpenBLAS (issue 4)"), OpenBLAS computes a lone large product 1.1-1.4x
// faster than the kernel, but the block's forward and backward (package lora) run as
// fast or faster on the kernel: OpenBLAS's threads spin between calls on the cores
// that the block's Go work needs. So the pure Go kernel stays the default.
package openblas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"math"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
)

func init() {
	blas32.Use(openBLAS{})
	blas64.Use(openBLAS{})
}

// openBLAS is gonum's BLAS with Sgemm and Dgemm on OpenBLAS.
type openBLAS struct{ gonum.Implementation }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C, row-major, with cblas_sgemm.
func (openBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !checkGemm(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc) {
		return
	}
	C.cblas_sgemm(C.CblasRowMajor, cblasTrans(tA), cblasTrans(tB), C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(unsafe.SliceData(a))), C.blasint(lda),
		(*C.float)(unsafe.Pointer(unsafe.SliceData(b))), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(unsafe.SliceData(c))), C.blasint(ldc))
}

// Dgemm is Sgemm in float64, with cblas_dgemm.
func (openBLAS) Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if !checkGemm(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc) {
		return
	}
	C.cblas_dgemm(C.CblasRowMajor, cblasTrans(tA), cblasTrans(tB), C.blasint(m), C.blasint(n), C.blasint(k),
		C.double(alpha), (*C.double)(unsafe.Pointer(unsafe.SliceData(a))), C.blasint(lda),
		(*C.double)(unsafe.Pointer(unsafe.SliceData(b))), C.blasint(ldb),
		C.double(beta), (*C.double)(unsafe.Pointer(unsafe.SliceData(c))), C.blasint(ldc))
}

// cblasTrans converts a gonum transpose flag (checked by checkGemm) to CBLAS's.
func cblasTrans(t blas.Transpose) C.enum_CBLAS_TRANSPOSE {
	if t == blas.NoTrans {
		return C.CblasNoTrans
	}
	return C.CblasTrans // real matrices: ConjTrans is Trans
}

// checkGemm panics, as gonum's Sgemm does, on arguments that gonum rejects, so that
// C never reads or writes past a slice, and on sizes beyond CBLAS's 32-bit integers.
// It reports whether there is anything to compute (m and n positive).
func checkGemm(tA, tB blas.Transpose, m, n, k, la, lda, lb, ldb, lc, ldc int) bool {
	for _, t := range []blas.Transpose{tA, tB} {
		if t != blas.NoTrans && t != blas.Trans && t != blas.ConjTrans {
			panic("openblas: bad transpose")
		}
	}
	if m < 0 || n < 0 || k < 0 {
		panic("openblas: negative dimension")
	}
	for _, v := range []int{m, n, k, lda, ldb, ldc} {
		if v > math.MaxInt32 {
			panic("openblas: dimension beyond CBLAS's 32-bit integers")
		}
	}
	aTrans, bTrans := tA != blas.NoTrans, tB != blas.NoTrans
	ar, ac := m, k // op(A) stored as (ar, ac)
	if aTrans {
		ar, ac = k, m
	}
	br, bc := k, n
	if bTrans {
		br, bc = n, k
	}
	if lda < max(1, ac) || ldb < max(1, bc) || ldc < max(1, n) {
		panic("openblas: bad leading dimension")
	}
	if m == 0 || n == 0 {
		return false
	}
	// Trivially true for an empty A or B (k = 0).
	if la < (ar-1)*lda+ac || lb < (br-1)*ldb+bc || lc < (m-1)*ldc+n {
		panic("openblas: short slice")
	}
	return true
}
