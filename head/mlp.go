package head

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// MLPSettings configure FitMLP. The zero value is valid: one hidden layer of 256 GELU
// units, no dropout, AdamW with learning rate 1e-3 and weight decay 0.01, batches of
// 64, up to 100 epochs with early stopping after 10 epochs without a better validation
// loss on a 10% stratified held-out split, raw features, seed 0.
type MLPSettings struct {
	// Hidden are the widths of the hidden layers: one or two. Default [256].
	Hidden []int `json:"hidden"`
	// Dropout is the probability of zeroing a hidden unit's output in training
	// (inverted dropout: kept units are scaled by 1/(1−Dropout)). Default 0; must be in
	// [0, 1).
	Dropout float64 `json:"dropout"`
	// LearningRate of AdamW. Default 1e-3.
	LearningRate float64 `json:"learning_rate"`
	// WeightDecay is AdamW's decoupled weight decay on the weight matrices (not the
	// biases), PyTorch's torch.optim.AdamW. Default 0.01; a negative value means none.
	WeightDecay float64 `json:"weight_decay"`
	// Beta1, Beta2 and Epsilon are Adam's moment decay rates and denominator offset.
	// Defaults 0.9, 0.999, 1e-8.
	Beta1   float64 `json:"beta1"`
	Beta2   float64 `json:"beta2"`
	Epsilon float64 `json:"epsilon"`
	// BatchSize is the number of rows per update. Default 64.
	BatchSize int `json:"batch_size"`
	// MaxEpochs bounds the passes over the training rows. Default 100.
	MaxEpochs int `json:"max_epochs"`
	// Patience stops training after this many epochs without a lower validation loss;
	// the weights of the best epoch are kept. Default 10.
	Patience int `json:"patience"`
	// ValidFraction is the share of each class held out for early stopping when FitMLP
	// is given no validation set. Default 0.1; a negative value trains on every row for
	// MaxEpochs epochs and keeps the last weights.
	ValidFraction float64 `json:"valid_fraction"`
	// ClassWeight weighs the loss of a row by its class (single-label only): the
	// weighted mean Σ w_i·loss_i / Σ w_i over a batch, as PyTorch's
	// CrossEntropyLoss(weight=...). Default Uniform.
	ClassWeight ClassWeight `json:"class_weight"`
	// Standardize scales each feature to zero mean and unit variance on the training
	// rows (stored in the head).
	Standardize bool `json:"standardize"`
	// Seed draws the initial weights, the held-out split, the batch order and the
	// dropout masks. Training is deterministic for a given seed.
	Seed uint64 `json:"seed"`
	// Threads bounds the goroutines of the matrix products. Default
	// runtime.GOMAXPROCS(0). The result does not depend on it.
	Threads int `json:"-"`
	// Progress, when set, is called after every epoch.
	Progress func(Progress) `json:"-"`

	// Checkpoint, when set, is a file that FitMLP replaces atomically after every
	// epoch with everything needed to continue: the weights, AdamW's moments and
	// step, the best weights and score so far, the early-stopping count, the batch
	// order and the random generator's state, and a key of the training data and
	// settings. With Resume set FitMLP continues from it (or starts afresh when there
	// is none) and returns the head an uninterrupted run returns, bit for bit; a
	// checkpoint of other data or settings is refused with ErrCheckpoint. Without
	// Resume an existing file is overwritten. FitMLP leaves the file in place: remove
	// it once the head is saved.
	Checkpoint string `json:"-"`
	Resume     bool   `json:"-"`
}

