package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/floats/scalar"
)

// gemmTol bounds |gemm − naive| relative to Σ_p |a_ip·b_pj|: both sum k products in
// float64 in different orders (and the kernel fuses multiply-adds), so they differ by a
// few k·ε at most.
const gemmTol = 1e-13

// gemmTol32 bounds |gemm − exact| relative to Σ_p |a_ip·b_pj| + |c_ij| per term summed
// in float32: the standard bound for a sum of k+1 terms is (k+1)·u with u = 2⁻²⁴ the
// unit roundoff (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1);
// the reference sums in float64, exactly enough.
const gemmTol32 = 0x1p-24

func TestGemm(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		name := "kernel"
		if fallback {
			name = "blas"
		}
		NoAssembly = fallback
		t.Run(name+"/float64", func(t *testing.T) { testGemm[float64](t, func(k int) float64 { return gemmTol }) })
		t.Run(name+"/float32", func(t *testing.T) { testGemm[float32](t, func(k int) float64 { return float64(k+1) * gemmTol32 }) })
		NoAssembly = false
	}
}

func testGemm[T Float](t *testing.T, tolFor func(k int) float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	// The shapes cover partial tiles (m mod 6, n mod 8 or 16), several blocks along
	// every dimension (m > gemmMC, n > gemmNC, k > gemmKC) and empty products; the large
	// one runs with every transposition and thread count but one beta, to keep the
	// naive reference fast.
	shapes := []struct {
		m, n, k int
		all     bool // every beta and thread count
	}{
		{1, 1, 1, true}, {6, 8, 4, true}, {6, 16, 4, true}, {7, 9, 5, true}, {7, 17, 5, true}, {13, 3, 300, true}, {5, 300, 1, true}, {0, 3, 3, true}, {3, 3, 0, true},
		{80, 260, 270, false},
	}
	for _, sh := range shapes {
		betas, threadses := []float64{0, 1}, []int{1, 3}
		if !sh.all {
			betas = []float64{1}
		}
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, beta := range betas {
					for _, threads := range threadses {
						name := fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/beta=%v/threads=%d", sh.m, sh.n, sh.k, tA, tB, beta, threads)
						m, n, k := sh.m, sh.n, sh.k
						// Leading dimensions larger than needed, to catch stride bugs.
						lda, ldb, ldc := k+3, n+2, n+5
						ar, br := m, k
						if tA {
							lda, ar = m+3, k
						}
						if tB {
							ldb, br = k+2, n
						}
						a := randSliceOf[T](rng, ar*lda)
						b := randSliceOf[T](rng, br*ldb)
						c := randSliceOf[T](rng, max(m, 1)*ldc)
						want := make([]float64, len(c))
						for i, v := range c {
							want[i] = float64(v)
						}
						at := func(i, p int) float64 {
							if tA {
								return float64(a[p*lda+i])
							}
							return float64(a[i*lda+p])
						}
						bt := func(p, j int) float64 {
							if tB {
								return float64(b[j*ldb+p])
							}
							return float64(b[p*ldb+j])
						}
						scale := make([]float64, len(c))
						for i := range m {
							for j := range n {
								var s, abs float64
								for p := range k {
									s += at(i, p) * bt(p, j)
									abs += abs64(at(i, p) * bt(p, j))
								}
								scale[i*ldc+j] = abs + 1 + beta*abs64(want[i*ldc+j])
								want[i*ldc+j] = beta*want[i*ldc+j] + s
							}
						}
						c0 := append([]T(nil), c...)
						Gemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc, threads)
						// Operands packed ahead of time give the same bits.
						if pa, pb := Pack(true, tA, a, lda, m, k), Pack(false, tB, b, ldb, n, k); pa != nil && m > 0 && n > 0 {
							cp := append([]T(nil), c0...)
							Op(Operand[T]{Packed: pa}, Operand[T]{Packed: pb}, m, n, k, beta, cp, ldc, threads)
							for i := range cp {
								if cp[i] != c[i] {
									t.Fatalf("%s: packed operands: C[%d] = %v, unpacked %v", name, i, cp[i], c[i])
								}
							}
						}
						for i := range m {
							for j := range ldc {
								g, w := float64(c[i*ldc+j]), want[i*ldc+j]
								tol := tolFor(k) * scale[i*ldc+j]
								if j >= n {
									tol = 0 // outside C: untouched
								}
								if !scalar.EqualWithinAbs(g, w, tol) {
									t.Fatalf("%s: C[%d,%d] = %v, want %v", name, i, j, g, w)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestGemmThreadInvariance checks that the thread count does not change a single bit,
// for both ways of splitting C (along m and along n).
func TestGemmThreadInvariance(t *testing.T) {
	t.Run("float64", testGemmThreadInvariance[float64])
	t.Run("float32", testGemmThreadInvariance[float32])
}

func testGemmThreadInvariance[T Float](t *testing.T) {
	if impl := blasImpl[T](); !isGonum(impl) {
		t.Skipf("products run on %T (OpenBLAS under -tags openblas), which ignores the threads argument and promises no invariance in its own thread count: thread invariance is checked for the kernel only", impl)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sh := range []struct{ m, n, k int }{{501, 77, 385}, {77, 385, 501}} {
		m, n, k := sh.m, sh.n, sh.k
		a, b := randSliceOf[T](rng, m*k), randSliceOf[T](rng, n*k)
		c1, c4 := make([]T, m*n), make([]T, m*n)
		Gemm(false, true, m, n, k, a, k, b, k, 0, c1, n, 1)
		Gemm(false, true, m, n, k, a, k, b, k, 0, c4, n, 4)
		for i := range c1 {
			if c1[i] != c4[i] {
				t.Fatalf("%dx%dx%d: C[%d]: 1 thread %v, 4 threads %v", m, n, k, i, c1[i], c4[i])
			}
		}
	}
}

// blasImpl returns the installed BLAS for T (blas32 or blas64).
func blasImpl[T Float]() any {
	if is32[T]() {
		return blas32.Implementation()
	}
	return blas64.Implementation()
}

// isGonum reports whether impl is gonum's pure Go BLAS.
func isGonum(impl any) bool {
	_, ok := impl.(gonum.Implementation)
	return ok
}

func randSliceOf[T Float](rng *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(rng.NormFloat64())
	}
	return s
}

func randSlice(rng *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = rng.NormFloat64()
	}
	return s
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
