package head

import (
	"context"
	"math"

	"gonum.org/v1/gonum/floats"
)

// This file ports the unconstrained path of L-BFGS-B 3.0 (Zhu, Byrd, Lu, Nocedal,
// ACM TOMS 23(4), 1997; Morales, Nocedal, ACM TOMS 38(1), 2011) as scipy 1.17's
// scipy.optimize.minimize(method="L-BFGS-B") runs it for scikit-learn: routines mainlb,
// lnsrlb, dcsrch and dcstep. Without bounds the generalized Cauchy point plus subspace
// minimisation of L-BFGS-B reduce to the quasi-Newton step −H·g of the compact L-BFGS
// matrix, which the two-loop recursion computes (Nocedal & Wright, Numerical
// Optimization, 2nd ed., algorithm 7.4).

// lbfgsSettings are scipy's L-BFGS-B options as scikit-learn sets them.
type lbfgsSettings struct {
	m       int     // correction pairs kept (maxcor), 10
	maxIter int     // iterations (maxiter = max_iter)
	gtol    float64 // stop when max|g_i| <= gtol (pgtol = tol)
	ftol    float64 // stop when (f_old−f)/max(|f_old|,|f|,1) <= ftol (64·ε)
	maxls   int     // line-search trials per iteration (50)
}

func sklearnLBFGS(tol float64, maxIter int) lbfgsSettings {
	return lbfgsSettings{m: 10, maxIter: maxIter, gtol: tol, ftol: 64 * eps64, maxls: 50}
}

const (
	eps64 = 0x1p-52 // float64 machine epsilon (numpy.finfo(float).eps)
	// lsMaxStep is L-BFGS-B's largest step for unbounded variables (big = 1e10).
	lsMaxStep = 1e10
	// dcsrch parameters set by lnsrlb.
	lsFtol = 1e-3
	lsGtol = 0.9
	lsXtol = 0.1
)

// stopReason says why minimize returned.
type stopReason int

const (
	stopGradient   stopReason = iota // max|g| <= gtol
	stopRelReduce                    // relative reduction of f <= ftol
	stopMaxIter                      // maxIter iterations done
	stopLineSearch                   // the line search failed with an empty memory
	stopCanceled                     // the context was cancelled between iterations
)

func (r stopReason) String() string {
	switch r {
	case stopGradient:
		return "gradient below tol"
	case stopRelReduce:
		return "relative reduction of the loss below 64·eps"
	case stopMaxIter:
		return "max_iter reached"
	case stopLineSearch:
		return "line search failed"
	case stopCanceled:
		return "cancelled"
	}
	return "unknown"
}

// converged reports whether the stop is one of scipy's CONVERGENCE messages.
func (r stopReason) converged() bool { return r == stopGradient || r == stopRelReduce }

// lbfgsResult summarises a run.
type lbfgsResult struct {
	iter, evals int
	f, gmax     float64
	stop        stopReason
}

// lossGrad returns f(x) and writes ∇f(x) to grad; it must not modify x.
type lossGrad func(grad, x []float64) float64

