package head

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/gonum/floats"

	igemm "github.com/headstart-ml/headstart/internal/gemm"
)

// ClassWeight is how training rows are weighted by class.
type ClassWeight int

const (
	// Uniform weighs every row 1 (scikit-learn's class_weight=None).
	Uniform ClassWeight = iota
	// Balanced weighs a row of class c by n/(K·n_c), so that every class weighs the same
	// in total (scikit-learn's class_weight="balanced").
	Balanced
)

// String returns the weighting's name: none or balanced (what ParseClassWeight accepts).
func (w ClassWeight) String() string {
	switch w {
	case Uniform:
		return "none"
	case Balanced:
		return "balanced"
	}
	return fmt.Sprintf("ClassWeight(%d)", int(w))
}

// ParseClassWeight parses a class weighting: none (or empty) or balanced.
func ParseClassWeight(s string) (ClassWeight, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none", "uniform":
		return Uniform, nil
	case "balanced":
		return Balanced, nil
	}
	return Uniform, errorf(ErrBadSetting, "head: class weight %q unknown; want one of none, balanced", s)
}

// MarshalText implements encoding.TextMarshaler.
func (w ClassWeight) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (w *ClassWeight) UnmarshalText(b []byte) error {
	v, err := ParseClassWeight(string(b))
	*w = v
	return err
}

// ParseC parses a --C flag: a positive number, or "auto" for cross-validation. C <= 0,
// NaN or infinity is an error wrapping ErrBadSetting.
func ParseC(s string) (c float64, auto bool, err error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "auto") {
		return 0, true, nil
	}
	c, err = strconv.ParseFloat(s, 64)
	if err != nil || !(c > 0) || math.IsInf(c, 0) {
		return 0, false, errorf(ErrBadSetting, "head: C %q: want a positive number (the inverse regularisation strength) or auto", s)
	}
	return c, false, nil
}

// Precision is the floating-point type in which FitLogReg computes the data-heavy part
// of the objective: the logits X·Θᵀ, the softmax (or sigmoid) and the gradient's
// product Gᵀ·X. The solver's state (parameters, L-BFGS history, line search) is float64
// either way.
type Precision int

const (
	// Float32 computes them in float32, at the parameters rounded to float32, as
	// scikit-learn does on float32 features: scipy's L-BFGS-B hands the objective
	// parameters of the features' dtype, and the products run in float32 BLAS. The
	// loss and the gradient are accumulated in float64 from float32 terms. Faster than
	// Float64 with three classes or more (binary problems read the same float32
	// features either way, at about the same cost); on the assembly kernels, product
	// terms below float32's smallest normal number count as 0 (see the package
	// documentation). The fit
	// differs from the Float64 one by float32 rounding amplified by the solver (like
	// scikit-learn's fits on float32 and float64 data). It follows scikit-learn's
	// float32 fit closely but not always iteration for iteration: the float32 products
	// sum in another order than scikit-learn's BLAS, the objective differs in its last
	// float32 bits, and where the line search compares nearly equal losses L-BFGS can
	// take another step; on many rows scikit-learn's float32 gradient is rounded enough
	// to stop its fit early (see the package documentation; BENCHMARKS.md lists the
	// sets where the counts differ). Float64 is the setting that matches scikit-learn
	// iteration for iteration (on features cast to float64).
	Float32 Precision = iota
	// Float64 computes the objective in float64: scikit-learn's fit on features cast
	// to float64.
	Float64
)

// String returns the precision's name: float32 or float64 (what ParsePrecision
// accepts).
func (p Precision) String() string {
	switch p {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// ParsePrecision parses a precision: float32 (or empty) or float64.
func ParsePrecision(s string) (Precision, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "float32":
		return Float32, nil
	case "float64":
		return Float64, nil
	}
	return Float32, errorf(ErrBadSetting, "head: precision %q unknown; want one of float32, float64", s)
}

// MarshalText implements encoding.TextMarshaler.
func (p Precision) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Precision) UnmarshalText(b []byte) error {
	v, err := ParsePrecision(string(b))
	*p = v
	return err
}

