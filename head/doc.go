// Package head trains, stores and evaluates classifier heads on fixed features: the
// pooled embeddings of a feature store (package features). One forward pass of the
// frozen backbone can feed any number of heads.
//
// # Heads
//
// A Head is a small feed-forward network applied to a feature row x (length D):
//
//	x' = (x - Mean) / Std                  optional standardisation (fitted on the training rows)
//	h  = GELU(W1 x' + b1) ...              hidden layers (MLP only)
//	z  = W h + b                           logits
//	p  = softmax(z) | sigmoid(z) | [1-σ(z), σ(z)]
//
// Two kinds are trained: an L2-regularised logistic regression (FitLogReg; no hidden
// layer) and a multi-layer perceptron (FitMLP; one or two GELU hidden layers, dropout,
// AdamW, early stopping). Fit dispatches on Options.Kind.
//
// # Logistic regression: the objective
//
// FitLogReg minimises exactly the objective of scikit-learn's
// LogisticRegression(solver="lbfgs", penalty="l2", C=C, fit_intercept=True) (version
// 1.9.1, sklearn/linear_model/_logistic.py and _linear_loss.py: LinearModelLoss with
// l2_reg_strength = 1/(C·Σs)). With K >= 3 classes it is the multinomial
// ("symmetric", K weight vectors, none held at zero) loss
//
//	L(W, b) = 1/S · Σ_i s_i · ( log Σ_k exp(z_ik) − z_i,y_i )  +  1/(2·C·S) · ‖W‖²_F
//	z_ik    = w_k · x_i + b_k,      S = Σ_i s_i
//
// and with K = 2 it is scikit-learn's binary loss with a single weight vector w and the
// second class as the positive one:
//
//	L(w, b) = 1/S · Σ_i s_i · ( log(1 + exp(z_i)) − t_i z_i )  +  1/(2·C·S) · ‖w‖²
//	z_i     = w · x_i + b,      t_i = 1 if y_i is the second class, else 0
//
// The intercepts are not penalised. The sample weights s_i are 1, or with
// ClassWeight Balanced s_i = n / (K · n_{y_i}) (scikit-learn's class_weight="balanced"),
// in which case S = n as well. Multi-label targets (a row may carry several labels) are
// fitted one-vs-rest: K independent binary problems of the second form, as
// OneVsRestClassifier(LogisticRegression(...)); probabilities are independent sigmoids.
//
// # Logistic regression: the solver
//
// scikit-learn minimises L with scipy.optimize.minimize(method="L-BFGS-B") and options
// maxiter=max_iter, maxls=50, gtol=tol, ftol=64·ε (maxcor 10). The package has its own
// port of that unconstrained L-BFGS-B iteration rather than gonum's optimize.LBFGS,
// because gonum's stopping rules and line search differ in ways that change the iterate
// sklearn returns at its default tol=1e-4, max_iter=100 (it stops on a 2-norm gradient
// threshold, its Moré–Thuente search reports a small bracket as a failure where MINPACK's
// dcsrch accepts the step, and it never skips an update). The port keeps
//
//   - 10 correction pairs, the initial inverse Hessian (sᵀy/yᵀy)·I, and the update skipped
//     when sᵀy <= ε·(−gᵀd)·step;
//   - the first step min(1/‖d‖₂, 1e10), then a unit first trial;
//   - MINPACK-2 dcsrch with ftol=1e-3, gtol=0.9, xtol=0.1, at most 50 trials, warnings
//     accepted as the step; a failed search restarts from steepest descent (or stops
//     when the memory is already empty);
//   - the stopping tests, in scipy's order: max |∂L/∂θ| <= tol, then
//     (f_old − f)/max(|f_old|, |f|, 1) <= 64·ε, and at most MaxIter iterations.
//
// With AutoC, C is chosen like LogisticRegressionCV(Cs=10, cv=5, scoring="accuracy"):
// stratified k-fold cross-validation (folds drawn with the seed) over a log grid, the C
// with the best mean accuracy (the smallest on a tie), then a refit on all rows. Unlike
// LogisticRegressionCV, each fit starts from zero (no warm start along the path) and the
// refit starts from zero too.
//
// # Logistic regression: precision
//
// scikit-learn computes the objective in the features' dtype. On a float32 store (what
// extraction writes) scipy's L-BFGS-B hands it the parameters rounded to float32 and the
// logits X·Wᵀ, the softmax and the gradient's product Gᵀ·X are float32 (sgemm). The
// default Precision, Float32, does the same:
//
//	Θ₃₂ = float32(Θ)                       the solver's state stays float64
//	Z   = X·Θ₃₂ᵀ                           float32 products, float32 accumulation
//	G   = s/S ⊙ (softmax(Z) − Y)           exponentials in float32, row sums in float64
//	∇L  = float64(Gᵀ·X) + l2·Θ₃₂           float32 product; loss and penalty summed in float64
//
// with the float32 exponential of Cephes (softmax.go) and the float32 product kernels,
// which count product terms below float32's smallest normal number (1.2e-38) as 0
// (internal/gemm; on x86 each subnormal operation otherwise takes a microcode assist,
// and MiniLM features hold values near 1e-37). With three classes or more it is faster
// than Float64 (BENCHMARKS.md). Float64 computes everything in float64: scikit-learn's
// fit on features cast to float64, which it matches iteration for iteration (to ~1e-13 in
// the coefficients on Banking77). In float32 neither side can match the other's rounding
// (another summation order in sgemm), so the fits part by float32 rounding amplified by
// the solver: on Banking77 train at the defaults (47 iterations on both sides, the same
// test accuracy) the coefficients are 2e-5 apart relative, as are scikit-learn's own
// float32 and float64 fits; this package's float32 fit is 2e-6 from the float64 one (it
// sums the loss and the penalty in float64, scikit-learn in float32). The parity tests
// check both precisions.
//
// A binary problem (and each label of a multi-label one) has one weight vector, and its
// two products are matrix-vector products bound by reading X from memory. They read the
// float32 features as stored, with the intercept's column of ones implied, in one sweep
// per block of four rows (internal/gemm DotAxpyRows): the rows' logits, their loss
// terms and pointwise gradients, then their share of Xᵀ·g while the rows are in the L1
// cache, the next rows prefetched meanwhile. Float64 widens each value as it is read
// (DotAxpyRowsWide): the arithmetic of a float64 copy, with no copy and half its bytes,
// so on binary problems Float64 costs about what Float32 does. Where the float32 fits
// part: scikit-learn sums Xᵀ·g over all rows in float32 (sgemv), this package in
// float32 within 512 rows and in float64 across them; on many rows scikit-learn's
// float32 gradient carries rounding of the order of Tol, and its fit can stop as soon
// as that rounded gradient falls below Tol. On the default model's SST-2 train
// features (67,349 rows) scikit-learn's float32 fit stops after 24 iterations, its
// loss 1.1e-4 above the optimum, and Float32 here after 32, 1e-6 above it; both
// float64 fits take 32 and end at the same loss to 1e-13 (BENCHMARKS.md). Float64 is
// the setting that follows scikit-learn's path.
//
// The multinomial products X·Wᵀ and Gᵀ·X (in float64 computed as Xᵀ·G, the same sums)
// run on the AVX2/FMA kernels of internal/gemm (AVX-512 where the CPU has it, with the
// same bits), or on gonum's blas64 and blas32 (see gemm.go), so installing a faster
// implementation with blas64.Use or blas32.Use speeds fitting up on any CPU. The float64
// softmax runs four classes at a time in assembly with math.Exp's operations
// (softmax.go), so it gives the Go loop's bits. Either way the result does not depend
// on the number of threads.
//
// # Files
//
// Save and Load read and write a head as a safetensors file whose metadata records the
// kind, the class names, the settings, a training summary, the fingerprint of the
// features it was trained on, and a SHA-256 checksum; see Save for the layout. A head
// refuses features of another backbone or extraction setting (Check, CheckStore).
//
// # Metrics
//
// Evaluate and NewReport compute accuracy, macro, weighted and micro F1, per-class
// precision, recall and F1, log-loss, expected calibration error and the confusion
// matrix; the Report marshals to JSON, WriteTable prints it for people, PlotConfusion
// draws the confusion matrix as a PNG. Multi-label heads are scored by
// NewMultiLabelReport at a probability threshold (EvaluateAt; 0.5 by default): subset
// accuracy, micro and macro F1, Hamming loss and per-label precision, recall and F1, as
// scikit-learn computes them on multi-hot arrays.
package head