// minimize runs L-BFGS-B from x, which it overwrites with the solution. progress, when
// not nil, is called after each iteration. ctx is checked before each iteration (after
// the progress call of the previous one): once it is done, minimize returns the last
// iterate with stop stopCanceled.
func minimize(ctx context.Context, x []float64, fg lossGrad, s lbfgsSettings, progress func(iter int, f, gmax float64)) lbfgsResult {
	n := len(x)
	g := make([]float64, n)
	d := make([]float64, n)
	xold := make([]float64, n)
	gold := make([]float64, n)
	alpha := make([]float64, s.m)
	sHist := make([][]float64, s.m)
	yHist := make([][]float64, s.m)
	rho := make([]float64, s.m)
	for i := range sHist {
		sHist[i] = make([]float64, n)
		yHist[i] = make([]float64, n)
	}
	head, col := 0, 0 // oldest pair index, pairs stored
	gamma := 1.0      // 1/θ: the initial inverse Hessian scale

	f := fg(g, x)
	res := lbfgsResult{evals: 1}
	gmax := floats.Norm(g, math.Inf(1))
	if gmax <= s.gtol {
		return lbfgsResult{evals: 1, f: f, gmax: gmax, stop: stopGradient}
	}
	if s.maxIter <= 0 {
		return lbfgsResult{evals: 1, f: f, gmax: gmax, stop: stopMaxIter}
	}
	var ls dcsrch
	for {
		if ctx.Err() != nil {
			res.f, res.gmax, res.stop = f, floats.Norm(g, math.Inf(1)), stopCanceled
			return res
		}
		// d = −H·g by the two-loop recursion (H = I when the memory is empty).
		copy(d, g)
		for j := col - 1; j >= 0; j-- {
			i := (head + j) % s.m
			alpha[i] = rho[i] * floats.Dot(sHist[i], d)
			floats.AddScaled(d, -alpha[i], yHist[i])
		}
		// d holds −r of the textbook from here on (r = γ·q), so ρ·yᵀd is −β and the
		// update r += (α−β)·s becomes d += (−α−ρ·yᵀd)·s.
		floats.Scale(-gamma, d)
		for j := range col {
			i := (head + j) % s.m
			floats.AddScaled(d, -alpha[i]-rho[i]*floats.Dot(yHist[i], d), sHist[i])
		}

		// Line search along d (lnsrlb).
		copy(xold, x)
		copy(gold, g)
		fold := f
		dnorm := floats.Norm(d, 2)
		stp := 1.0
		if res.iter == 0 {
			stp = math.Min(1/dnorm, lsMaxStep)
		}
		gd := floats.Dot(g, d)
		gdold := gd
		failed := gd >= 0 // not a descent direction: no line search possible
		if !failed {
			ls.start(f, gd, stp, 0, lsMaxStep)
			for trials := 0; ; trials++ {
				if trials > 0 {
					var done bool
					stp, done = ls.next(f, gd)
					if done {
						break
					}
				}
				if trials >= s.maxls {
					failed = true
					break
				}
				copy(x, xold)
				floats.AddScaled(x, stp, d)
				f = fg(g, x)
				res.evals++
				gd = floats.Dot(g, d)
			}
		}
		if failed {
			copy(x, xold)
			copy(g, gold)
			f = fold
			if col == 0 {
				res.iter++
				res.f, res.gmax, res.stop = f, floats.Norm(g, math.Inf(1)), stopLineSearch
				return res
			}
			// Refresh the memory and restart from steepest descent.
			head, col, gamma = 0, 0, 1
			continue
		}

		res.iter++
		gmax = floats.Norm(g, math.Inf(1))
		if progress != nil {
			progress(res.iter, f, gmax)
		}
		res.f, res.gmax = f, gmax
		switch {
		case gmax <= s.gtol:
			res.stop = stopGradient
			return res
		case fold-f <= s.ftol*math.Max(math.Max(math.Abs(fold), math.Abs(f)), 1):
			res.stop = stopRelReduce
			return res
		case res.iter >= s.maxIter:
			res.stop = stopMaxIter
			return res
		}

		// Update the memory with s = x − xold = stp·d and y = g − gold, unless the
		// curvature sᵀy is not positive enough.
		var dr, ddum float64
		if stp == 1 {
			dr, ddum = gd-gdold, -gdold
		} else {
			dr, ddum = (gd-gdold)*stp, -gdold*stp
		}
		if dr <= eps64*ddum {
			continue // skip the update
		}
		var i int
		if col < s.m {
			i = (head + col) % s.m
			col++
		} else {
			i = head
			head = (head + 1) % s.m
		}
		floats.ScaleTo(sHist[i], stp, d)
		floats.SubTo(yHist[i], g, gold)
		rr := floats.Dot(yHist[i], yHist[i])
		rho[i] = 1 / dr
		gamma = dr / rr
	}
}

// dcsrch is the MINPACK-2 line search of Moré and Thuente (ACM TOMS 20(3), 1994) as
// L-BFGS-B calls it: it finds a step satisfying the strong Wolfe conditions with
// ftol=1e-3, gtol=0.9, xtol=0.1, and also ends (accepting the current step) on its
// warnings: rounding errors, xtol satisfied, step at its bounds.
type dcsrch struct {
	brackt              bool
	stage               int
	ginit, gtest, finit float64
	width, width1       float64
	stx, fx, gx         float64
	sty, fy, gy         float64
	stmin, stmax        float64
	stpmin, stpmax      float64
	stp                 float64
}