// LogRegSettings configure FitLogReg. The zero value is valid: C=1, tol=1e-4,
// max_iter=100, an intercept, uniform class weights, raw features, float32 products
// (scikit-learn's LogisticRegression defaults on float32 features).
type LogRegSettings struct {
	// C is the inverse of the L2 regularisation strength (scikit-learn's C). Default 1
	// when 0; negative, NaN or infinite values are an error (ErrBadSetting).
	C float64 `json:"C"`
	// AutoC chooses C by stratified k-fold cross-validation over Cs (best mean
	// accuracy, the smallest C on a tie) and refits on all rows with it; C is ignored.
	AutoC bool `json:"auto_c,omitempty"`
	// Cs is the grid for AutoC. Default 10 values spaced evenly in log from 1e-4 to 1e4
	// (LogisticRegressionCV's Cs=10).
	Cs []float64 `json:"cs,omitempty"`
	// Folds is the number of cross-validation folds for AutoC. Default 5.
	Folds int `json:"folds,omitempty"`
	// Tol stops the solver when max |∂L/∂θ| <= Tol (scipy's gtol). Default 1e-4.
	Tol float64 `json:"tol"`
	// MaxIter bounds the solver's iterations. Default 100.
	MaxIter int `json:"max_iter"`
	// NoIntercept fits without intercepts (fit_intercept=False).
	NoIntercept bool `json:"no_intercept,omitempty"`
	// ClassWeight weighs rows by class. Default Uniform.
	ClassWeight ClassWeight `json:"class_weight"`
	// Standardize scales each feature to zero mean and unit variance on the training
	// rows; the head stores the mean and deviation and applies them when predicting.
	Standardize bool `json:"standardize"`
	// Precision is the floating-point type of the objective's products and softmax.
	// Default Float32, what scikit-learn does on float32 features (a feature store's);
	// Float64 matches scikit-learn on features cast to float64.
	Precision Precision `json:"precision"`
	// Seed draws the cross-validation folds. Default 0 (a fixed seed).
	Seed uint64 `json:"seed"`
	// Threads bounds the goroutines computing the loss (and the labels fitted at once
	// one-vs-rest) and the matrix products. Default runtime.GOMAXPROCS(0). (A BLAS
	// installed with blas64.Use or blas32.Use runs the products on its own threads.)
	// The result does not depend on Threads.
	Threads int `json:"-"`
	// Progress, when set, is called after every solver iteration, from one goroutine
	// at a time.
	Progress func(Progress) `json:"-"`
}

// Progress reports one iteration (logistic regression) or epoch (MLP) of training.
type Progress struct {
	// Stage says which fit: "fit", "cv C=0.01 fold 2/5", "label NAME" (one-vs-rest),
	// "train" (MLP).
	Stage string
	Iter  int     // iteration or epoch, from 1
	Loss  float64 // objective (logreg) or mean training loss of the epoch (MLP)
	// GradMax is max |∂L/∂θ| (logreg).
	GradMax float64
	// ValidLoss and ValidAccuracy are measured on the validation rows (MLP).
	ValidLoss, ValidAccuracy float64
}

func (s *LogRegSettings) setDefaults() error {
	if s.C == 0 {
		s.C = 1
	}
	if !(s.C > 0) || math.IsInf(s.C, 0) {
		return errorf(ErrBadSetting, "head: C = %v; want a positive number (the inverse regularisation strength)", s.C)
	}
	if s.AutoC {
		if len(s.Cs) == 0 {
			s.Cs = LogSpace(-4, 4, 10)
		}
		for _, c := range s.Cs {
			if !(c > 0) || math.IsInf(c, 0) {
				return errorf(ErrBadSetting, "head: C grid value %v; want positive numbers", c)
			}
		}
		if s.Folds == 0 {
			s.Folds = 5
		}
		if s.Folds < 2 {
			return errorf(ErrBadSetting, "head: %d folds; want at least 2", s.Folds)
		}
	}
	if s.Tol == 0 {
		s.Tol = 1e-4
	}
	if !(s.Tol > 0) {
		return errorf(ErrBadSetting, "head: tol = %v; want a positive number", s.Tol)
	}
	if s.MaxIter == 0 {
		s.MaxIter = 100
	}
	if s.MaxIter < 0 {
		return errorf(ErrBadSetting, "head: max_iter = %d; want a positive number", s.MaxIter)
	}
	if s.ClassWeight != Uniform && s.ClassWeight != Balanced {
		return errorf(ErrBadSetting, "head: class weight %v unknown; want one of none, balanced", s.ClassWeight)
	}
	if s.Precision != Float32 && s.Precision != Float64 {
		return errorf(ErrBadSetting, "head: precision %v unknown; want one of float32, float64", s.Precision)
	}
	if s.Threads <= 0 {
		s.Threads = runtime.GOMAXPROCS(0)
	}
	return nil
}

// LogSpace returns n values spaced evenly on a log scale from 10^lo to 10^hi, as
// numpy.logspace(lo, hi, n).
func LogSpace(lo, hi float64, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		e := lo
		if n > 1 {
			e = lo + (hi-lo)*float64(i)/float64(n-1)
		}
		v[i] = math.Pow(10, e)
	}
	return v
}

