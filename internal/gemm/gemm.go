// Package gemm is the float32 and float64 matrix product of headstart's training code
// (packages head and lora): a blocked product around an AVX2/FMA assembly micro-kernel,
// or gonum's BLAS where the kernel cannot run.
package gemm

import (
	"sync"
	"unsafe"

	"github.com/headstart-ml/headstart/internal/fpu"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
)

// The matrix products of fitting go through gemm, in float64 or float32. When gonum's
// pure-Go BLAS is in use (blas64 for float64, blas32 for float32) and the CPU has AVX2
// and FMA, gemm runs its own blocked product around an assembly micro-kernel
// (kernel_amd64.s): 6×8 in float64, 6×16 in float32 (6×16 and 6×32 where the CPU has
// AVX-512). On one core of the development machine (an AMD EPYC) the float64 kernel
// runs at about 40 GFLOP/s against 5-13 for gonum's Dgemm, the float32 one at 70-85
// against 11-18 for gonum's Sgemm. Otherwise
// (another CPU, or an implementation installed with blas64.Use or blas32.Use, such as
// OpenBLAS with -tags openblas, see package internal/gemm/openblas) it calls
// blas64.Gemm or blas32.Gemm.
//
// Float32 products on the kernels (Gemm, Op and the matrix-vector products of gemv.go)
// run with the thread's floating-point unit flushing subnormal inputs and results to
// zero (package fpu), so a product term below float32's smallest normal number
// (1.2e-38) counts as 0. On x86 every operation that meets or makes a subnormal
// otherwise takes a microcode assist, about a hundred times slower, and real features
// meet them: Banking77's MiniLM features hold values near 1e-37, whose products with
// small pointwise gradients underflow, and the multinomial gradient's product Gᵀ·X
// ran at about a third of the kernel's speed in a Banking77 fit. A result differs
// from IEEE arithmetic's by such terms only. Float64 products, and the BLAS fallback,
// keep subnormals.
//
// The blocking follows Goto and van de Geijn (Anatomy of high-performance matrix
// multiplication, ACM TOMS 34(3), 2008): B is packed kc×nc, A mc×kc, and the kernel
// multiplies a 6×kc panel of A by a kc×NR panel of B. Each element of C is accumulated
// over k in the same order whatever the tiling or the thread count, so results do not
// depend on the number of threads.

// Float is the element type of Gemm.
type Float interface{ float32 | float64 }

const (
	gemmMR = 6   // micro-kernel rows (both kernels)
	gemmKC = 256 // depth of a packed block
	gemmMC = 72  // rows of a packed A block (a multiple of gemmMR)
	gemmNC = 256 // columns of a packed B block (a multiple of both kernels' NR)
)

// gemmNR is the micro-kernel's columns for T and a product n columns wide, two vector
// registers per row of the tile: 8 (float64) or 16 (float32) with AVX2; with AVX-512
// 16 (float64) or 32 (float32), for float32 unless rounding n up to 32 columns pads
// it more than an eighth beyond rounding it to 16 (77 classes: 96 columns against 80,
// so 16; 385 features: 416 against 400, so 32).
func gemmNR[T Float](n int) int {
	if is32[T]() {
		if Have512 && 8*roundUp(n, 32) <= 9*roundUp(n, 16) {
			return 32
		}
		return 16
	}
	if Have512 {
		return 16
	}
	return 8
}

// roundUp returns n rounded up to a multiple of m.
func roundUp(n, m int) int { return (n + m - 1) / m * m }

// is32 reports whether T is float32.
func is32[T Float]() bool {
	var z T
	return unsafe.Sizeof(z) == 4
}

// kernel calls the micro-kernel for T: C += A·B for a gemmMR×k panel of A and a
// k×nr panel of B (nr from gemmNR), both packed depth by depth, C with row stride ldc.
func kernel[T Float](nr, k int, a, b, c *T, ldc int) {
	if is32[T]() {
		if nr == 32 {
			kern6x32(k, (*float32)(unsafe.Pointer(a)), (*float32)(unsafe.Pointer(b)), (*float32)(unsafe.Pointer(c)), ldc)
			return
		}
		kern6x16(k, (*float32)(unsafe.Pointer(a)), (*float32)(unsafe.Pointer(b)), (*float32)(unsafe.Pointer(c)), ldc)
		return
	}
	if nr == 16 {
		kern6x16d(k, (*float64)(unsafe.Pointer(a)), (*float64)(unsafe.Pointer(b)), (*float64)(unsafe.Pointer(c)), ldc)
		return
	}
	kern6x8(k, (*float64)(unsafe.Pointer(a)), (*float64)(unsafe.Pointer(b)), (*float64)(unsafe.Pointer(c)), ldc)
}