const (
	dcXtrapl = 1.1
	dcXtrapu = 4.0
)

// start begins a search at step stp from f(0) = f, f'(0) = g < 0.
func (s *dcsrch) start(f, g, stp, stpmin, stpmax float64) {
	*s = dcsrch{
		stage: 1, finit: f, ginit: g, gtest: lsFtol * g,
		width: stpmax - stpmin, stx: 0, fx: f, gx: g, sty: 0, fy: f, gy: g,
		stmin: 0, stmax: stp + dcXtrapu*stp, stpmin: stpmin, stpmax: stpmax, stp: stp,
	}
	s.width1 = s.width / 0.5
}

// next takes f and f' at the current step and returns the next step to try, or done
// when the current step is accepted.
func (s *dcsrch) next(f, g float64) (stp float64, done bool) {
	ftest := s.finit + s.stp*s.gtest
	if s.stage == 1 && f <= ftest && g >= 0 {
		s.stage = 2
	}
	// Warnings end the search with the current step, as lnsrlb accepts them.
	if s.brackt && (s.stp <= s.stmin || s.stp >= s.stmax) {
		return s.stp, true // rounding errors prevent progress
	}
	if s.brackt && s.stmax-s.stmin <= lsXtol*s.stmax {
		return s.stp, true // xtol test satisfied
	}
	if s.stp == s.stpmax && f <= ftest && g <= s.gtest {
		return s.stp, true // stp = stpmax
	}
	if s.stp == s.stpmin && (f > ftest || g >= s.gtest) {
		return s.stp, true // stp = stpmin
	}
	if f <= ftest && math.Abs(g) <= lsGtol*(-s.ginit) {
		return s.stp, true // convergence
	}

	if s.stage == 1 && f <= s.fx && f > ftest {
		// A lower value but not a sufficient decrease: step on the modified function
		// ψ(α) = f(α) − f(0) − ftol·α·f'(0).
		fm := f - s.stp*s.gtest
		fxm := s.fx - s.stx*s.gtest
		fym := s.fy - s.sty*s.gtest
		gm := g - s.gtest
		gxm := s.gx - s.gtest
		gym := s.gy - s.gtest
		s.dcstep(&fxm, &gxm, &fym, &gym, fm, gm)
		s.fx = fxm + s.stx*s.gtest
		s.fy = fym + s.sty*s.gtest
		s.gx = gxm + s.gtest
		s.gy = gym + s.gtest
	} else {
		s.dcstep(&s.fx, &s.gx, &s.fy, &s.gy, f, g)
	}

	if s.brackt {
		// Bisect when the interval did not shrink enough in two steps.
		if math.Abs(s.sty-s.stx) >= 0.66*s.width1 {
			s.stp = s.stx + 0.5*(s.sty-s.stx)
		}
		s.width1 = s.width
		s.width = math.Abs(s.sty - s.stx)
		s.stmin = math.Min(s.stx, s.sty)
		s.stmax = math.Max(s.stx, s.sty)
	} else {
		s.stmin = s.stp + dcXtrapl*(s.stp-s.stx)
		s.stmax = s.stp + dcXtrapu*(s.stp-s.stx)
	}
	s.stp = math.Max(s.stp, s.stpmin)
	s.stp = math.Min(s.stp, s.stpmax)
	if s.brackt && (s.stp <= s.stmin || s.stp >= s.stmax) || s.brackt && s.stmax-s.stmin <= lsXtol*s.stmax {
		s.stp = s.stx // no further progress: the best step so far
	}
	return s.stp, false
}