// FitLogReg fits a logistic regression to d (see the package documentation for the
// objective and the solver): multinomial for three classes or more, scikit-learn's
// binary model for two, one-vs-rest for multi-label data. d is not modified.
func FitLogReg(d Dataset, s LogRegSettings) (*Head, error) {
	return FitLogRegContext(context.Background(), d, s)
}

// FitLogRegContext is FitLogReg stopped by ctx: the solver checks it between its
// iterations, and cross-validation (AutoC) and one-vs-rest fits also between their fits.
// Once ctx is done it returns an error that says where the fit stopped and wraps
// ctx.Err(). A run that is not cancelled returns what FitLogReg returns.
func FitLogRegContext(ctx context.Context, d Dataset, s LogRegSettings) (*Head, error) {
	start := time.Now()
	if err := s.setDefaults(); err != nil {
		return nil, err
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	var cv []CVScore
	if s.AutoC {
		var err error
		if s.C, cv, err = crossValidateC(ctx, &d, &s); err != nil {
			return nil, err
		}
	}
	h, sum, err := fitLinear(ctx, &d, &s, s.C, "fit")
	if err != nil {
		return nil, err
	}
	sum.CV = cv
	sum.Elapsed = time.Since(start)
	h.Summary = sum
	settings := s
	settings.Threads, settings.Progress = 0, nil // as saved
	h.LogRegSettings = &settings
	return h, nil
}

// crossValidateC scores every C of the grid by stratified k-fold accuracy.
func crossValidateC(ctx context.Context, d *Dataset, s *LogRegSettings) (float64, []CVScore, error) {
	strata, ns := d.strata()
	fold := stratifiedFolds(strata, ns, s.Folds, newRNG(s.Seed))
	type split struct{ train, test Dataset }
	splits := make([]split, s.Folds)
	for f := range s.Folds {
		tr, te := splitFold(fold, f)
		if len(te) == 0 || len(tr) == 0 {
			return 0, nil, errorf(ErrBadSetting, "head: %d folds for %d rows: fold %d is empty; use fewer folds", s.Folds, d.N, f+1)
		}
		splits[f] = split{d.subset(tr), d.subset(te)}
	}
	scores := make([]CVScore, len(s.Cs))
	best := 0
	for ci, c := range s.Cs {
		sc := CVScore{C: c, Folds: make([]float64, s.Folds)}
		for f, sp := range splits {
			stage := fmt.Sprintf("cv C=%.3g fold %d/%d", c, f+1, s.Folds)
			if err := ctx.Err(); err != nil {
				return 0, nil, fmt.Errorf("head: logistic regression cancelled before %s (%d of %d cross-validation fits done): %w", stage, ci*s.Folds+f, len(s.Cs)*s.Folds, err)
			}
			h, _, err := fitLinear(ctx, &sp.train, s, c, stage)
			if err != nil {
				return 0, nil, err
			}
			sc.Folds[f] = h.accuracy(&sp.test)
			sc.Accuracy += sc.Folds[f] / float64(s.Folds)
		}
		scores[ci] = sc
		if sc.Accuracy > scores[best].Accuracy {
			best = ci
		}
	}
	return s.Cs[best], scores, nil
}

// accuracy scores h on d (whose classes are h's): the fraction of rows whose predicted
// class is right, or for multi-label data whose predicted label set is exactly right.
func (h *Head) accuracy(d *Dataset) float64 {
	right := 0
	if d.Y != nil {
		k := len(h.Classes)
		sets := make([]bool, d.N*k)
		h.PredictSets(sets, d.X, d.N, 0.5)
		for i := range d.N {
			ok := true
			for c := range k {
				ok = ok && sets[i*k+c] == (d.Y[i*k+c] == 1)
			}
			if ok {
				right++
			}
		}
	} else {
		pred := make([]int, d.N)
		h.PredictLabels(pred, d.X, d.N)
		for i, p := range pred {
			if p == d.Labels[i] {
				right++
			}
		}
	}
	return float64(right) / float64(d.N)
}

// fitLinear fits the linear model with the given C on d (validated or a CV split) and
// returns the head, without settings, and its summary. Its only error is the
// cancellation of ctx.
func fitLinear(ctx context.Context, d *Dataset, s *LogRegSettings, C float64, stage string) (*Head, Summary, error) {
	k := len(d.Classes)
	h := &Head{Kind: LogReg, Classes: slices.Clone(d.Classes), MultiLabel: d.Y != nil, Dim: d.D, Fingerprint: d.Fingerprint}
	var mean, std []float64
	if s.Standardize {
		mean, std = standardizer(d.X, d.N, d.D)
		h.Mean, h.Std = mean, std
	}
	var x []float64
	var x32 []float32
	switch {
	case (k == 2 || d.Y != nil) && mean == nil:
		// Binary problems read the features as they are, the intercept's column of
		// ones implied (see newLinProblem): no copy of X. In Float64 each value is
		// widened as it is read (newWideProblem).
		x32 = d.X
	case s.Precision == Float32:
		x32 = designMatrix32(d.X, d.N, d.D, mean, std, !s.NoIntercept)
	default:
		x = designMatrix(d.X, d.N, d.D, mean, std, !s.NoIntercept)
	}
	sum := Summary{Rows: d.N, Classes: k, C: C}
	var progressMu sync.Mutex
	report := func(stage string) func(int, float64, float64) {
		if s.Progress == nil {
			return nil
		}
		return func(it int, f, g float64) {
			progressMu.Lock()
			defer progressMu.Unlock()
			s.Progress(Progress{Stage: stage, Iter: it, Loss: f, GradMax: g, ValidLoss: math.NaN(), ValidAccuracy: math.NaN()})
		}
	}

	switch {
	case d.Y != nil:
		// One-vs-rest: K binary problems, fitted Threads at a time. Each problem runs
		// its loss on one goroutine.
		h.Output = Sigmoid
		layer := Dense{Out: k, In: d.D, W: make([]float64, k*d.D), B: make([]float64, k)}
		results := make([]lbfgsResult, k)
		fitted := make([]bool, k)
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(s.Threads, k) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range next {
					if ctx.Err() != nil {
						continue // drain: the labels left are not fitted
					}
					t := make([]float64, d.N)
					for i := range d.N {
						t[i] = float64(d.Y[i*k+c])
					}
					// Two classes for the weighting: Balanced weighs each binary problem as
					// OneVsRestClassifier(LogisticRegression(class_weight="balanced")).
					p := newBinaryProblem(x, x32, s.Precision, d.N, d.D, !s.NoIntercept, t, s.ClassWeight, C, 1)
					theta := make([]float64, p.d1)
					results[c] = minimize(ctx, theta, p.lossGrad, sklearnLBFGS(s.Tol, s.MaxIter), report(stage+" label "+d.Classes[c]))
					p.unpack(layer.W[c*d.D:(c+1)*d.D], layer.B[c:c+1], theta)
					fitted[c] = results[c].stop != stopCanceled
				}
			}()
		}
	send:
		for c := range k {
			select {
			case next <- c:
			case <-ctx.Done():
				break send
			}
		}
		close(next)
		wg.Wait()
		if done := countTrue(fitted); done < k {
			return nil, Summary{}, fmt.Errorf("head: logistic regression cancelled in stage %s with %d of %d labels fitted one-vs-rest: %w", stage, done, k, ctx.Err())
		}
		sum.Converged = true
		for _, r := range results {
			sum.Iterations = max(sum.Iterations, r.iter)
			sum.Evaluations += r.evals
			sum.Converged = sum.Converged && r.stop.converged()
			sum.Loss += r.f
			sum.GradMax = max(sum.GradMax, r.gmax)
			if !r.stop.converged() || sum.Stop == "" {
				sum.Stop = r.stop.String()
			}
		}
		h.Layers = []Dense{layer}
	case k == 2:
		h.Output = Binary
		t := make([]float64, d.N)
		for i, l := range d.Labels {
			t[i] = float64(l)
		}
		p := newBinaryProblem(x, x32, s.Precision, d.N, d.D, !s.NoIntercept, t, s.ClassWeight, C, s.Threads)
		theta := make([]float64, p.d1)
		r := minimize(ctx, theta, p.lossGrad, sklearnLBFGS(s.Tol, s.MaxIter), report(stage))
		if r.stop == stopCanceled {
			return nil, Summary{}, linearCanceled(ctx, stage, r)
		}
		layer := Dense{Out: 1, In: d.D, W: make([]float64, d.D), B: make([]float64, 1)}
		p.unpack(layer.W, layer.B, theta)
		h.Layers = []Dense{layer}
		sum.setSolver(r)
	default:
		h.Output = Softmax
		p := newLinProblem(x, x32, d.N, d.D, !s.NoIntercept, d.Labels, nil, k, s.ClassWeight, C, s.Threads)
		theta := make([]float64, k*p.d1)
		r := minimize(ctx, theta, p.lossGrad, sklearnLBFGS(s.Tol, s.MaxIter), report(stage))
		if r.stop == stopCanceled {
			return nil, Summary{}, linearCanceled(ctx, stage, r)
		}
		layer := Dense{Out: k, In: d.D, W: make([]float64, k*d.D), B: make([]float64, k)}
		p.unpack(layer.W, layer.B, theta)
		h.Layers = []Dense{layer}
		sum.setSolver(r)
	}
	return h, sum, nil
}

