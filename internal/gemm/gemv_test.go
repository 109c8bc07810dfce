package gemm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRows checks DotRows and AxpyRows, assembly and BLAS fallback, against sums in
// float64, with the bounds of TestGemm: float32 within (n+1)·u of Σ|terms| (u = 2⁻²⁴),
// float64 within gemmTol. The shapes cover rows not a multiple of 4, columns below,
// at and past the kernel's block (16 float32, 8 float64), and a row stride past the
// columns; the row stride's padding holds NaN, so reading it fails the test.
func TestRows(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := "kernel"
		if fallback {
			name = "blas"
		}
		NoAssembly = fallback
		t.Run(name+"/float64", func(t *testing.T) { testRows[float64](t, func(n int) float64 { return gemmTol }) })
		t.Run(name+"/float32", func(t *testing.T) { testRows[float32](t, func(n int) float64 { return float64(n+1) * gemmTol32 }) })
		NoAssembly = false
	}
}

func testRows[T Float](t *testing.T, tolFor func(n int) float64) {
	rng := rand.New(rand.NewPCG(5, 6))
	nan := T(0)
	nan = nan / nan
	for _, m := range []int{1, 3, 4, 5, 8, 11, 64} {
		for _, n := range []int{1, 7, 8, 15, 16, 17, 33, 385} {
			for _, pad := range []int{0, 3} {
				ld := n + pad
				t.Run(fmt.Sprintf("m=%d/n=%d/ld=%d", m, n, ld), func(t *testing.T) {
					x := make([]T, (m-1)*ld+n)
					for i := range x {
						x[i] = nan
					}
					for i := range m {
						for j := range n {
							x[i*ld+j] = T(rng.NormFloat64())
						}
					}
					w, g := randSliceOf[T](rng, n), randSliceOf[T](rng, m)
					dst0 := randSliceOf[T](rng, n)
					x0, w0, g0 := slices.Clone(x), slices.Clone(w), slices.Clone(g)
					tol := tolFor(n)

					z := randSliceOf[T](rng, m) // overwritten
					DotRows(z, x, ld, w)
					for i := range m {
						var want, mag float64
						for j := range n {
							want += float64(x[i*ld+j]) * float64(w[j])
							mag += abs64(float64(x[i*ld+j]) * float64(w[j]))
						}
						if !(abs64(float64(z[i])-want) <= tol*mag) {
							t.Fatalf("DotRows: z[%d] = %v, want %v (tolerance %g of %g)", i, z[i], want, tol, mag)
						}
					}

					dst := slices.Clone(dst0)
					AxpyRows(dst, x, ld, g)
					tolA := tolFor(m)
					for j := range n {
						want, mag := float64(dst0[j]), abs64(float64(dst0[j]))
						for i := range m {
							want += float64(g[i]) * float64(x[i*ld+j])
							mag += abs64(float64(g[i]) * float64(x[i*ld+j]))
						}
						if !(abs64(float64(dst[j])-want) <= tolA*mag) {
							t.Fatalf("AxpyRows: dst[%d] = %v, want %v (tolerance %g of %g)", j, dst[j], want, tolA, mag)
						}
					}
					if !slices.Equal(w, w0) || !slices.Equal(g, g0) || !equalNaN(x, x0) {
						t.Fatal("inputs modified")
					}
				})
			}
		}
	}
}

// equalNaN reports whether a and b hold the same values, NaN equal to NaN.
func equalNaN[T Float](a, b []T) bool {
	return slices.EqualFunc(a, b, func(u, v T) bool { return u == v || (u != u && v != v) })
}

// TestDotAxpyRows checks that the fused sweep gives the bits of DotRows, then the
// pointwise function over all rows, then AxpyRows (kernel and BLAS fallback), that it
// hands g every row once and in order, and that x and w are not modified.
func TestDotAxpyRows(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := "kernel"
		if fallback {
			name = "blas"
		}
		NoAssembly = fallback
		t.Run(name+"/float64", func(t *testing.T) { testDotAxpyRows[float64](t) })
		t.Run(name+"/float32", func(t *testing.T) { testDotAxpyRows[float32](t) })
		NoAssembly = false
	}
}

