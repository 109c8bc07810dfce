package head

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	igemm "github.com/headstart-ml/headstart/internal/gemm"
)

// softmaxTol bounds the relative difference of softmaxRow32 from the float64 softmax
// of the same float32 logits, beside the rounding of x = z − max to float32 (which
// moves exp(x) by |x|·2⁻²⁴ relative; the test adds that). An exponential off by 2
// float32 ulps (the Cephes polynomial's bound; math.Exp rounded to float32 is off by
// half an ulp), the sum's and the scaling's roundings add up to under 5 ulps,
// 5·2⁻²³ ≈ 6e-7.
const softmaxTol = 5 * 0x1p-23

func TestSoftmaxRow32(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	// Lengths around the 8-lane width and Banking77's 77 classes; logits from small to
	// far apart, so that some exponentials underflow (the −87 cut) and some are exactly 1.
	for _, k := range []int{1, 2, 7, 8, 9, 16, 17, 77} {
		for _, spread := range []float64{0.1, 5, 60} {
			for _, fallback := range []bool{false, true} {
				t.Run(fmt.Sprintf("k=%d/spread=%g/go=%v", k, spread, fallback), func(t *testing.T) {
					igemm.NoAssembly = fallback
					defer func() { igemm.NoAssembly = false }()
					z := make([]float32, k+3) // past the end: must stay untouched
					for i := range z {
						z[i] = float32(spread * rng.NormFloat64())
					}
					z[k], z[k+1], z[k+2] = 1e30, -1, float32(math.NaN())
					orig := slices.Clone(z)
					const w = 0.37
					m, s := softmaxRow32(z[:k], w)

					// Reference in float64 from the same float32 logits.
					wantM := slices.Max(orig[:k])
					var wantS float64
					for _, v := range orig[:k] {
						wantS += math.Exp(float64(v) - float64(wantM))
					}
					if m != wantM {
						t.Errorf("max = %v, want %v", m, wantM)
					}
					if !scalar.EqualWithinRel(s, wantS, softmaxTol+float64(wantM-slices.Min(orig[:k]))*0x1p-24) {
						t.Errorf("sum = %v, want %v", s, wantS)
					}
					var total float64
					for c, v := range z[:k] {
						x := float64(orig[c]) - float64(wantM)
						want := w * math.Exp(x) / wantS
						// Underflowing ones (x < −87 gives 0) compare absolutely.
						if !scalar.EqualWithinAbsOrRel(float64(v), want, 1e-37, softmaxTol+math.Abs(x)*0x1p-24) {
							t.Errorf("z[%d] = %v, want %v (logit %v)", c, v, want, orig[c])
						}
						total += float64(v)
					}
					if !scalar.EqualWithinRel(total, w, float64(k)*softmaxTol) {
						t.Errorf("Σ z = %v, want %v", total, w)
					}
					for i := k; i < len(z); i++ {
						if math.Float32bits(z[i]) != math.Float32bits(orig[i]) {
							t.Errorf("z[%d] past the row changed: %v -> %v", i, orig[i], z[i])
						}
					}
				})
			}
		}
	}
}

// TestExp32Range checks the assembly exponential over its whole range, through
// softmaxRow32 with a row whose maximum is 0: z = [0, x] gives z_1 = e^x/(1+e^x), and
// z_1·s = e^x.
func TestExp32Range(t *testing.T) {
	if !igemm.HaveKernel {
		t.Skip("no AVX2 and FMA: softmaxRow32 runs in Go")
	}
	// exp32Tol: 2 ulps for the exponential, 1 for the scaling by float32(1/s).
	const exp32Tol = 3 * 0x1p-23
	var worst float64
	for x := float32(-90); x <= 0; x += 0.0137 {
		z := []float32{0, x}
		_, s := softmaxRow32(z, 1)
		got, want := float64(z[1])*s, math.Exp(float64(x))
		if x < -87 {
			want = 0
		}
		if !scalar.EqualWithinRel(got, want, exp32Tol) {
			t.Fatalf("exp(%v) = %v, want %v", x, got, want)
		}
		if want > 0 {
			worst = max(worst, math.Abs(got-want)/want)
		}
	}
	t.Logf("worst relative error of exp over [-87, 0]: %.3g (float32 ulp %.3g)", worst, 0x1p-23)
}
