package head

import igemm "github.com/headstart-ml/headstart/internal/gemm"

// The matrix products of fitting go through package internal/gemm (a blocked product
// around an AVX2/FMA micro-kernel, or gonum's BLAS); these names keep its calls short.

// float is the element type of gemm.
type float = igemm.Float

type (
	operand[T float]      = igemm.Operand[T]
	packedMatrix[T float] = igemm.Packed[T]
)

// gemm computes C = op(A)·op(B) (beta 0) or C += op(A)·op(B) (beta 1); see igemm.Gemm.
func gemm[T float](tA, tB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta float64, c []T, ldc int, threads int) {
	igemm.Gemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc, threads)
}

// packMatrix packs op(X) for repeated products; see igemm.Pack.
func packMatrix[T float](left, trans bool, x []T, ld, width, depth int) *packedMatrix[T] {
	return igemm.Pack(left, trans, x, ld, width, depth)
}

// gemmOp is gemm with operands that may be packed; see igemm.Op.
func gemmOp[T float](a, b operand[T], m, n, k int, beta float64, c []T, ldc int, threads int) {
	igemm.Op(a, b, m, n, k, beta, c, ldc, threads)
}