// countTrue returns the number of true values in v.
func countTrue(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}

// linearCanceled is the error of a solve that r says was cancelled.
func linearCanceled(ctx context.Context, stage string, r lbfgsResult) error {
	return fmt.Errorf("head: logistic regression cancelled in stage %s after %d solver iterations (loss %.6g): %w", stage, r.iter, r.f, ctx.Err())
}

func (s *Summary) setSolver(r lbfgsResult) {
	s.Iterations, s.Evaluations, s.Converged, s.Stop, s.Loss, s.GradMax =
		r.iter, r.evals, r.stop.converged(), r.stop.String(), r.f, r.gmax
}

// designMatrix returns the (n, d+1) float64 matrix of the rows of x, standardised when
// mean is not nil, with a last column of ones when intercept is set ((n,d) without).
func designMatrix(x []float32, n, d int, mean, std []float64, intercept bool) []float64 {
	d1 := d
	if intercept {
		d1++
	}
	m := make([]float64, n*d1)
	for i := range n {
		row := m[i*d1 : (i+1)*d1]
		for j, v := range x[i*d : (i+1)*d] {
			row[j] = float64(v)
		}
		if mean != nil {
			for j := range d {
				row[j] = (row[j] - mean[j]) / std[j]
			}
		}
		if intercept {
			row[d] = 1
		}
	}
	return m
}

