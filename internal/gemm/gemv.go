package gemm

import (
	"unsafe"

	"github.com/headstart-ml/headstart/internal/fpu"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// DotRows and AxpyRows are the two matrix-vector products of a binary logistic
// regression's objective (one weight vector): z = X·w and dst += Xᵀ·g, X row-major with
// row stride ld. With AVX2 and FMA (and gonum's BLAS in use, as for Gemm) they run in
// assembly (gemv_amd64.s), four rows at a time over the leading columns in blocks of
// two registers, the last columns and rows in Go; otherwise they call blas32 or
// blas64 Gemv. Either way the result depends only on the arguments.

// DotRows sets z[i] = Σ_j x[i·ld+j]·w[j] for i < len(z), j < len(w). x is not
// modified.
func DotRows[T Float](z, x []T, ld int, w []T) {
	m, n := len(z), len(w)
	if m == 0 {
		return
	}
	checkRows(len(x), m, n, ld)
	if !useKernel[T]() {
		gemv(false, m, n, x, ld, w, z)
		return
	}
	if is32[T]() {
		defer fpu.Restore(fpu.Flush())
	}
	nk := n &^ (kernelCols[T]() - 1)
	i := 0
	for ; i+4 <= m; i += 4 {
		dot4(nk, &x[i*ld], ld, &w[0], &z[i])
		for r := range 4 {
			row := x[(i+r)*ld : (i+r)*ld+n]
			for j := nk; j < n; j++ {
				z[i+r] += row[j] * w[j]
			}
		}
	}
	for ; i < m; i++ {
		var s T
		for j, v := range x[i*ld : i*ld+n] {
			s += v * w[j]
		}
		z[i] = s
	}
}

// AxpyRows adds Σ_i g[i]·x[i·ld+j] to dst[j] for j < len(dst), i < len(g), in row
// order. x and g are not modified.
func AxpyRows[T Float](dst, x []T, ld int, g []T) {
	m, n := len(g), len(dst)
	if m == 0 {
		return
	}
	checkRows(len(x), m, n, ld)
	if !useKernel[T]() {
		gemvT(m, n, x, ld, g, dst)
		return
	}
	if is32[T]() {
		defer fpu.Restore(fpu.Flush())
	}
	nk := n &^ (kernelCols[T]() - 1)
	i := 0
	for ; i+4 <= m; i += 4 {
		axpy4(nk, &x[i*ld], ld, &dst[0], &g[i])
		for r := range 4 {
			row := x[(i+r)*ld : (i+r)*ld+n]
			for j := nk; j < n; j++ {
				dst[j] += g[i+r] * row[j]
			}
		}
	}
	for ; i < m; i++ {
		for j, v := range x[i*ld : i*ld+n] {
			dst[j] += g[i] * v
		}
	}
}

// DotAxpyRows is DotRows, then g, then AxpyRows, in one sweep over X: for each block of
// rows [lo,hi) in turn it sets z[lo:hi] to the rows' products with w, calls g(lo, hi),
// which may rewrite z[lo:hi] (the logits become the loss's pointwise gradients), and
// adds Σ_{lo≤i<hi} z[i]·x[i·ld+j] to dst[j]. The blocks cover [0, len(z)) in order, so
// X is read from memory once, and again from the L1 cache, instead of twice:
//
//	z = X·w;  z = g(z);  dst += Xᵀ·z
//
// The result is bit for bit that of DotRows(z, x, ld, w), g(0, len(z)), AxpyRows(dst,
// x, ld, z) when g treats each row on its own and in row order. x and w are not
// modified; len(w) must equal len(dst).
func DotAxpyRows[T Float](dst, z, x []T, ld int, w []T, g func(lo, hi int)) {
	m, n := len(z), len(w)
	if n != len(dst) {
		panic("gemm: DotAxpyRows: len(w) != len(dst)")
	}
	if m == 0 {
		return
	}
	checkRows(len(x), m, n, ld)
	if !useKernel[T]() {
		// The BLAS products go row by row: blocks of them give the same sums.
		const block = 64
		for lo := 0; lo < m; lo += block {
			hi := min(lo+block, m)
			xb := x[lo*ld : (hi-1)*ld+n]
			gemv(false, hi-lo, n, xb, ld, w, z[lo:hi])
			g(lo, hi)
			gemvT(hi-lo, n, xb, ld, z[lo:hi], dst)
		}
		return
	}
	if is32[T]() {
		defer fpu.Restore(fpu.Flush())
	}
	nk := n &^ (kernelCols[T]() - 1)
	i := 0
	for ; i+4 <= m; i += 4 {
		dot4(nk, &x[i*ld], ld, &w[0], &z[i])
		for r := range 4 {
			row := x[(i+r)*ld : (i+r)*ld+n]
			for j := nk; j < n; j++ {
				z[i+r] += row[j] * w[j]
			}
		}
		g(i, i+4)
		axpy4(nk, &x[i*ld], ld, &dst[0], &z[i])
		for r := range 4 {
			row := x[(i+r)*ld : (i+r)*ld+n]
			for j := nk; j < n; j++ {
				dst[j] += z[i+r] * row[j]
			}
		}
	}
	// The last rows one at a time, after every block (AxpyRows' order).
	for ; i < m; i++ {
		row := x[i*ld : i*ld+n]
		var s T
		for j, v := range row {
			s += v * w[j]
		}
		z[i] = s
		g(i, i+1)
		for j, v := range row {
			dst[j] += z[i] * v
		}
	}
}

// DotAxpyRowsWide is DotAxpyRows in float64 on float32 rows: each value of X is
// widened to float64 (exactly) as it is read, so the result is bit for bit that of
// DotAxpyRows on a float64 copy of X, for half the memory traffic and no copy. x is
// not modified.
func DotAxpyRowsWide(dst, z []float64, x []float32, ld int, w []float64, g func(lo, hi int)) {
	m, n := len(z), len(w)
	if n != len(dst) {
		panic("gemm: DotAxpyRowsWide: len(w) != len(dst)")
	}
	if m == 0 {
		return
	}
	checkRows(len(x), m, n, ld)
	if !useKernel[float64]() {
		// A float64 copy of a block of rows at a time, through DotAxpyRows.
		const block = 64
		buf := make([]float64, min(m, block)*n)
		for lo := 0; lo < m; lo += block {
			hi := min(lo+block, m)
			for i := lo; i < hi; i++ {
				for j, v := range x[i*ld : i*ld+n] {
					buf[(i-lo)*n+j] = float64(v)
				}
			}
			DotAxpyRows(dst, z[lo:hi], buf[:(hi-lo)*n], n, w, func(a, b int) { g(lo+a, lo+b) })
		}
		return
	}
	nk := n &^ 7
	i := 0
	for ; i+4 <= m; i += 4 {
		dot4x32to64(nk, &x[i*ld], ld, &w[0], &z[i])
		for r := range 4 {
			row := x[(i+r)*ld : (i+r)*ld+n]
			for j := nk; j < n; j++ {
				z[i+r] += float64(row[j]) * w[j]
			}
		}
		g(i, i+4)
		axpy4x32to64(nk, &x[i*ld], ld, &dst[0], &z[i])
		for r := range 4 {
			row := x[(i+r)*ld : (i+r)*ld+n]
			for j := nk; j < n; j++ {
				dst[j] += z[i+r] * float64(row[j])
			}
		}
	}
	for ; i < m; i++ {
		row := x[i*ld : i*ld+n]
		var s float64
		for j, v := range row {
			s += float64(v) * w[j]
		}
		z[i] = s
		g(i, i+1)
		for j, v := range row {
			dst[j] += z[i] * float64(v)
		}
	}
}

func checkRows(lx, m, n, ld int) {
	if n > ld || lx < (m-1)*ld+n {
		panic("gemm: matrix-vector product: x too short for its rows")
	}
}

// kernelCols is the column block of dot4 and axpy4: two AVX registers.
func kernelCols[T Float]() int {
	if is32[T]() {
		return 16
	}
	return 8
}

func dot4[T Float](n int, x *T, ld int, w, z *T) {
	if is32[T]() {
		dot4x32(n, (*float32)(unsafe.Pointer(x)), ld, (*float32)(unsafe.Pointer(w)), (*float32)(unsafe.Pointer(z)))
		return
	}
	dot4x64(n, (*float64)(unsafe.Pointer(x)), ld, (*float64)(unsafe.Pointer(w)), (*float64)(unsafe.Pointer(z)))
}

func axpy4[T Float](n int, x *T, ld int, dst, g *T) {
	if is32[T]() {
		axpy4x32(n, (*float32)(unsafe.Pointer(x)), ld, (*float32)(unsafe.Pointer(dst)), (*float32)(unsafe.Pointer(g)))
		return
	}
	axpy4x64(n, (*float64)(unsafe.Pointer(x)), ld, (*float64)(unsafe.Pointer(dst)), (*float64)(unsafe.Pointer(g)))
}

// gemv sets z = X·w through blas32 or blas64.
func gemv[T Float](_ bool, m, n int, x []T, ld int, w, z []T) {
	switch x := any(x).(type) {
	case []float32:
		blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: m, Cols: n, Stride: ld, Data: x[:(m-1)*ld+n]},
			blas32.Vector{N: n, Inc: 1, Data: any(w).([]float32)}, 0, blas32.Vector{N: m, Inc: 1, Data: any(z).([]float32)})
	case []float64:
		blas64.Gemv(blas.NoTrans, 1, blas64.General{Rows: m, Cols: n, Stride: ld, Data: x[:(m-1)*ld+n]},
			blas64.Vector{N: n, Inc: 1, Data: any(w).([]float64)}, 0, blas64.Vector{N: m, Inc: 1, Data: any(z).([]float64)})
	}
}

// gemvT adds Xᵀ·g to dst through blas32 or blas64.
func gemvT[T Float](m, n int, x []T, ld int, g, dst []T) {
	switch x := any(x).(type) {
	case []float32:
		blas32.Gemv(blas.Trans, 1, blas32.General{Rows: m, Cols: n, Stride: ld, Data: x[:(m-1)*ld+n]},
			blas32.Vector{N: m, Inc: 1, Data: any(g).([]float32)}, 1, blas32.Vector{N: n, Inc: 1, Data: any(dst).([]float32)})
	case []float64:
		blas64.Gemv(blas.Trans, 1, blas64.General{Rows: m, Cols: n, Stride: ld, Data: x[:(m-1)*ld+n]},
			blas64.Vector{N: m, Inc: 1, Data: any(g).([]float64)}, 1, blas64.Vector{N: n, Inc: 1, Data: any(dst).([]float64)})
	}
}
