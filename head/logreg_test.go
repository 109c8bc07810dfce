package head

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/floats/scalar"

	igemm "github.com/headstart-ml/headstart/internal/gemm"
)

// gradTol bounds the infinity norm of analytic − finite-difference gradient. Central
// differences with step h have truncation error about h²·|f”'|/6 and rounding error
// about ε·|f|/h; with gonum's default h (6e-6 for central) and |f| ~ 1 both are below
// 1e-9, so 1e-7 leaves room while catching any wrong term (which is O(1/n) ≥ 1e-2).
const gradTol = 1e-7

// grad32Tol bounds |L₃₂ − L₆₄| and |∇L₃₂ − ∇L₆₄|∞ at the same (float32) parameters,
// relative to max(1, max|x|): the float32 path rounds every product and sum to float32
// (unit roundoff u = 6e-8), so the logits are off by about d·u·Σ|θ·x| and the gradient,
// a weighted sum of n terms with Σ weights <= 2, by about (d+n)·u·2·max|x|; with d + n
// ≈ 40 here that is 5e-6·max|x| (measured: under 1e-7), and a wrong term is off by
// O(1/n) = 3e-2.
const grad32Tol = 1e-5

func TestLossGradient(t *testing.T) {
	for _, tc := range []struct {
		name      string
		k         int // classes
		binary    bool
		intercept bool
		cw        ClassWeight
		C         float64
	}{
		{"multinomial", 4, false, true, Uniform, 1},
		{"multinomial balanced", 4, false, true, Balanced, 0.3},
		{"multinomial no intercept", 3, false, false, Uniform, 10},
		{"many classes", 19, false, true, Uniform, 1}, // softmax rows longer than 8 lanes
		{"binary", 2, true, true, Uniform, 1},
		{"binary balanced no intercept", 2, true, false, Balanced, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := synthetic(37, 5, tc.k, 2, true, 7)
			for _, fallback := range []bool{false, true} {
				igemm.NoAssembly = fallback
				x := designMatrix(d.X, d.N, d.D, nil, nil, tc.intercept)
				x32 := designMatrix32(d.X, d.N, d.D, nil, nil, tc.intercept)
				problem := func(x []float64, x32 []float32) *linProblem {
					if tc.binary {
						t := make([]float64, d.N)
						for i, l := range d.Labels {
							t[i] = float64(l)
						}
						return newLinProblem(x, x32, d.N, d.D, tc.intercept, nil, t, 2, tc.cw, tc.C, 2)
					}
					return newLinProblem(x, x32, d.N, d.D, tc.intercept, d.Labels, nil, tc.k, tc.cw, tc.C, 2)
				}
				p, p32 := problem(x, nil), problem(nil, x32)
				theta := make([]float64, p.k*p.d1)
				for i := range theta {
					// Away from 0, where softmax is flat; float32 values, so that both
					// precisions evaluate at the same point.
					theta[i] = float64(float32(math.Sin(float64(i))))
				}
				orig := slices.Clone(theta)
				xorig, x32orig := slices.Clone(x), slices.Clone(x32)
				grad := make([]float64, len(theta))
				f := p.lossGrad(grad, theta)
				scratch := make([]float64, len(theta))
				num := fd.Gradient(nil, func(th []float64) float64 { return p.lossGrad(scratch, th) }, theta, &fd.Settings{Formula: fd.Central})
				if dist := floats.Distance(grad, num, math.Inf(1)); !(dist <= gradTol) {
					t.Errorf("fallback=%v: |analytic − numeric|∞ = %g > %g (f = %v)", fallback, dist, gradTol, f)
				}
				// float32: the same loss and gradient to float32 rounding. (Finite
				// differences of a float32 function are too noisy to check against.)
				grad32 := make([]float64, len(theta))
				f32 := p32.lossGrad(grad32, theta)
				scale := max(1, floats.Norm(x, math.Inf(1)))
				if dist := floats.Distance(grad, grad32, math.Inf(1)); !(dist <= grad32Tol*scale) || !(math.Abs(f-f32) <= grad32Tol*scale) {
					t.Errorf("fallback=%v: float32: |ΔL| = %g, |Δ∇L|∞ = %g; want <= %g", fallback, math.Abs(f-f32), dist, grad32Tol*scale)
				}
				if !slices.Equal(theta, orig) || !slices.Equal(x, xorig) || !slices.Equal(x32, x32orig) {
					t.Errorf("fallback=%v: lossGrad modified its inputs", fallback)
				}
				// The loss at θ = 0 is log K (multinomial) or log 2 (binary): a check of the
				// scaling by S and of the penalty's factor.
				zero := make([]float64, len(theta))
				want := math.Log(float64(tc.k))
				for _, q := range []*linProblem{p, p32} {
					if got := q.lossGrad(scratch, zero); !(math.Abs(got-want) <= 1e-12) {
						t.Errorf("fallback=%v, float32=%v: L(0) = %v, want log %d = %v", fallback, q.x32 != nil, got, tc.k, want)
					}
				}
			}
			igemm.NoAssembly = false
		})
	}
}