// designMatrix32 is designMatrix in float32 (standardised in float64, then rounded).
func designMatrix32(x []float32, n, d int, mean, std []float64, intercept bool) []float32 {
	d1 := d
	if intercept {
		d1++
	}
	m := make([]float32, n*d1)
	for i := range n {
		row := m[i*d1 : (i+1)*d1]
		copy(row, x[i*d:(i+1)*d])
		if mean != nil {
			for j := range d {
				row[j] = float32((float64(row[j]) - mean[j]) / std[j])
			}
		}
		if intercept {
			row[d] = 1
		}
	}
	return m
}

// linProblem is scikit-learn's logistic regression objective (LinearModelLoss with
// HalfMultinomialLoss or HalfBinomialLoss) on a design matrix whose last column is the
// intercept's 1 (when fitted). The parameters θ are (k, d1) row-major: row c is class
// c's weights followed by its intercept; k = 1 for the binary model. The design matrix
// is float64 (x) or float32 (x32, Precision Float32); the fields of the other
// precision are nil.
type linProblem struct {
	n, d, d1, k int       // rows, features, columns (d+1 with the intercept), outputs
	y           []int     // (n) classes (multinomial)
	t           []float64 // (n) 0/1 targets (binary)
	sw          []float64 // (n) sample weights s_i / S; nil when all are 1 (then 1/n)
	l2          float64   // 1/(C·S)
	partial     []float64 // per-chunk loss sums
	gpart       []float64 // per-chunk gradients (binary), (chunks, d1)
	threads     int

	// float64
	x      []float64              // (n,d1), shared, read only
	wide   bool                   // binary, float64 on x32 widened as it is read (x nil)
	xa, xt *packedMatrix[float64] // x packed as gemm's left factor, and xᵀ (nil: use x)
	gt     []float64              // (d1,k) Xᵀ·G (multinomial)
	z      []float64              // (n,k) scratch: logits, then pointwise gradients

	// float32
	x32        []float32              // (n,d1) or (n,d) with ones implied, shared, read only
	ones       bool                   // x32 is (n,d): the intercept's column of ones is implied (binary)
	xa32, xb32 *packedMatrix[float32] // x32 packed as gemm's left and right factor
	z32        []float32              // (n,k) scratch: logits, then pointwise gradients
	theta32    []float32              // (k,d1) θ rounded to float32
	grad32     []float32              // (k,d1) Gᵀ·X (multinomial); per-chunk (chunks,d1) (binary)
}

// newBinaryProblem is newLinProblem for a binary problem (targets t) in precision
// prec: on x (float64) or x32 (float32); in Float64 with x nil, x32's values are
// widened to float64 as they are read, the same arithmetic as on a float64 copy.
func newBinaryProblem(x []float64, x32 []float32, prec Precision, n, d int, intercept bool, t []float64, cw ClassWeight, C float64, threads int) *linProblem {
	p := newLinProblem(x, x32, n, d, intercept, nil, t, 2, cw, C, threads)
	if prec == Float64 && x == nil {
		p.wide = true
		p.z = make([]float64, n)
		p.z32, p.theta32, p.grad32 = nil, nil, nil
	}
	return p
}