func (s *MLPSettings) setDefaults() error {
	if len(s.Hidden) == 0 {
		s.Hidden = []int{256}
	}
	if len(s.Hidden) > 2 {
		return errorf(ErrBadSetting, "head: %d hidden layers; want one or two", len(s.Hidden))
	}
	for _, h := range s.Hidden {
		if h < 1 {
			return errorf(ErrBadSetting, "head: hidden layer width %d; want at least 1", h)
		}
	}
	if !(s.Dropout >= 0 && s.Dropout < 1) {
		return errorf(ErrBadSetting, "head: dropout %v; want a probability in [0, 1)", s.Dropout)
	}
	if s.LearningRate == 0 {
		s.LearningRate = 1e-3
	}
	if s.WeightDecay == 0 {
		s.WeightDecay = 0.01
	}
	if s.WeightDecay < 0 {
		s.WeightDecay = 0
	}
	if s.Beta1 == 0 {
		s.Beta1 = 0.9
	}
	if s.Beta2 == 0 {
		s.Beta2 = 0.999
	}
	if s.Epsilon == 0 {
		s.Epsilon = 1e-8
	}
	if s.BatchSize == 0 {
		s.BatchSize = 64
	}
	if s.MaxEpochs == 0 {
		s.MaxEpochs = 100
	}
	if s.Patience == 0 {
		s.Patience = 10
	}
	if s.ValidFraction == 0 {
		s.ValidFraction = 0.1
	}
	if s.Threads <= 0 {
		s.Threads = runtime.GOMAXPROCS(0)
	}
	switch {
	case !(s.LearningRate > 0) || math.IsInf(s.LearningRate, 0):
		return errorf(ErrBadSetting, "head: learning rate %v; want a positive number", s.LearningRate)
	case !(s.Beta1 > 0 && s.Beta1 < 1) || !(s.Beta2 > 0 && s.Beta2 < 1):
		return errorf(ErrBadSetting, "head: Adam betas %v, %v; want each in (0, 1)", s.Beta1, s.Beta2)
	case !(s.Epsilon > 0):
		return errorf(ErrBadSetting, "head: Adam epsilon %v; want a positive number", s.Epsilon)
	case s.BatchSize < 1:
		return errorf(ErrBadSetting, "head: batch size %d; want at least 1", s.BatchSize)
	case s.MaxEpochs < 1:
		return errorf(ErrBadSetting, "head: max epochs %d; want at least 1", s.MaxEpochs)
	case s.Patience < 1:
		return errorf(ErrBadSetting, "head: patience %d; want at least 1", s.Patience)
	case s.ValidFraction >= 1:
		return errorf(ErrBadSetting, "head: validation fraction %v; want a number in (0, 1), or negative for none", s.ValidFraction)
	case s.ClassWeight != Uniform && s.ClassWeight != Balanced:
		return errorf(ErrBadSetting, "head: class weight %v unknown; want one of none, balanced", s.ClassWeight)
	}
	return nil
}

// mlp is the network being trained: Dense+GELU+dropout hidden layers and a Dense
// output layer, over a flat parameter vector (so that AdamW and the gradient check see
// one vector). Forward caches what backward needs for up to maxRows rows.
type mlp struct {
	sizes   []int     // D, H1, [H2], K
	params  []float64 // per layer l: W_l (sizes[l+1], sizes[l]) then b_l (sizes[l+1])
	grads   []float64 // same layout
	w, b    [][]float64
	gw, gb  [][]float64
	dropout float64
	maxRows int
	threads int // for the matrix products

	// Cache, for rows <= maxRows. Hidden layer l (1-based) keeps its pre-activation
	// z[l] and its output after dropout a[l], both (rows, sizes[l]); a[0] is the input.
	z, a   [][]float64
	keep   [][]float64 // dropout scale per unit, 0 or 1/(1−p), (rows, sizes[l]); nil without dropout
	logits []float64   // (rows, K)
	dl     []float64   // ∂loss/∂logits (rows, K)
	da, dz []float64   // scratch (rows, max hidden)
}