func testDotAxpyRows[T Float](t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	// A pointwise map that depends on the row, so that rows handed out of place show.
	pw := func(z []T, lo, hi int) {
		for i := lo; i < hi; i++ {
			z[i] = z[i]*T(0.25) - T(i%3)
		}
	}
	for _, m := range []int{1, 3, 4, 5, 8, 11, 64, 130} {
		for _, n := range []int{1, 7, 16, 17, 385} {
			for _, pad := range []int{0, 3} {
				ld := n + pad
				t.Run(fmt.Sprintf("m=%d/n=%d/ld=%d", m, n, ld), func(t *testing.T) {
					x := randSliceOf[T](rng, (m-1)*ld+n)
					w := randSliceOf[T](rng, n)
					dst0 := randSliceOf[T](rng, n)
					x0, w0 := slices.Clone(x), slices.Clone(w)

					zWant := make([]T, m)
					DotRows(zWant, x, ld, w)
					pw(zWant, 0, m)
					want := slices.Clone(dst0)
					AxpyRows(want, x, ld, zWant)

					z, got := make([]T, m), slices.Clone(dst0)
					next := 0
					DotAxpyRows(got, z, x, ld, w, func(lo, hi int) {
						if lo != next || hi <= lo || hi > m {
							t.Fatalf("g(%d, %d) after rows [0,%d)", lo, hi, next)
						}
						next = hi
						pw(z, lo, hi)
					})
					if next != m {
						t.Fatalf("g saw rows [0,%d) of %d", next, m)
					}
					if !slices.Equal(z, zWant) || !slices.Equal(got, want) {
						t.Fatalf("fused sweep differs from DotRows, g, AxpyRows:\nz   %v\nwant %v\ndst %v\nwant %v", z, zWant, got, want)
					}
					if !slices.Equal(x, x0) || !slices.Equal(w, w0) {
						t.Fatal("inputs modified")
					}
				})
			}
		}
	}
}

// TestDotAxpyRowsWide checks that the widening sweep on float32 rows gives the bits of
// DotAxpyRows on a float64 copy of them (kernel and fallback), and leaves x unchanged.
func TestDotAxpyRowsWide(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := "kernel"
		if fallback {
			name = "blas"
		}
		NoAssembly = fallback
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			pw := func(z []float64, lo, hi int) {
				for i := lo; i < hi; i++ {
					z[i] = z[i]*0.25 - float64(i%3)
				}
			}
			for _, m := range []int{1, 3, 4, 5, 8, 11, 64, 130} {
				for _, n := range []int{1, 7, 8, 9, 16, 17, 384, 385} {
					for _, pad := range []int{0, 3} {
						ld := n + pad
						x := randSliceOf[float32](rng, (m-1)*ld+n)
						w := randSliceOf[float64](rng, n)
						dst0 := randSliceOf[float64](rng, n)
						x0 := slices.Clone(x)
						x64 := make([]float64, len(x))
						for i, v := range x {
							x64[i] = float64(v)
						}
						zWant, want := make([]float64, m), slices.Clone(dst0)
						DotAxpyRows(want, zWant, x64, ld, w, func(lo, hi int) { pw(zWant, lo, hi) })
						z, got := make([]float64, m), slices.Clone(dst0)
						next := 0
						DotAxpyRowsWide(got, z, x, ld, w, func(lo, hi int) {
							if lo != next || hi <= lo || hi > m {
								t.Fatalf("m=%d n=%d: g(%d, %d) after rows [0,%d)", m, n, lo, hi, next)
							}
							next = hi
							pw(z, lo, hi)
						})
						if next != m || !slices.Equal(z, zWant) || !slices.Equal(got, want) {
							t.Fatalf("m=%d n=%d ld=%d: widening sweep differs from DotAxpyRows on a float64 copy (rows seen %d)", m, n, ld, next)
						}
						if !slices.Equal(x, x0) {
							t.Fatal("x modified")
						}
					}
				}
			}
		})
		NoAssembly = false
	}
}
