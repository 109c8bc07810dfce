package head

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// gemmTol bounds |gemm − naive| relative to Σ_p |a_ip·b_pj|: both sum k products in
// float64 in different orders (and the kernel fuses multiply-adds), so they differ by a
// few k·ε at most.
const gemmTol = 1e-13

func TestGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// The shapes cover partial tiles (m mod 6, n mod 8), several blocks along every
	// dimension (m > gemmMC, n > gemmNC, k > gemmKC) and empty products; the large one
	// runs with every transposition and thread count but one beta, to keep the naive
	// reference fast.
	shapes := []struct {
		m, n, k int
		all     bool // every beta and thread count
	}{
		{1, 1, 1, true}, {6, 8, 4, true}, {7, 9, 5, true}, {13, 3, 300, true}, {5, 300, 1, true}, {0, 3, 3, true}, {3, 3, 0, true},
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
						a := randSlice(rng, ar*lda)
						b := randSlice(rng, br*ldb)
						c := randSlice(rng, max(m, 1)*ldc)
						want := append([]float64(nil), c...)
						at := func(i, p int) float64 {
							if tA {
								return a[p*lda+i]
							}
							return a[i*lda+p]
						}
						bt := func(p, j int) float64 {
							if tB {
								return b[j*ldb+p]
							}
							return b[p*ldb+j]
						}
						scale := make([]float64, len(c))
						for i := range m {
							for j := range n {
								var s, abs float64
								for p := range k {
									s += at(i, p) * bt(p, j)
									abs += abs64(at(i, p) * bt(p, j))
								}
								want[i*ldc+j] = beta*want[i*ldc+j] + s
								scale[i*ldc+j] = abs + 1
							}
						}
						c0 := append([]float64(nil), c...)
						gemm(tA, tB, m, n, k, a, lda, b, ldb, beta, c, ldc, threads)
						// Operands packed ahead of time give the same bits.
						if pa, pb := packMatrix(true, tA, a, lda, m, k), packMatrix(false, tB, b, ldb, n, k); pa != nil && m > 0 && n > 0 {
							cp := append([]float64(nil), c0...)
							gemmOp(operand{packed: pa}, operand{packed: pb}, m, n, k, beta, cp, ldc, threads)
							for i := range cp {
								if cp[i] != c[i] {
									t.Fatalf("%s: packed operands: C[%d] = %v, unpacked %v", name, i, cp[i], c[i])
								}
							}
						}
						for i := range m {
							for j := range ldc {
								g, w := c[i*ldc+j], want[i*ldc+j]
								tol := gemmTol * scale[i*ldc+j]
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

// TestGemmThreadInvariance checks that the thread count does not change a single bit.
func TestGemmThreadInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m, n, k := 501, 77, 385
	a, b := randSlice(rng, m*k), randSlice(rng, n*k)
	c1, c4 := make([]float64, m*n), make([]float64, m*n)
	gemm(false, true, m, n, k, a, k, b, k, 0, c1, n, 1)
	gemm(false, true, m, n, k, a, k, b, k, 0, c4, n, 4)
	for i := range c1 {
		if c1[i] != c4[i] {
			t.Fatalf("C[%d]: 1 thread %v, 4 threads %v", i, c1[i], c4[i])
		}
	}
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