func newMLP(sizes []int, dropout float64, maxRows, threads int) *mlp {
	m := &mlp{sizes: sizes, dropout: dropout, maxRows: maxRows, threads: threads}
	n := 0
	for l := range len(sizes) - 1 {
		n += sizes[l+1]*sizes[l] + sizes[l+1]
	}
	m.params = make([]float64, n)
	m.grads = make([]float64, n)
	off := 0
	for l := range len(sizes) - 1 {
		in, out := sizes[l], sizes[l+1]
		m.w = append(m.w, m.params[off:off+out*in])
		m.gw = append(m.gw, m.grads[off:off+out*in])
		off += out * in
		m.b = append(m.b, m.params[off:off+out])
		m.gb = append(m.gb, m.grads[off:off+out])
		off += out
	}
	L := len(sizes) - 2 // hidden layers
	m.z = make([][]float64, L+1)
	m.a = make([][]float64, L+1)
	m.keep = make([][]float64, L+1)
	wmax := 0
	for l := 1; l <= L; l++ {
		m.z[l] = make([]float64, maxRows*sizes[l])
		m.a[l] = make([]float64, maxRows*sizes[l])
		if dropout > 0 {
			m.keep[l] = make([]float64, maxRows*sizes[l])
		}
		wmax = max(wmax, sizes[l])
	}
	k := sizes[len(sizes)-1]
	m.logits = make([]float64, maxRows*k)
	m.dl = make([]float64, maxRows*k)
	m.da = make([]float64, maxRows*wmax)
	m.dz = make([]float64, maxRows*wmax)
	return m
}

// init draws the parameters as PyTorch's nn.Linear does: W and b uniform in
// ±1/√fan_in.
func (m *mlp) init(rng *rand.Rand) {
	for l := range m.w {
		bound := 1 / math.Sqrt(float64(m.sizes[l]))
		for i := range m.w[l] {
			m.w[l][i] = bound * (2*rng.Float64() - 1)
		}
		for i := range m.b[l] {
			m.b[l][i] = bound * (2*rng.Float64() - 1)
		}
	}
}

// drawDropout draws new dropout masks for rows rows.
func (m *mlp) drawDropout(rows int, rng *rand.Rand) {
	if m.dropout == 0 {
		return
	}
	scale := 1 / (1 - m.dropout)
	for l := 1; l < len(m.sizes)-1; l++ {
		keep := m.keep[l][:rows*m.sizes[l]]
		for i := range keep {
			keep[i] = 0
			if rng.Float64() >= m.dropout {
				keep[i] = scale
			}
		}
	}
}

// forward computes the logits of rows rows of x (rows, D) and caches the activations.
// With train set the current dropout masks apply (see drawDropout); otherwise
// dropout is off (evaluation).
//
//	z_l = a_{l−1}·W_lᵀ + b_l        (rows, H_l)
//	a_l = GELU(z_l) ⊙ keep_l         (rows, H_l)
//	logits = a_L·W_outᵀ + b_out      (rows, K)
func (m *mlp) forward(x []float64, rows int, train bool) []float64 {
	if rows > m.maxRows {
		panic("head: mlp.forward: more rows than the cache holds")
	}
	m.a[0] = x[:rows*m.sizes[0]]
	last := len(m.sizes) - 2
	for l := 1; l <= last; l++ {
		h := m.sizes[l]
		z := m.z[l][:rows*h]
		m.linear(z, m.a[l-1], m.w[l-1], m.b[l-1], rows, m.sizes[l-1], h)
		a := m.a[l][:rows*h]
		for i, v := range z {
			a[i] = gelu(v)
		}
		if train && m.dropout > 0 {
			for i, s := range m.keep[l][:rows*h] {
				a[i] *= s
			}
		}
	}
	k := m.sizes[last+1]
	out := m.logits[:rows*k]
	m.linear(out, m.a[last], m.w[last], m.b[last], rows, m.sizes[last], k)
	return out
}

