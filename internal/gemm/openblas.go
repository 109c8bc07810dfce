//go:build openblas && cgo

package gemm

// Built with -tags openblas (and cgo), every product runs on OpenBLAS: the imported
// package installs its Sgemm and Dgemm with blas32.Use and blas64.Use, so useKernel
// is false, Op calls gemmBLAS and Pack returns nil. See package openblas.
import _ "github.com/headstart-ml/headstart/internal/gemm/openblas"