// lossChunk is the number of rows per unit of parallel work in the loss. The loss sums
// chunk by chunk in a fixed order, so the result does not depend on the thread count.
const lossChunk = 512

// newLinProblem sets up the objective on the design matrix x (float64) or x32
// (float32), whichever is not nil. classes is the number of classes for the weighting
// (2 for binary problems).
func newLinProblem(x []float64, x32 []float32, n, d int, intercept bool, y []int, t []float64, classes int, cw ClassWeight, C float64, threads int) *linProblem {
	p := &linProblem{n: n, d: d, d1: d, k: classes, x: x, x32: x32, y: y, t: t, threads: threads}
	if (x == nil) == (x32 == nil) {
		panic("head: newLinProblem: want exactly one design matrix")
	}
	if intercept {
		p.d1++
	}
	if t != nil {
		p.k = 1
	}
	switch {
	case x32 != nil && p.k == 1 && p.d1 > d && len(x32) == n*d:
		p.ones = true
	case x32 != nil && len(x32) != n*p.d1, x != nil && len(x) != n*p.d1:
		panic("head: newLinProblem: design matrix of the wrong size")
	}
	S := float64(n)
	if cw == Balanced {
		// n / (K · n_c), K counting the classes present (compute_class_weight).
		counts := make([]float64, classes)
		for i := range n {
			counts[p.class(i)]++
		}
		present := 0
		for _, c := range counts {
			if c > 0 {
				present++
			}
		}
		p.sw = make([]float64, n)
		S = 0
		for i := range n {
			p.sw[i] = float64(n) / (float64(present) * counts[p.class(i)])
			S += p.sw[i]
		}
		for i := range p.sw {
			p.sw[i] /= S
		}
	}
	p.l2 = 1 / (C * S)
	p.partial = make([]float64, (n+lossChunk-1)/lossChunk)
	if p.k == 1 {
		p.gpart = make([]float64, len(p.partial)*p.d1)
	}
	if x32 != nil {
		// X is the same in every evaluation: pack it once for both products.
		if p.k > 1 {
			p.xa32 = packMatrix(true, false, x32, p.d1, n, p.d1)
			p.xb32 = packMatrix(false, false, x32, p.d1, p.d1, n)
			p.grad32 = make([]float32, p.k*p.d1)
		} else {
			p.grad32 = make([]float32, len(p.partial)*p.d1)
		}
		p.z32 = make([]float32, n*p.k)
		p.theta32 = make([]float32, p.k*p.d1)
		return p
	}
	if p.k > 1 {
		p.xa = packMatrix(true, false, x, p.d1, n, p.d1)
		p.xt = packMatrix(true, true, x, p.d1, p.d1, n)
		p.gt = make([]float64, p.d1*p.k)
	}
	p.z = make([]float64, n*p.k)
	return p
}

func (p *linProblem) class(i int) int {
	if p.t != nil {
		return int(p.t[i])
	}
	return p.y[i]
}

// unpack copies θ into a layer's weights (k,d) and biases (k).
func (p *linProblem) unpack(w, b, theta []float64) {
	for c := range p.k {
		copy(w[c*p.d:(c+1)*p.d], theta[c*p.d1:c*p.d1+p.d])
		if p.d1 > p.d {
			b[c] = theta[c*p.d1+p.d]
		}
	}
}

// weight returns row i's weight s_i/S.
func (p *linProblem) weight(i int) float64 {
	if p.sw != nil {
		return p.sw[i]
	}
	return 1 / float64(p.n)
}