func TestLogRegBadInput(t *testing.T) {
	good := synthetic(30, 4, 3, 2, false, 1)
	nan := synthetic(30, 4, 3, 2, false, 1)
	nan.X = slices.Clone(nan.X)
	nan.X[7*4+2] = float32(math.NaN())
	nan.RowIDs = make([]int64, 30)
	for i := range nan.RowIDs {
		nan.RowIDs[i] = int64(i + 100)
	}
	inf := synthetic(30, 4, 3, 2, false, 1)
	inf.X = slices.Clone(inf.X)
	inf.X[29*4] = float32(math.Inf(-1))
	single := synthetic(30, 4, 3, 2, false, 1)
	single.Labels = make([]int, 30)
	single.Classes = single.Classes[:1]
	emptyClass := synthetic(30, 4, 3, 2, false, 1)
	emptyClass.Classes = append(slices.Clone(emptyClass.Classes), "ghost")
	constLabel := multiLabel(synthetic(30, 4, 3, 2, false, 1))
	constLabel.Y = slices.Clone(constLabel.Y)
	for i := range 30 {
		constLabel.Y[i*3+1] = 1
	}
	for _, tc := range []struct {
		name string
		d    Dataset
		s    LogRegSettings
		err  error
		msg  string // a part of the message
	}{
		{"C negative", good, LogRegSettings{C: -1}, ErrBadSetting, "C = -1"},
		{"C NaN", good, LogRegSettings{C: math.NaN()}, ErrBadSetting, "C = NaN"},
		{"C infinite", good, LogRegSettings{C: math.Inf(1)}, ErrBadSetting, "C = +Inf"},
		{"tol negative", good, LogRegSettings{Tol: -1}, ErrBadSetting, "tol"},
		{"grid value", good, LogRegSettings{AutoC: true, Cs: []float64{1, 0}}, ErrBadSetting, "grid value 0"},
		{"one fold", good, LogRegSettings{AutoC: true, Folds: 1}, ErrBadSetting, "1 folds"},
		{"folds > rows", good, LogRegSettings{AutoC: true, Folds: 31}, ErrBadSetting, "fold 31 is empty"},
		{"class weight", good, LogRegSettings{ClassWeight: 7}, ErrBadSetting, "class weight"},
		{"precision", good, LogRegSettings{Precision: 2}, ErrBadSetting, "precision Precision(2) unknown; want one of float32, float64"},
		{"NaN feature", nan, LogRegSettings{}, ErrNonFinite, "row 7 (dataset row 107), column 2 is NaN"},
		{"infinite feature", inf, LogRegSettings{}, ErrNonFinite, "row 29, column 0 is -Inf"},
		{"single class", single, LogRegSettings{}, ErrSingleClass, `all 30 rows have the label "Aa"`},
		{"empty class", emptyClass, LogRegSettings{}, ErrEmptyClass, `no rows of class "ghost"`},
		{"empty", Dataset{D: 4, Classes: []string{"a", "b"}}, LogRegSettings{}, ErrEmpty, "no rows"},
		{"constant label", constLabel, LogRegSettings{}, ErrSingleClass, `label "Ba" is on every row`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := FitLogReg(tc.d, tc.s)
			if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.msg) {
				t.Fatalf("err = %v; want %v containing %q", err, tc.err, tc.msg)
			}
			if h != nil {
				t.Errorf("a head came back with the error")
			}
		})
	}
}