// backward accumulates (+=) into m.grads the gradient of the loss whose derivative with
// respect to the logits is m.dl (rows, K), through the activations cached by the last
// forward with train set as it was (the same dropout masks).
//
//	∂W_out += dlᵀ·a_L      ∂b_out += Σ_rows dl      da_L = dl·W_out
//	dz_l = da_l ⊙ keep_l ⊙ GELU'(z_l)
//	∂W_l += dz_lᵀ·a_{l−1}  ∂b_l += Σ_rows dz_l      da_{l−1} = dz_l·W_l
func (m *mlp) backward(rows int, train bool) {
	last := len(m.sizes) - 2
	grad := m.dl[:rows*m.sizes[last+1]]
	for l := last; l >= 0; l-- {
		in, out := m.sizes[l], m.sizes[l+1]
		// ∂W_l += gradᵀ·a_l, ∂b_l += Σ grad.
		gemm(true, false, out, in, rows, grad, out, m.a[l][:rows*in], in, 1, m.gw[l], in, m.threads)
		for r := range rows {
			for j, v := range grad[r*out : (r+1)*out] {
				m.gb[l][j] += v
			}
		}
		if l == 0 {
			break
		}
		// da = grad·W_l, then dz = da ⊙ keep ⊙ GELU'(z).
		da := m.da[:rows*in]
		gemm(false, false, rows, in, out, grad, out, m.w[l], in, 0, da, in, m.threads)
		dz := m.dz[:rows*in]
		z := m.z[l][:rows*in]
		for i, v := range da {
			dz[i] = v * geluGrad(z[i])
		}
		if train && m.dropout > 0 {
			for i, s := range m.keep[l][:rows*in] {
				dz[i] *= s
			}
		}
		// dz is the next layer's grad; the next da goes to m.da, so it survives until
		// the next dz (written after it is consumed).
		grad = dz
	}
}

// zeroGrad clears the accumulated gradient.
func (m *mlp) zeroGrad() { clear(m.grads) }

// linear computes dst = x·Wᵀ + b: x (rows,in), W (out,in), dst (rows,out).
func (m *mlp) linear(dst, x, w, b []float64, rows, in, out int) {
	for r := range rows {
		copy(dst[r*out:(r+1)*out], b)
	}
	gemm(false, true, rows, out, in, x, in, w, in, 1, dst, out, m.threads)
}

// gelu is x·Φ(x) = 0.5·x·(1 + erf(x/√2)).
func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// geluGrad is GELU'(x) = Φ(x) + x·φ(x), φ the standard normal density.
func geluGrad(x float64) float64 {
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
}

// targets of a batch for the loss: single-label classes (with optional weights) or
// multi-label 0/1 rows.
type batchTargets struct {
	labels []int     // (rows) single-label
	y      []float64 // (rows, K) multi-label
	weight []float64 // per class weight, nil for uniform (single-label)
}

// lossGrad returns the batch loss of the logits m.logits for rows rows and writes its
// derivative to m.dl:
//
//	single-label: L = Σ_i w_yi·(log Σ_k e^{z_ik} − z_i,yi) / Σ_i w_yi
//	              ∂L/∂z_ik = w_yi·(softmax(z_i)_k − [k = y_i]) / Σ_i w_yi
//	multi-label:  L = 1/(rows·K) Σ_ik log(1 + e^{z_ik}) − y_ik·z_ik
//	              ∂L/∂z_ik = (σ(z_ik) − y_ik) / (rows·K)
func (m *mlp) lossGrad(rows int, t batchTargets) float64 {
	k := m.sizes[len(m.sizes)-1]
	z := m.logits[:rows*k]
	dl := m.dl[:rows*k]
	var loss float64
	if t.y != nil {
		inv := 1 / float64(rows*k)
		for i, v := range z {
			y := t.y[i]
			if v > 0 {
				loss += v + math.Log1p(math.Exp(-v)) - y*v
			} else {
				loss += math.Log1p(math.Exp(v)) - y*v
			}
			dl[i] = (sigmoid(v) - y) * inv
		}
		return loss * inv
	}
	var wsum float64
	for r := range rows {
		w := 1.0
		if t.weight != nil {
			w = t.weight[t.labels[r]]
		}
		wsum += w
	}
	for r := range rows {
		zr, dr := z[r*k:(r+1)*k], dl[r*k:(r+1)*k]
		y := t.labels[r]
		w := 1.0
		if t.weight != nil {
			w = t.weight[y]
		}
		softmax(dr, zr)
		mx := slices.Max(zr)
		var s float64
		for _, v := range zr {
			s += math.Exp(v - mx)
		}
		loss += w * (math.Log(s) + mx - zr[y])
		for c := range dr {
			dr[c] *= w / wsum
		}
		dr[y] -= w / wsum
	}
	return loss / wsum
}