// useKernel reports whether gemm uses the assembly kernel for T.
func useKernel[T Float]() bool {
	if !HaveKernel || NoAssembly {
		return false
	}
	if is32[T]() {
		_, ok := blas32.Implementation().(gonum.Implementation)
		return ok
	}
	_, ok := blas64.Implementation().(gonum.Implementation)
	return ok
}

// NoAssembly makes gemm call blas64 or blas32 and softmaxRow32 run in Go, as on a
// CPU without AVX2 and FMA (tests of the fallback paths).
var NoAssembly bool

type gemmBuf[T Float] struct{ a, b []T }

var (
	gemmPool64 = sync.Pool{New: func() any {
		return &gemmBuf[float64]{a: make([]float64, gemmMC*gemmKC), b: make([]float64, gemmKC*gemmNC)}
	}}
	gemmPool32 = sync.Pool{New: func() any {
		return &gemmBuf[float32]{a: make([]float32, gemmMC*gemmKC), b: make([]float32, gemmKC*gemmNC)}
	}}
)

func gemmPool[T Float]() *sync.Pool {
	if is32[T]() {
		return &gemmPool32
	}
	return &gemmPool64
}

// gemm computes C = op(A)·op(B) when beta is 0, or C += op(A)·op(B) when beta is 1,
// with op(A) (m,k) and op(B) (k,n), row-major; tA (tB) means A (B) is stored
// transposed, as (k,m) ((n,k)). threads bounds the goroutines (results do not depend
// on it).
func Gemm[T Float](tA, tB bool, m, n, k int, a []T, lda int, b []T, ldb int, beta float64, c []T, ldc int, threads int) {
	Op(Operand[T]{Trans: tA, Data: a, LD: lda}, Operand[T]{Trans: tB, Data: b, LD: ldb}, m, n, k, beta, c, ldc, threads)
}

// operand is a matrix factor of Op: stored row-major (transposed when trans), or
// already packed.
type Operand[T Float] struct {
	Trans  bool
	Data   []T
	LD     int
	Packed *Packed[T] // when not nil, Data, LD and Trans are unused
}

// Packed is a matrix packed once for repeated products, in the panel layout
// that gemm's blocks use: as the left factor (A, panels of gemmMR rows) or the right
// one (B, panels of gemmNR columns). For each depth block of gemmKC the whole width
// (rows of A, columns of B, rounded up to the panel size) is packed, so a block
// starting at row (column) i is at an offset of i·kc within it.
type Packed[T Float] struct {
	left  bool // packed as A (else B)
	nr    int  // B's panel width (gemmNR at packing time); 0 for A
	width int  // m for A, n for B
	depth int  // k
	pad   int  // width rounded up to the panel size
	data  []T
}

// Pack packs op(X) (width×depth for A, depth×width for B; trans as in gemm) for
// use as gemm's left (A) or right (B) factor. It returns nil when gemm does not use
// packed operands (no kernel), in which case pass the plain operand.
func Pack[T Float](left, trans bool, x []T, ld, width, depth int) *Packed[T] {
	if !useKernel[T]() {
		return nil
	}
	nr, panel := 0, gemmMR // nr: B's panel width, kept so that Op tiles with it
	if !left {
		nr = gemmNR[T](width)
		panel = nr
	}
	pad := (width + panel - 1) / panel * panel
	pm := &Packed[T]{left: left, nr: nr, width: width, depth: depth, pad: pad, data: make([]T, pad*depth)}
	for pc := 0; pc < depth; pc += gemmKC {
		kc := min(gemmKC, depth-pc)
		dst := pm.data[pc*pad : pc*pad+kc*pad]
		if left {
			packA(dst, trans, x, ld, 0, width, pc, kc)
		} else {
			packB(dst, nr, trans, x, ld, pc, kc, 0, width)
		}
	}
	return pm
}