func TestParseC(t *testing.T) {
	for _, tc := range []struct {
		in   string
		c    float64
		auto bool
		ok   bool
	}{
		{"1", 1, false, true}, {"0.01", 0.01, false, true}, {"1e4", 1e4, false, true}, {"auto", 0, true, true}, {" AUTO ", 0, true, true},
		{"0", 0, false, false}, {"-1", 0, false, false}, {"NaN", 0, false, false}, {"inf", 0, false, false}, {"x", 0, false, false}, {"", 0, false, false},
	} {
		c, auto, err := ParseC(tc.in)
		if (err == nil) != tc.ok || c != tc.c || auto != tc.auto {
			t.Errorf("ParseC(%q) = %v, %v, %v", tc.in, c, auto, err)
		}
		if err != nil && !errors.Is(err, ErrBadSetting) {
			t.Errorf("ParseC(%q): %v does not wrap ErrBadSetting", tc.in, err)
		}
	}
}

func TestLogSpace(t *testing.T) {
	got := LogSpace(-4, 4, 10)
	// numpy.logspace(-4, 4, 10)
	want := []float64{1e-4, 7.742636826811277e-4, 5.994842503189409e-3, 4.641588833612782e-2, 3.593813663804626e-1,
		2.782559402207126, 21.54434690031882, 166.81005372000593, 1291.5496650148827, 1e4}
	if !floats.EqualApprox(got, want, 1e-12) {
		t.Errorf("LogSpace(-4, 4, 10) = %v\nwant %v", got, want)
	}
}