// lossGrad returns L(θ) and writes ∇L(θ) to grad:
//
//	Z = X·Θᵀ                       (n,k)
//	G_ic = s_i/S · (p_ic − [y_i=c])  multinomial, p = softmax(Z_i)
//	G_i  = s_i/S · (σ(Z_i) − t_i)    binary
//	∇L = Gᵀ·X + l2·Θ (the intercept column not penalised)   (k,d1)
//
// In float32 (x32 set) Θ is first rounded to float32, as scipy hands it to
// scikit-learn; Z, G and Gᵀ·X are float32, the loss and penalty sums float64.
func (p *linProblem) lossGrad(grad, theta []float64) float64 {
	if p.x32 != nil && !p.wide {
		return p.lossGrad32(grad, theta)
	}
	n, k, d1 := p.n, p.k, p.d1
	var loss float64
	if k == 1 {
		// Matrix-vector products, chunk by chunk: each chunk's rows give its logits,
		// loss and gradient share, summed in chunk order. One sweep per chunk
		// (DotAxpyRows) reads each block of rows from memory once for both products.
		parallelChunks(len(p.partial), p.threads, func(c int) {
			lo, hi := c*lossChunk, min((c+1)*lossChunk, n)
			gc := p.gpart[c*d1 : (c+1)*d1]
			clear(gc)
			var cl float64
			if !p.wide {
				igemm.DotAxpyRows(gc, p.z[lo:hi], p.x[lo*d1:hi*d1], d1, theta[:d1], func(a, b int) {
					cl = p.pointwise(lo+a, lo+b, cl)
				})
				p.partial[c] = cl
				return
			}
			// Widened float32 rows; without the column of ones the intercept is added
			// and its gradient summed here, in the order the column would give them.
			ld := d1
			if p.ones {
				ld = p.d
			}
			z := p.z[lo:hi]
			var gb, bias float64
			if p.ones {
				bias = theta[p.d]
			}
			igemm.DotAxpyRowsWide(gc[:ld], z, p.x32[lo*ld:hi*ld], ld, theta[:ld], func(a, b int) {
				if p.ones {
					for i := a; i < b; i++ {
						z[i] += bias
					}
				}
				cl = p.pointwise(lo+a, lo+b, cl)
				if p.ones {
					for _, v := range z[a:b] {
						gb += v
					}
				}
			})
			p.partial[c] = cl
			if p.ones {
				gc[p.d] = gb
			}
		})
		clear(grad[:d1])
		for c, v := range p.partial {
			loss += v
			floats.Add(grad[:d1], p.gpart[c*d1:(c+1)*d1])
		}
	} else {
		gemmOp(operand[float64]{Data: p.x, LD: d1, Packed: p.xa}, operand[float64]{Trans: true, Data: theta, LD: d1}, n, k, d1, 0, p.z, k, p.threads)
		parallelChunks(len(p.partial), p.threads, func(c int) {
			lo, hi := c*lossChunk, min((c+1)*lossChunk, n)
			p.partial[c] = p.pointwise(lo, hi, 0)
		})
		for _, v := range p.partial {
			loss += v
		}
		// ∇L's data term as (Gᵀ·X)ᵀ = Xᵀ·G: G (n,k) is then packed as gemm's right
		// factor, in copies of 16 contiguous values, once for up to 256 classes,
		// where as the left factor Gᵀ it would be gathered, once per 256 columns of X.
		// Each element sums over the rows in the same order either way.
		gemmOp(operand[float64]{Trans: true, Data: p.x, LD: d1, Packed: p.xt}, operand[float64]{Data: p.z, LD: k}, d1, k, n, 0, p.gt, k, p.threads)
		for c := range k {
			for j := range d1 {
				grad[c*d1+j] = p.gt[j*k+c]
			}
		}
	}
	return loss + penalty(p, grad, theta)
}

// penalty adds l2·Θ to grad (not the intercepts) and returns l2/2·‖W‖²_F, in float64.
func penalty[T float](p *linProblem, grad []float64, theta []T) float64 {
	var pen float64
	for c := range p.k {
		w := theta[c*p.d1 : c*p.d1+p.d]
		g := grad[c*p.d1 : c*p.d1+p.d]
		for j, v := range w {
			v := float64(v)
			pen += v * v
			g[j] += p.l2 * v
		}
	}
	return 0.5 * p.l2 * pen
}