// adamW holds the AdamW moments (PyTorch's torch.optim.AdamW, decoupled weight
// decay): for each parameter θ with gradient g at step t,
//
//	θ ← θ − lr·λ·θ            (weights only)
//	m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²
//	θ ← θ − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
type adamW struct {
	m, v  []float64
	decay []bool // which parameters are decayed (weights)
	t     int
}

func newAdamW(net *mlp) *adamW {
	a := &adamW{m: make([]float64, len(net.params)), v: make([]float64, len(net.params)), decay: make([]bool, len(net.params))}
	off := 0
	for l := range net.w {
		for i := range net.w[l] {
			a.decay[off+i] = true
		}
		off += len(net.w[l]) + len(net.b[l])
	}
	return a
}

func (a *adamW) step(params, grads []float64, s *MLPSettings) {
	a.t++
	c1 := 1 - math.Pow(s.Beta1, float64(a.t))
	c2 := 1 - math.Pow(s.Beta2, float64(a.t))
	for i, g := range grads {
		if a.decay[i] {
			params[i] -= s.LearningRate * s.WeightDecay * params[i]
		}
		a.m[i] = s.Beta1*a.m[i] + (1-s.Beta1)*g
		a.v[i] = s.Beta2*a.v[i] + (1-s.Beta2)*g*g
		params[i] -= s.LearningRate * (a.m[i] / c1) / (math.Sqrt(a.v[i]/c2) + s.Epsilon)
	}
}

// FitMLP trains an MLP head on train, stopping early on valid (rows labelled with the
// training classes, matched by name) or, when valid is nil, on a stratified held-out
// part of train (ValidFraction). Training is deterministic for a given seed, whatever
// the number of threads.
func FitMLP(train Dataset, valid *Dataset, s MLPSettings) (*Head, error) {
	return FitMLPContext(context.Background(), train, valid, s)
}

// mlpCancelBatches is how many batches FitMLPContext trains between two looks at its
// context within an epoch (it also looks before every epoch).
const mlpCancelBatches = 256