// TestLogRegFits checks each model on separable-enough synthetic data: it learns
// (accuracy), converges, and its outputs are shaped as documented.
func TestLogRegFits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		d      Dataset
		s      LogRegSettings
		output Output
		minAcc float64
	}{
		{"multinomial", synthetic(600, 16, 5, 3, false, 1), LogRegSettings{}, Softmax, 0.9},
		{"binary", synthetic(400, 16, 2, 3, false, 2), LogRegSettings{}, Binary, 0.9},
		{"balanced skewed", synthetic(600, 16, 4, 3, true, 3), LogRegSettings{ClassWeight: Balanced, Standardize: true}, Softmax, 0.85},
		{"one-vs-rest", multiLabel(synthetic(600, 16, 4, 3, false, 4)), LogRegSettings{C: 10}, Sigmoid, 0.6},
		{"auto C", synthetic(300, 16, 3, 2, false, 5), LogRegSettings{AutoC: true, Cs: LogSpace(-2, 2, 3), Folds: 3}, Softmax, 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var iters int
			tc.s.Progress = func(p Progress) { iters++ }
			x, labels, y := slices.Clone(tc.d.X), slices.Clone(tc.d.Labels), slices.Clone(tc.d.Y)
			h, err := FitLogReg(tc.d, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(x, tc.d.X) || !slices.Equal(labels, tc.d.Labels) || !slices.Equal(y, tc.d.Y) {
				t.Errorf("FitLogReg modified the data")
			}
			if h.Output != tc.output || h.Kind != LogReg || h.MultiLabel != (tc.d.Y != nil) {
				t.Errorf("output %v kind %v multi-label %v", h.Output, h.Kind, h.MultiLabel)
			}
			if !h.Summary.Converged {
				t.Errorf("not converged: %+v", h.Summary)
			}
			if iters == 0 {
				t.Errorf("no progress reported")
			}
			if acc := h.accuracy(&tc.d); !(acc >= tc.minAcc) {
				t.Errorf("training accuracy %.3f < %.3f", acc, tc.minAcc)
			}
			if tc.s.AutoC {
				if len(h.Summary.CV) != 3 || !slices.Contains(tc.s.Cs, h.Summary.C) {
					t.Errorf("CV scores %+v, C %v", h.Summary.CV, h.Summary.C)
				}
				best := slices.MaxFunc(h.Summary.CV, func(a, b CVScore) int { return cmpFloat(a.Accuracy, b.Accuracy) })
				if best.C != h.Summary.C {
					t.Errorf("chose C %v but %v scored best (%+v)", h.Summary.C, best.C, h.Summary.CV)
				}
			}
			// Probabilities: rows sum to 1 (single-label), each in [0, 1].
			k := len(h.Classes)
			p := make([]float32, tc.d.N*k)
			h.Predict(p, tc.d.X, tc.d.N)
			if !slices.Equal(x, tc.d.X) {
				t.Errorf("Predict modified its input")
			}
			for i := range tc.d.N {
				var s float64
				for _, v := range p[i*k : (i+1)*k] {
					if !(v >= 0 && v <= 1) {
						t.Fatalf("row %d: probability %v", i, v)
					}
					s += float64(v)
				}
				if tc.output != Sigmoid && !(math.Abs(s-1) <= 1e-6) {
					t.Fatalf("row %d: probabilities sum to %v", i, s)
				}
			}
		})
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fallbackTol bounds ‖W − W_fallback‖₂/‖W‖₂ between the assembly kernels and the
// BLAS fallback (another summation order; in float32 also another exponential): the
// same iterate to within rounding amplified by the solver, far below a real
// difference. Measured: 6e-16 in float64, 3e-7 in float32.
var fallbackTol = map[Precision]float64{Float64: 1e-6, Float32: 1e-5}

// TestLogRegDeterministic checks that the thread count and repeated runs do not change
// a bit of the result, in both precisions, and that the BLAS fallback agrees with the
// kernel.
func TestLogRegDeterministic(t *testing.T) {
	for _, prec := range []Precision{Float32, Float64} {
		for _, d := range []Dataset{synthetic(1500, 40, 7, 2, false, 9), synthetic(3000, 40, 2, 1, false, 9), multiLabel(synthetic(1200, 40, 3, 2, false, 9))} {
			name := fmt.Sprintf("%v/%d classes/multi-label=%v", prec, len(d.Classes), d.Y != nil)
			fit := func(threads int) *Head {
				h, err := FitLogReg(d, LogRegSettings{Threads: threads, Standardize: true, Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				return h
			}
			a, b, c := fit(1), fit(2), fit(5)
			for _, o := range []*Head{b, c, fit(1)} {
				if !slices.Equal(a.Layers[0].W, o.Layers[0].W) || !slices.Equal(a.Layers[0].B, o.Layers[0].B) {
					t.Fatalf("%s: weights differ between runs or thread counts", name)
				}
			}
			igemm.NoAssembly = true
			g := fit(2)
			igemm.NoAssembly = false
			dist, norm := floats.Distance(a.Layers[0].W, g.Layers[0].W, 2), floats.Norm(a.Layers[0].W, 2)
			if !(dist <= fallbackTol[prec]*norm) {
				t.Errorf("%s: BLAS fallback: |ΔW| = %g, |W| = %g", name, dist, norm)
			}
			t.Logf("%s: %d iterations; fallback: |ΔW|/|W| = %.2g", name, a.Summary.Iterations, dist/norm)
		}
	}
}

func TestParsePrecision(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Precision
		ok   bool
	}{
		{"", Float32, true}, {"float32", Float32, true}, {" Float64 ", Float64, true},
		{"double", Float32, false}, {"f16", Float32, false},
	} {
		got, err := ParsePrecision(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParsePrecision(%q) = %v, %v", tc.in, got, err)
		}
		if err != nil && (!errors.Is(err, ErrBadSetting) || !strings.Contains(err.Error(), "want one of float32, float64")) {
			t.Errorf("ParsePrecision(%q): %v: want ErrBadSetting listing the choices", tc.in, err)
		}
		if err == nil {
			b, _ := got.MarshalText()
			var back Precision
			if err := back.UnmarshalText(b); err != nil || back != got {
				t.Errorf("%v: text round trip gives %v, %v", got, back, err)
			}
		}
	}
}

// TestBinaryImpliedOnes: the binary float32 objective on the features as they are (the
// intercept's column of ones implied, as fitLinear uses it) gives the same bits as on
// the design matrix with the column, for row counts that leave partial chunks and
// partial groups of four, and feature counts below and past the kernel's block. On the
// BLAS fallback, whose dot products sum in their own order, they agree within
// impliedOnesTol.
func TestBinaryImpliedOnes(t *testing.T) {
	for _, sz := range [][2]int{{37, 5}, {1031, 16}, {1030, 40}} {
		d := synthetic(sz[0], sz[1], 2, 2, true, 3)
		tgt := make([]float64, d.N)
		for i, l := range d.Labels {
			tgt[i] = float64(l)
		}
		for _, fallback := range []bool{false, true} {
			igemm.NoAssembly = fallback
			raw := newLinProblem(nil, d.X, d.N, d.D, true, nil, tgt, 2, Uniform, 1, 2)
			full := newLinProblem(nil, designMatrix32(d.X, d.N, d.D, nil, nil, true), d.N, d.D, true, nil, tgt, 2, Uniform, 1, 2)
			if !raw.ones || full.ones {
				t.Fatalf("ones implied: raw %v, full %v", raw.ones, full.ones)
			}
			theta := make([]float64, d.D+1)
			for i := range theta {
				theta[i] = math.Sin(float64(3 * i))
			}
			g1, g2 := make([]float64, len(theta)), make([]float64, len(theta))
			l1, l2 := raw.lossGrad(g1, theta), full.lossGrad(g2, theta)
			if !fallback && (l1 != l2 || !slices.Equal(g1, g2)) {
				t.Errorf("n=%d d=%d: loss %v vs %v; gradients equal: %v", d.N, d.D, l1, l2, slices.Equal(g1, g2))
			}
			if fallback && (!scalar.EqualWithinRel(l1, l2, impliedOnesTol) || !floats.EqualApprox(g1, g2, impliedOnesTol)) {
				t.Errorf("n=%d d=%d fallback: loss %v vs %v, gradients %v vs %v", d.N, d.D, l1, l2, g1, g2)
			}
		}
		igemm.NoAssembly = false
	}
}

// impliedOnesTol: float32 sums of up to 1,031 terms in two orders (a few hundred ulps
// of 2⁻²⁴ at most, relative to values of order 1).
const impliedOnesTol = 1e-5

// TestBinaryWide checks the Float64 binary objective on float32 features widened as
// they are read (newBinaryProblem) against the same objective on the float64 design
// matrix: the same bits with the kernels (with and without the intercept), within
// impliedOnesTol on the BLAS fallback (whose dot products sum the column of ones in
// their own order). The features are not modified.
func TestBinaryWide(t *testing.T) {
	for _, sz := range [][2]int{{37, 5}, {1031, 16}, {1030, 40}} {
		d := synthetic(sz[0], sz[1], 2, 2, true, 3)
		x0 := slices.Clone(d.X)
		tgt := make([]float64, d.N)
		for i, l := range d.Labels {
			tgt[i] = float64(l)
		}
		for _, intercept := range []bool{true, false} {
			for _, fallback := range []bool{false, true} {
				igemm.NoAssembly = fallback
				wide := newBinaryProblem(nil, d.X, Float64, d.N, d.D, intercept, tgt, Balanced, 0.5, 2)
				full := newLinProblem(designMatrix(d.X, d.N, d.D, nil, nil, intercept), nil, d.N, d.D, intercept, nil, tgt, 2, Balanced, 0.5, 2)
				if !wide.wide || wide.ones != intercept {
					t.Fatalf("wide problem: wide %v, ones %v (intercept %v)", wide.wide, wide.ones, intercept)
				}
				theta := make([]float64, wide.d1)
				for i := range theta {
					theta[i] = math.Sin(float64(3 * i))
				}
				g1, g2 := make([]float64, len(theta)), make([]float64, len(theta))
				l1, l2 := wide.lossGrad(g1, theta), full.lossGrad(g2, theta)
				exact := !fallback || !intercept
				if exact && (l1 != l2 || !slices.Equal(g1, g2)) {
					t.Errorf("n=%d d=%d intercept %v fallback %v: loss %v vs %v; gradients equal: %v", d.N, d.D, intercept, fallback, l1, l2, slices.Equal(g1, g2))
				}
				if !exact && (!scalar.EqualWithinRel(l1, l2, impliedOnesTol) || !floats.EqualApprox(g1, g2, impliedOnesTol)) {
					t.Errorf("n=%d d=%d fallback: loss %v vs %v, gradients %v vs %v", d.N, d.D, l1, l2, g1, g2)
				}
			}
			igemm.NoAssembly = false
		}
		if !slices.Equal(d.X, x0) {
			t.Fatal("features modified")
		}
	}
}