// lossGrad32 is lossGrad in float32.
func (p *linProblem) lossGrad32(grad, theta []float64) float64 {
	n, k, d1 := p.n, p.k, p.d1
	for i, v := range theta[:k*d1] {
		p.theta32[i] = float32(v)
	}
	var loss float64
	if k == 1 {
		// Without the column of ones (p.ones) the intercept is added and its gradient
		// summed here, in the order and precision the ones column would give them.
		ld := d1
		if p.ones {
			ld = p.d
		}
		parallelChunks(len(p.partial), p.threads, func(c int) {
			lo, hi := c*lossChunk, min((c+1)*lossChunk, n)
			z := p.z32[lo:hi]
			gc := p.grad32[c*d1 : (c+1)*d1]
			clear(gc)
			var cl float64
			var gb, bias float32
			if p.ones {
				bias = p.theta32[p.d]
			}
			igemm.DotAxpyRows(gc[:ld], z, p.x32[lo*ld:hi*ld], ld, p.theta32[:ld], func(a, b int) {
				if p.ones {
					for i := a; i < b; i++ {
						z[i] += bias
					}
				}
				cl = p.pointwise32(lo+a, lo+b, cl)
				if p.ones {
					for _, v := range z[a:b] {
						gb += v
					}
				}
			})
			p.partial[c] = cl
			if p.ones {
				gc[p.d] = gb
			}
		})
		clear(grad[:d1])
		for c, v := range p.partial {
			loss += v
			for j, g := range p.grad32[c*d1 : (c+1)*d1] {
				grad[j] += float64(g)
			}
		}
	} else {
		gemmOp(operand[float32]{Data: p.x32, LD: d1, Packed: p.xa32}, operand[float32]{Trans: true, Data: p.theta32, LD: d1}, n, k, d1, 0, p.z32, k, p.threads)
		parallelChunks(len(p.partial), p.threads, func(c int) {
			lo, hi := c*lossChunk, min((c+1)*lossChunk, n)
			p.partial[c] = p.pointwise32(lo, hi, 0)
		})
		for _, v := range p.partial {
			loss += v
		}
		// Gᵀ·X with X's 385 columns as the right factor (so 32-column panels with
		// AVX-512), unlike lossGrad's Xᵀ·G: the wider float32 kernel outruns the cost
		// of gathering Gᵀ.
		gemmOp(operand[float32]{Trans: true, Data: p.z32, LD: k}, operand[float32]{Data: p.x32, LD: d1, Packed: p.xb32}, k, d1, n, 0, p.grad32, d1, p.threads)
		for i, g := range p.grad32 {
			grad[i] = float64(g)
		}
	}
	// The penalty at the float32 parameters, where the rest was evaluated.
	return loss + penalty(p, grad, p.theta32)
}

// binaryLoss returns the binary loss log(1+e^z) − t·z and its derivative σ(z) − t,
// from one exponential e = exp(−|z|):
//
//	z > 0:  l = z + log1p(e) − t·z,  σ(z) = 1/(1+e)
//	z ≤ 0:  l = log1p(e) − t·z,      σ(z) = e/(1+e)
//
// (the same values as sigmoid and the two-branch loss, bit for bit).
func binaryLoss(z, t float64) (l, g float64) {
	e := math.Exp(-math.Abs(z))
	if z > 0 {
		return z + math.Log1p(e) - t*z, 1/(1+e) - t
	}
	return math.Log1p(e) - t*z, e/(1+e) - t
}

// pointwise turns rows [lo,hi) of p.z from logits into the pointwise gradients and
// returns loss plus their weighted loss terms (each divided by S), added in row order.
func (p *linProblem) pointwise(lo, hi int, loss float64) float64 {
	if p.k == 1 {
		for i := lo; i < hi; i++ {
			w := p.weight(i)
			l, g := binaryLoss(p.z[i], p.t[i])
			loss += w * l
			p.z[i] = w * g
		}
		return loss
	}
	k := p.k
	for i := lo; i < hi; i++ {
		z := p.z[i*k : (i+1)*k]
		y := p.y[i]
		zy := z[y]
		w := p.weight(i)
		m, s := softmaxRow64(z, w)
		// loss = log Σ_c exp(z_c) − z_y = log s + m − z_y.
		loss += w * (math.Log(s) - (zy - m))
		z[y] -= w
	}
	return loss
}

// pointwise32 is pointwise on p.z32: the loss terms are computed in float64 from the
// float32 logits and summed in float64; the pointwise gradients are float32.
func (p *linProblem) pointwise32(lo, hi int, loss float64) float64 {
	if p.k == 1 {
		for i := lo; i < hi; i++ {
			w := p.weight(i)
			l, g := binaryLoss(float64(p.z32[i]), p.t[i])
			loss += w * l
			p.z32[i] = float32(w * g)
		}
		return loss
	}
	k := p.k
	for i := lo; i < hi; i++ {
		z := p.z32[i*k : (i+1)*k]
		y := p.y[i]
		zy := z[y]
		w := p.weight(i)
		m, s := softmaxRow32(z, w)
		// loss = log Σ_c exp(z_c) − z_y = log s + m − z_y.
		loss += w * (math.Log(s) + float64(m) - float64(zy))
		z[y] -= float32(w)
	}
	return loss
}

// parallelChunks calls fn(c) for c in [0, n) on up to threads goroutines.
func parallelChunks(n, threads int, fn func(c int)) {
	if threads <= 1 || n <= 1 {
		for c := range n {
			fn(c)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range min(threads, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				c := next
				next++
				mu.Unlock()
				if c >= n {
					return
				}
				fn(c)
			}
		}()
	}
	wg.Wait()
}