// FitMLPContext is FitMLP stopped by ctx, which it checks before every epoch and every
// mlpCancelBatches batches. Once ctx is done it returns an error that says where
// training stopped and wraps ctx.Err(); the checkpoint (MLPSettings.Checkpoint), when
// set, keeps the last finished epoch, from which a fit with Resume continues. A run
// that is not cancelled returns what FitMLP returns.
func FitMLPContext(ctx context.Context, train Dataset, valid *Dataset, s MLPSettings) (*Head, error) {
	start := time.Now()
	if err := s.setDefaults(); err != nil {
		return nil, err
	}
	if err := train.validate(); err != nil {
		return nil, err
	}
	if train.Y != nil && s.ClassWeight != Uniform {
		return nil, errorf(ErrBadSetting, "head: class weight %v is for single-label data; the training data %s is multi-label", s.ClassWeight, train.Name)
	}
	src := newPCG(s.Seed)
	rng := rand.New(src)
	k := len(train.Classes)
	h := &Head{Kind: MLP, Classes: slices.Clone(train.Classes), MultiLabel: train.Y != nil, Dim: train.D, Fingerprint: train.Fingerprint, Output: Softmax}
	if train.Y != nil {
		h.Output = Sigmoid
	}

	// The validation rows, with targets over the training classes.
	var tr, va *Dataset
	switch {
	case valid != nil:
		if valid.D != train.D {
			return nil, errorf(ErrDimension, "head: validation features %s have %d columns; the training features %s have %d", valid.Name, valid.D, train.Name, train.D)
		}
		if err := train.Fingerprint.Compare(valid.Fingerprint); err != nil {
			return nil, fmt.Errorf("validation features %s: %w", valid.Name, err)
		}
		if valid.N == 0 {
			return nil, errorf(ErrEmpty, "head: validation features %s: no rows", valid.Name)
		}
		if err := checkFinite(valid.X, valid.N, valid.D, valid.Name, valid.RowIDs); err != nil {
			return nil, err
		}
		labels, y, err := h.Targets(valid)
		if err != nil {
			return nil, err
		}
		v := *valid
		v.Labels, v.Y, v.Classes = labels, y, h.Classes
		tr, va = &train, &v
	case s.ValidFraction > 0:
		strata, ns := train.strata()
		ti, vi := stratifiedHoldout(strata, ns, s.ValidFraction, rng)
		if len(vi) == 0 || len(ti) == 0 {
			return nil, errorf(ErrBadSetting, "head: %d training rows are too few to hold %v of them out for early stopping; pass validation data or a negative validation fraction", train.N, s.ValidFraction)
		}
		t, v := train.subset(ti), train.subset(vi)
		tr, va = &t, &v
	default:
		tr = &train
	}

	var mean, std []float64
	if s.Standardize {
		mean, std = standardizer(tr.X, tr.N, tr.D)
		h.Mean, h.Std = mean, std
	}
	x := designMatrix(tr.X, tr.N, tr.D, mean, std, false)
	sizes := append(append([]int{tr.D}, s.Hidden...), k)
	bs := min(s.BatchSize, tr.N)
	net := newMLP(sizes, s.Dropout, bs, s.Threads)
	net.init(rng)
	opt := newAdamW(net)

	var weight []float64
	if s.ClassWeight == Balanced {
		counts := make([]float64, k)
		for _, l := range tr.Labels {
			counts[l]++
		}
		weight = make([]float64, k)
		for c, n := range counts {
			if n > 0 {
				weight[c] = float64(tr.N) / (float64(k) * n)
			}
		}
	}

	order := make([]int, tr.N)
	for i := range order {
		order[i] = i
	}
	xb := make([]float64, bs*tr.D)
	bt := batchTargets{labels: make([]int, bs), weight: weight}
	if tr.Y != nil {
		bt.y = make([]float64, bs*k)
	}
	best := slices.Clone(net.params)
	sum := Summary{Rows: tr.N, Classes: k, Loss: math.Inf(1)}
	if va != nil {
		sum.ValidRows = va.N
	}
	sinceBest, first := 0, 1
	var ck *mlpCheckpointer
	if s.Checkpoint != "" {
		ck = &mlpCheckpointer{path: s.Checkpoint, key: mlpKey(&train, valid, &s),
			net: net, opt: opt, src: src, order: order, best: best, sum: &sum, sinceBest: &sinceBest}
		if s.Resume {
			done, err := ck.load(s.MaxEpochs)
			if err != nil {
				return nil, err
			}
			first, sum.Resumed = done+1, done
		}
	}
	// After a resume the checkpoint may hold a run that had already stopped.
	stopped := va != nil && sinceBest >= s.Patience
	for epoch := first; !stopped && epoch <= s.MaxEpochs; epoch++ {
		if ctx.Err() != nil {
			return nil, mlpCanceled(ctx, epoch, 0, &s)
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var epochLoss float64
		for lo := 0; lo < tr.N; lo += bs {
			if b := lo / bs; b > 0 && b%mlpCancelBatches == 0 && ctx.Err() != nil {
				return nil, mlpCanceled(ctx, epoch, b, &s)
			}
			rows := min(bs, tr.N-lo)
			for r, i := range order[lo : lo+rows] {
				copy(xb[r*tr.D:(r+1)*tr.D], x[i*tr.D:(i+1)*tr.D])
				if tr.Y != nil {
					for c := range k {
						bt.y[r*k+c] = float64(tr.Y[i*k+c])
					}
				} else {
					bt.labels[r] = tr.Labels[i]
				}
			}
			net.drawDropout(rows, rng)
			net.forward(xb, rows, true)
			epochLoss += net.lossGrad(rows, bt) * float64(rows)
			net.zeroGrad()
			net.backward(rows, true)
			opt.step(net.params, net.grads, &s)
		}
		epochLoss /= float64(tr.N)
		p := Progress{Stage: "train", Iter: epoch, Loss: epochLoss, ValidLoss: math.NaN(), ValidAccuracy: math.NaN()}
		sum.Epochs = epoch
		if va == nil {
			copy(best, net.params)
			sum.BestEpoch, sum.TrainLoss, sum.Loss = epoch, epochLoss, epochLoss
		} else {
			p.ValidLoss, p.ValidAccuracy = net.evaluate(va, mean, std)
			if p.ValidLoss < sum.Loss {
				copy(best, net.params)
				sum.Loss, sum.ValidAccuracy, sum.BestEpoch, sum.TrainLoss = p.ValidLoss, p.ValidAccuracy, epoch, epochLoss
				sinceBest = 0
			} else {
				sinceBest++
			}
		}
		if s.Progress != nil {
			s.Progress(p)
		}
		stopped = va != nil && sinceBest >= s.Patience
		if !stopped && (math.IsNaN(epochLoss) || math.IsInf(epochLoss, 0)) {
			return nil, errorf(ErrBadSetting, "head: MLP training diverged at epoch %d (loss %v); lower the learning rate or standardise the features", epoch, epochLoss)
		}
		if ck != nil {
			if err := ck.save(epoch); err != nil {
				return nil, err
			}
		}
	}
	copy(net.params, best)
	sum.Converged = true
	sum.Stop = "max epochs reached"
	if va != nil && sinceBest >= s.Patience {
		sum.Stop = fmt.Sprintf("no better validation loss in %d epochs", s.Patience)
	}
	for l := range net.w {
		act := GELU
		if l == len(net.w)-1 {
			act = Identity
		}
		h.Layers = append(h.Layers, Dense{Out: sizes[l+1], In: sizes[l], W: slices.Clone(net.w[l]), B: slices.Clone(net.b[l]), Act: act})
	}
	sum.Elapsed = time.Since(start)
	h.Summary = sum
	settings := s
	settings.Threads, settings.Progress, settings.Checkpoint, settings.Resume = 0, nil, "", false // as saved
	h.MLPSettings = &settings
	return h, nil
}

// mlpCanceled is the error of a training cancelled in epoch (from 1) after batches of
// its batches.
func mlpCanceled(ctx context.Context, epoch, batches int, s *MLPSettings) error {
	where := fmt.Sprintf("before epoch %d", epoch)
	if batches > 0 {
		where = fmt.Sprintf("in epoch %d after %d batches", epoch, batches)
	}
	kept := "no epoch finished"
	switch {
	case epoch > 1 && s.Checkpoint != "":
		kept = fmt.Sprintf("the checkpoint %s holds epoch %d, the last finished: a fit with Resume set continues from it", s.Checkpoint, epoch-1)
	case epoch > 1:
		kept = fmt.Sprintf("finished epochs: %d, lost without a checkpoint", epoch-1)
	}
	return fmt.Errorf("head: MLP training cancelled %s (%s): %w", where, kept, ctx.Err())
}

// evaluate returns the mean unweighted loss and the accuracy (subset accuracy for
// multi-label data) of the network without dropout on d.
func (m *mlp) evaluate(d *Dataset, mean, std []float64) (loss, acc float64) {
	k := m.sizes[len(m.sizes)-1]
	xb := make([]float64, m.maxRows*d.D)
	bt := batchTargets{labels: make([]int, m.maxRows)}
	if d.Y != nil {
		bt.y = make([]float64, m.maxRows*k)
	}
	right := 0
	for lo := 0; lo < d.N; lo += m.maxRows {
		rows := min(m.maxRows, d.N-lo)
		for r := range rows {
			i := lo + r
			row := xb[r*d.D : (r+1)*d.D]
			for j, v := range d.X[i*d.D : (i+1)*d.D] {
				row[j] = float64(v)
				if mean != nil {
					row[j] = (row[j] - mean[j]) / std[j]
				}
			}
			if d.Y != nil {
				for c := range k {
					bt.y[r*k+c] = float64(d.Y[i*k+c])
				}
			} else {
				bt.labels[r] = d.Labels[i]
			}
		}
		z := m.forward(xb, rows, false)
		loss += m.lossGrad(rows, bt) * float64(rows)
		for r := range rows {
			zr := z[r*k : (r+1)*k]
			if d.Y == nil {
				if argmax(zr) == bt.labels[r] {
					right++
				}
				continue
			}
			ok := true
			for c, v := range zr {
				ok = ok && (v >= 0) == (bt.y[r*k+c] == 1)
			}
			if ok {
				right++
			}
		}
	}
	return loss / float64(d.N), float64(right) / float64(d.N)
}