// block returns the packed block at depth pc (a multiple of gemmKC), from row (A) or
// column (B) i, a multiple of the panel size.
func (pm *Packed[T]) block(pc, kc, i int) []T {
	return pm.data[pc*pm.pad+i*kc:]
}

// Op is gemm with operands that may be packed. A packed operand must not be
// transposed by the call (it was packed as op(A) or op(B) already).
func Op[T Float](a, b Operand[T], m, n, k int, beta float64, c []T, ldc int, threads int) {
	if beta != 0 && beta != 1 {
		panic("gemm: gemm: beta must be 0 or 1")
	}
	if m == 0 || n == 0 {
		return
	}
	if (a.Packed != nil && (!a.Packed.left || a.Packed.width != m || a.Packed.depth != k)) ||
		(b.Packed != nil && (b.Packed.left || b.Packed.width != n || b.Packed.depth != k)) {
		panic("gemm: gemm: packed operand of the wrong shape")
	}
	if !useKernel[T]() {
		if a.Packed != nil || b.Packed != nil {
			panic("gemm: gemm: packed operand without the kernel")
		}
		gemmBLAS(a, b, m, n, k, beta, c, ldc)
		return
	}
	if beta == 0 {
		for i := range m {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if k == 0 {
		return
	}
	// Split C into stripes along its longer side, one per goroutine, aligned to the
	// kernel's tile; a stripe gets at least about a million flops.
	parts := min(threads, max(1, 2*m*n*k/1_000_000))
	nr := gemmNR[T](n)
	if b.Packed != nil {
		nr = b.Packed.nr
	}
	if m >= n {
		step := (m + parts - 1) / parts
		step = (step + gemmMR - 1) / gemmMR * gemmMR
		parallelRange(m, step, func(i0, i1 int) {
			gemmSerial(a, b, nr, i0, i1-i0, 0, n, k, c[i0*ldc:], ldc)
		})
		return
	}
	step := (n + parts - 1) / parts
	step = (step + nr - 1) / nr * nr
	parallelRange(n, step, func(j0, j1 int) {
		gemmSerial(a, b, nr, 0, m, j0, j1-j0, k, c[j0:], ldc)
	})
}

// gemmBLAS is Op on blas64.Gemm or blas32.Gemm.
func gemmBLAS[T Float](a, b Operand[T], m, n, k int, beta float64, c []T, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	ar, ac, br, bc := m, k, k, n
	if a.Trans {
		ta, ar, ac = blas.Trans, k, m
	}
	if b.Trans {
		tb, br, bc = blas.Trans, n, k
	}
	switch c := any(c).(type) {
	case []float64:
		blas64.Gemm(ta, tb, 1,
			blas64.General{Rows: ar, Cols: ac, Stride: a.LD, Data: any(a.Data).([]float64)},
			blas64.General{Rows: br, Cols: bc, Stride: b.LD, Data: any(b.Data).([]float64)},
			beta, blas64.General{Rows: m, Cols: n, Stride: ldc, Data: c})
	case []float32:
		blas32.Gemm(ta, tb, 1,
			blas32.General{Rows: ar, Cols: ac, Stride: a.LD, Data: any(a.Data).([]float32)},
			blas32.General{Rows: br, Cols: bc, Stride: b.LD, Data: any(b.Data).([]float32)},
			float32(beta), blas32.General{Rows: m, Cols: n, Stride: ldc, Data: c})
	}
}

// parallelRange calls fn on [lo, min(lo+step, n)) for every lo, each on its own
// goroutine (the first on the caller's).
func parallelRange(n, step int, fn func(lo, hi int)) {
	if step >= n {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for lo := step; lo < n; lo += step {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, min(lo+step, n))
		}()
	}
	fn(0, min(step, n))
	wg.Wait()
}

// gemmSerial computes C += op(A)[i0:i0+m, :]·op(B)[:, j0:j0+n] on one goroutine with
// B in panels of nr columns; c points at the stripe's first element.
func gemmSerial[T Float](a, b Operand[T], nr, i0, m, j0, n, k int, c []T, ldc int) {
	if is32[T]() {
		defer fpu.Restore(fpu.Flush())
	}
	pool := gemmPool[T]()
	buf := pool.Get().(*gemmBuf[T])
	defer pool.Put(buf)
	var tmpBuf [gemmMR * 32]T
	tmp := tmpBuf[:gemmMR*nr]
	for jc := 0; jc < n; jc += gemmNC {
		nc := min(gemmNC, n-jc)
		for pc := 0; pc < k; pc += gemmKC {
			kc := min(gemmKC, k-pc)
			var pb []T
			if b.Packed != nil {
				pb = b.Packed.block(pc, kc, j0+jc)
			} else {
				packB(buf.b, nr, b.Trans, b.Data, b.LD, pc, kc, j0+jc, nc)
				pb = buf.b
			}
			for ic := 0; ic < m; ic += gemmMC {
				mc := min(gemmMC, m-ic)
				var pa []T
				if a.Packed != nil {
					pa = a.Packed.block(pc, kc, i0+ic)
				} else {
					packA(buf.a, a.Trans, a.Data, a.LD, i0+ic, mc, pc, kc)
					pa = buf.a
				}
				for jr := 0; jr < nc; jr += nr {
					bp := pb[jr*kc:]
					for ir := 0; ir < mc; ir += gemmMR {
						ap := pa[ir*kc:]
						if ir+gemmMR <= mc && jr+nr <= nc {
							kernel(nr, kc, &ap[0], &bp[0], &c[(ic+ir)*ldc+jc+jr], ldc)
							continue
						}
						clear(tmp)
						kernel(nr, kc, &ap[0], &bp[0], &tmp[0], nr)
						for i := range min(gemmMR, mc-ir) {
							row := c[(ic+ir+i)*ldc+jc+jr:]
							for j := range min(nr, nc-jr) {
								row[j] += tmp[i*nr+j]
							}
						}
					}
				}
			}
		}
	}
}

// packA packs rows [i0, i0+mc) and depths [p0, p0+kc) of op(A) into panels of gemmMR
// rows: panel r holds, for each depth p, the gemmMR values of rows r·gemmMR.. (zeros
// past the last row).
func packA[T Float](dst []T, tA bool, a []T, lda, i0, mc, p0, kc int) {
	for ir := 0; ir < mc; ir += gemmMR {
		panel := dst[ir*kc : ir*kc+gemmMR*kc]
		rows := min(gemmMR, mc-ir)
		switch {
		case !tA:
			for i := range rows {
				src := a[(i0+ir+i)*lda+p0 : (i0+ir+i)*lda+p0+kc]
				for p, v := range src {
					panel[p*gemmMR+i] = v
				}
			}
		case rows == gemmMR:
			for p := range kc {
				src := a[(p0+p)*lda+i0+ir : (p0+p)*lda+i0+ir+gemmMR]
				d := panel[p*gemmMR : (p+1)*gemmMR]
				d[0], d[1], d[2], d[3], d[4], d[5] = src[0], src[1], src[2], src[3], src[4], src[5]
			}
		default:
			for p := range kc {
				src := a[(p0+p)*lda+i0+ir : (p0+p)*lda+i0+ir+rows]
				for i, v := range src {
					panel[p*gemmMR+i] = v
				}
			}
		}
		if rows < gemmMR {
			for p := range kc {
				clear(panel[p*gemmMR+rows : (p+1)*gemmMR])
			}
		}
	}
}

// packB packs depths [p0, p0+kc) and columns [j0, j0+nc) of op(B) into panels of nr
// columns: panel q holds, for each depth p, the nr values of columns q·nr.. (zeros past
// the last column).
func packB[T Float](dst []T, nr int, tB bool, b []T, ldb, p0, kc, j0, nc int) {
	for jr := 0; jr < nc; jr += nr {
		panel := dst[jr*kc : jr*kc+nr*kc]
		cols := min(nr, nc-jr)
		if tB {
			for j := range cols {
				src := b[(j0+jr+j)*ldb+p0 : (j0+jr+j)*ldb+p0+kc]
				for p, v := range src {
					panel[p*nr+j] = v
				}
			}
		} else {
			for p := range kc {
				copy(panel[p*nr:p*nr+cols], b[(p0+p)*ldb+j0+jr:(p0+p)*ldb+j0+jr+cols])
			}
		}
		if cols < nr {
			for p := range kc {
				clear(panel[p*nr+cols : (p+1)*nr])
			}
		}
	}
}
