package head

import (
	"context"
	"math"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// minimizeTol is how close the minimiser must come to the known optimum: the runs
// below stop at max|g| <= 1e-10 on well-conditioned problems, where |x − x*| is about
// |g|/μ with μ >= 1e-2.
const minimizeTol = 1e-6

func TestMinimize(t *testing.T) {
	for _, tc := range []struct {
		name string
		x0   []float64
		fg   lossGrad
		want []float64
	}{
		{"quadratic", []float64{3, -4, 5}, func(g, x []float64) float64 {
			// f = Σ_i (i+1)/2 · (x_i − i)²
			var f float64
			for i, v := range x {
				a := float64(i + 1)
				f += a / 2 * (v - float64(i)) * (v - float64(i))
				g[i] = a * (v - float64(i))
			}
			return f
		}, []float64{0, 1, 2}},
		{"rosenbrock", []float64{-1.2, 1}, func(g, x []float64) float64 {
			a, b := 1-x[0], x[1]-x[0]*x[0]
			g[0] = -2*a - 400*x[0]*b
			g[1] = 200 * b
			return a*a + 100*b*b
		}, []float64{1, 1}},
		{"extended rosenbrock", []float64{-1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1}, func(g, x []float64) float64 {
			var f float64
			for i := 0; i < len(x); i += 2 {
				a, b := 1-x[i], x[i+1]-x[i]*x[i]
				g[i] = -2*a - 400*x[i]*b
				g[i+1] = 200 * b
				f += a*a + 100*b*b
			}
			return f
		}, []float64{1, 1, 1, 1, 1, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := append([]float64(nil), tc.x0...)
			s := sklearnLBFGS(1e-10, 1000)
			s.ftol = 0 // stop on the gradient only
			var iters int
			r := minimize(context.Background(), x, tc.fg, s, func(it int, f, g float64) { iters = it })
			if r.stop != stopGradient {
				t.Fatalf("stopped by %v after %d iterations (f=%v, max|g|=%v); want the gradient test", r.stop, r.iter, r.f, r.gmax)
			}
			if iters != r.iter {
				t.Errorf("progress saw %d iterations, result says %d", iters, r.iter)
			}
			for i, v := range x {
				if !scalar.EqualWithinAbs(v, tc.want[i], minimizeTol) {
					t.Errorf("x[%d] = %v, want %v", i, v, tc.want[i])
				}
			}
		})
	}
}

func TestMinimizeStops(t *testing.T) {
	rosen := func(g, x []float64) float64 {
		a, b := 1-x[0], x[1]-x[0]*x[0]
		g[0] = -2*a - 400*x[0]*b
		g[1] = 200 * b
		return a*a + 100*b*b
	}
	x := []float64{-1.2, 1}
	r := minimize(context.Background(), x, rosen, sklearnLBFGS(1e-12, 5), nil)
	if r.stop != stopMaxIter || r.iter != 5 {
		t.Errorf("max_iter 5: stopped by %v after %d iterations", r.stop, r.iter)
	}
	x = []float64{1, 1}
	r = minimize(context.Background(), x, rosen, sklearnLBFGS(1e-4, 100), nil)
	if r.stop != stopGradient || r.iter != 0 || r.evals != 1 {
		t.Errorf("at the optimum: %v after %d iterations, %d evaluations; want an immediate gradient stop", r.stop, r.iter, r.evals)
	}
	// A function that is flat to rounding stops on the relative reduction.
	x = []float64{1}
	r = minimize(context.Background(), x, func(g, x []float64) float64 { g[0] = 1e-3; return 1 }, sklearnLBFGS(1e-6, 100), nil)
	if r.stop != stopRelReduce || r.iter != 1 || r.f != 1 {
		t.Errorf("flat function: %v after %d iterations, f = %v; want the relative-reduction stop after 1", r.stop, r.iter, r.f)
	}
	// A function whose slope never decreases cannot satisfy the line search: with an
	// empty memory the run ends there, with the starting point.
	x = []float64{0}
	r = minimize(context.Background(), x, func(g, x []float64) float64 { g[0] = -1; return math.NaN() }, sklearnLBFGS(1e-6, 100), nil)
	if r.stop != stopLineSearch || x[0] != 0 || r.evals != 51 {
		t.Errorf("NaN function: %v after %d evaluations, x = %v; want a line-search stop after 1+50 at x = 0", r.stop, r.evals, x)
	}
}