// dcstep updates the interval [stx, sty] known to hold a step satisfying the
// conditions and computes the next trial step (MINPACK-2 dcstep), given f and f' (fp,
// dp) at the current step; fx, dx, fy, dy are the values at the interval's ends.
func (s *dcsrch) dcstep(fx, dx, fy, dy *float64, fp, dp float64) {
	stx, sty, stp := s.stx, s.sty, s.stp
	stpmin, stpmax := s.stmin, s.stmax
	sgnd := dp * (*dx / math.Abs(*dx))
	var stpf float64
	switch {
	case fp > *fx:
		// A higher function value: the minimum is bracketed. Take the cubic step if it
		// is closer to stx than the quadratic one, else their average.
		theta := 3*(*fx-fp)/(stp-stx) + *dx + dp
		sc := math.Max(math.Max(math.Abs(theta), math.Abs(*dx)), math.Abs(dp))
		gamma := sc * math.Sqrt((theta/sc)*(theta/sc)-(*dx/sc)*(dp/sc))
		if stp < stx {
			gamma = -gamma
		}
		p := (gamma - *dx) + theta
		q := ((gamma - *dx) + gamma) + dp
		r := p / q
		stpc := stx + r*(stp-stx)
		stpq := stx + ((*dx/((*fx-fp)/(stp-stx)+*dx))/2)*(stp-stx)
		if math.Abs(stpc-stx) < math.Abs(stpq-stx) {
			stpf = stpc
		} else {
			stpf = stpc + (stpq-stpc)/2
		}
		s.brackt = true
	case sgnd < 0:
		// A lower value and derivatives of opposite sign: bracketed. Take the step
		// farther from stp of the cubic and the secant steps.
		theta := 3*(*fx-fp)/(stp-stx) + *dx + dp
		sc := math.Max(math.Max(math.Abs(theta), math.Abs(*dx)), math.Abs(dp))
		gamma := sc * math.Sqrt((theta/sc)*(theta/sc)-(*dx/sc)*(dp/sc))
		if stp > stx {
			gamma = -gamma
		}
		p := (gamma - dp) + theta
		q := ((gamma - dp) + gamma) + *dx
		r := p / q
		stpc := stp + r*(stx-stp)
		stpq := stp + (dp/(dp-*dx))*(stx-stp)
		if math.Abs(stpc-stp) > math.Abs(stpq-stp) {
			stpf = stpc
		} else {
			stpf = stpq
		}
		s.brackt = true
	case math.Abs(dp) < math.Abs(*dx):
		// A lower value, derivatives of the same sign, and the derivative's magnitude
		// decreases.
		theta := 3*(*fx-fp)/(stp-stx) + *dx + dp
		sc := math.Max(math.Max(math.Abs(theta), math.Abs(*dx)), math.Abs(dp))
		gamma := sc * math.Sqrt(math.Max(0, (theta/sc)*(theta/sc)-(*dx/sc)*(dp/sc)))
		if stp > stx {
			gamma = -gamma
		}
		p := (gamma - dp) + theta
		q := (gamma + (*dx - dp)) + gamma
		r := p / q
		var stpc float64
		switch {
		case r < 0 && gamma != 0:
			stpc = stp + r*(stx-stp)
		case stp > stx:
			stpc = stpmax
		default:
			stpc = stpmin
		}
		stpq := stp + (dp/(dp-*dx))*(stx-stp)
		if s.brackt {
			if math.Abs(stpc-stp) < math.Abs(stpq-stp) {
				stpf = stpc
			} else {
				stpf = stpq
			}
			if stp > stx {
				stpf = math.Min(stp+0.66*(sty-stp), stpf)
			} else {
				stpf = math.Max(stp+0.66*(sty-stp), stpf)
			}
		} else {
			if math.Abs(stpc-stp) > math.Abs(stpq-stp) {
				stpf = stpc
			} else {
				stpf = stpq
			}
			stpf = math.Min(stpmax, stpf)
			stpf = math.Max(stpmin, stpf)
		}
	default:
		// A lower value, derivatives of the same sign, and the derivative's magnitude
		// does not decrease.
		switch {
		case s.brackt:
			theta := 3*(fp-*fy)/(sty-stp) + *dy + dp
			sc := math.Max(math.Max(math.Abs(theta), math.Abs(*dy)), math.Abs(dp))
			gamma := sc * math.Sqrt((theta/sc)*(theta/sc)-(*dy/sc)*(dp/sc))
			if stp > sty {
				gamma = -gamma
			}
			p := (gamma - dp) + theta
			q := ((gamma - dp) + gamma) + *dy
			r := p / q
			stpf = stp + r*(sty-stp)
		case stp > stx:
			stpf = stpmax
		default:
			stpf = stpmin
		}
	}

	// Update the interval.
	if fp > *fx {
		s.sty, *fy, *dy = stp, fp, dp
	} else {
		if sgnd < 0 {
			s.sty, *fy, *dy = stx, *fx, *dx
		}
		s.stx, *fx, *dx = stp, fp, dp
	}
	s.stp = stpf
}
