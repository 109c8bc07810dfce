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

// TestSoftmaxRow64SameBits: the assembly float64 softmax gives the Go loop's bits
// (math.Exp's exponentials, the sum in class order) for every row length around the
// 4-lane width and Banking77's 77 classes, logits from close together to 708 apart
// (the assembly's range; rows beyond it, and rows with NaN or infinities, take the Go
// loop, and come out the same too). Values past the row stay untouched.
func TestSoftmaxRow64SameBits(t *testing.T) {
	if !igemm.HaveKernel {
		t.Skip("no AVX2/FMA: the Go loop only")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	asmRows := 0
	for _, k := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 76, 77, 80} {
		for _, spread := range []float64{1e-3, 1, 5, 60, 300, 700, 2000, math.NaN(), math.Inf(1), math.Inf(-1)} {
			for trial := range 20 {
				z := make([]float64, k+2)
				for i := range z {
					switch {
					case spread >= 700:
						z[i] = -rng.Float64() * spread // up to spread below 0
					default:
						z[i] = spread * rng.NormFloat64()
					}
				}
				if k > 1 && trial%4 == 0 && !math.IsNaN(spread) && !math.IsInf(spread, 0) {
					// The edges of the assembly's range: x = −708 exactly, −0, tiny.
					z[0], z[k-1] = 0, -708
					if k > 2 {
						z[1] = math.Copysign(0, -1)
					}
					if k > 3 {
						z[2] = -1e-300
					}
				}
				if math.IsNaN(spread) || math.IsInf(spread, 0) {
					z[trial%k] = spread
				}
				z[k], z[k+1] = 1e300, math.NaN() // past the end: must stay untouched
				want := slices.Clone(z)
				wm, ws := softmaxRow64Go(want[:k], 0.37)
				got := slices.Clone(z)
				gm, gs := softmaxRow64(got[:k], 0.37)
				chk := slices.Clone(z)
				if _, _, ok := softmaxRow64Asm(chk[:k], 0.37); ok {
					asmRows++
				} else if !slices.EqualFunc(chk, z, sameBits) {
					t.Fatalf("k=%d spread=%g: softmaxRow64Asm declined the row but changed it", k, spread)
				}
				if !sameBits(gm, wm) || !sameBits(gs, ws) {
					t.Fatalf("k=%d spread=%g trial %d: m, s = %v, %v; Go loop %v, %v", k, spread, trial, gm, gs, wm, ws)
				}
				for i := range got {
					if !sameBits(got[i], want[i]) {
						t.Fatalf("k=%d spread=%g trial %d: z[%d] = %v (%#x); Go loop %v (%#x)", k, spread, trial, i, got[i], math.Float64bits(got[i]), want[i], math.Float64bits(want[i]))
					}
				}
			}
		}
	}
	if asmRows < 1000 {
		t.Errorf("the assembly took %d rows; want most of the finite ones", asmRows)
	}
}

// sameBits reports whether a and b have the same bits, NaNs with the same payload
// included.
func sameBits(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
