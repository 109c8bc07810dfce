package head

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/headstart-ml/headstart/features"
)

// Kind is the kind of head.
type Kind int

const (
	// LogReg is an L2-regularised logistic regression (scikit-learn's objective).
	LogReg Kind = iota
	// MLP is a multi-layer perceptron with GELU hidden layers.
	MLP
)

var kindNames = []string{"logreg", "mlp"}

// String returns the kind's name: logreg or mlp (what ParseKind accepts).
func (k Kind) String() string { return enumName(k, kindNames, "Kind") }

// ParseKind parses a head kind: logreg or mlp.
func ParseKind(s string) (Kind, error) {
	if i := slices.Index(kindNames, strings.ToLower(strings.TrimSpace(s))); i >= 0 {
		return Kind(i), nil
	}
	return LogReg, errorf(ErrBadSetting, "head: kind %q unknown; want one of %s", s, strings.Join(kindNames, ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	*k = v
	return err
}

// Output is how a head turns its last layer's values (logits) into probabilities.
type Output int

const (
	// Softmax: K logits, p = softmax(z) (multi-class).
	Softmax Output = iota
	// Binary: one logit for two classes, p = [1−σ(z), σ(z)] (scikit-learn's binary
	// logistic regression; the second class is the positive one).
	Binary
	// Sigmoid: K logits, p_k = σ(z_k) independently (multi-label, one-vs-rest).
	Sigmoid
)

var outputNames = []string{"softmax", "binary", "sigmoid"}

// String returns the output's name: softmax, binary or sigmoid.
func (o Output) String() string { return enumName(o, outputNames, "Output") }

// MarshalText implements encoding.TextMarshaler.
func (o Output) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Output) UnmarshalText(b []byte) error { return parseEnum(o, b, outputNames, "output") }

// Activation is the function applied after a Dense layer.
type Activation int

const (
	// Identity: no activation (the last layer).
	Identity Activation = iota
	// GELU: x·Φ(x) with the exact normal CDF, 0.5·x·(1 + erf(x/√2)) (PyTorch's
	// nn.GELU(approximate="none")).
	GELU
)

var activationNames = []string{"identity", "gelu"}

// String returns the activation's name: identity or gelu.
func (a Activation) String() string { return enumName(a, activationNames, "Activation") }

// MarshalText implements encoding.TextMarshaler.
func (a Activation) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Activation) UnmarshalText(b []byte) error {
	return parseEnum(a, b, activationNames, "activation")
}

// enumName returns names[v], or type(v) for a value without a name.
func enumName[T ~int](v T, names []string, typ string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, int(v))
}

// parseEnum sets *dst to the value named b, one of names; what names the enum in the
// error for an unknown name.
func parseEnum[T ~int](dst *T, b []byte, names []string, what string) error {
	i := slices.Index(names, string(b))
	if i < 0 {
		return fmt.Errorf("%s %q unknown; want one of %s", what, b, strings.Join(names, ", "))
	}
	*dst = T(i)
	return nil
}

// Dense is a fully connected layer y = act(W·x + B).
type Dense struct {
	Out, In int
	W       []float64 // (Out,In) row-major
	B       []float64 // (Out)
	Act     Activation
}

// Fingerprint identifies the features a head was trained on: the backbone and tokenizer
// files and the extraction settings. Features with another fingerprint are another
// space, and a head applied to them gives silently wrong answers.
type Fingerprint struct {
	Backbone        string `json:"backbone"`        // registry name; informative, not compared
	BackboneSHA256  string `json:"backbone_sha256"` // hex SHA-256 of model.onnx
	TokenizerSHA256 string `json:"tokenizer_sha256"`
	// BackboneDir is the directory of a backbone given as a directory (informative,
	// not compared: models.Find looks there first).
	BackboneDir string `json:"backbone_dir,omitempty"`
	// Spec is how the features were made (written at this level: pooling, layers,
	// normalize, max_len, prefix), with layers resolved.
	features.Spec
	Dim int `json:"dim"`
}

// FingerprintOf returns the fingerprint of features described by m with dim columns.
func FingerprintOf(m features.Manifest, dim int) Fingerprint {
	return Fingerprint{
		Backbone: m.Backbone.Name, BackboneSHA256: m.Backbone.SHA256, TokenizerSHA256: m.Backbone.TokenizerSHA256, BackboneDir: m.Backbone.Dir,
		Spec: m.Spec.Clone(), Dim: dim,
	}
}

// BackboneOf returns the backbone f records, for models.Find.
func (f Fingerprint) BackboneOf() features.Backbone {
	return features.Backbone{Name: f.Backbone, SHA256: f.BackboneSHA256, TokenizerSHA256: f.TokenizerSHA256, Dir: f.BackboneDir}
}

// Compare returns nil when g describes the same features as f, else an error wrapping
// ErrFingerprint that names every differing field with both values (f's as "head",
// g's as "features"). A zero Dim on either side is not compared.
func (f Fingerprint) Compare(g Fingerprint) error {
	var diffs []string
	add := func(field string, a, b any) {
		diffs = append(diffs, fmt.Sprintf("%s: head %v, features %v", field, a, b))
	}
	short := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	if f.BackboneSHA256 != g.BackboneSHA256 {
		add("backbone sha256", fmt.Sprintf("%s (%s)", short(f.BackboneSHA256), short(f.Backbone)),
			fmt.Sprintf("%s (%s)", short(g.BackboneSHA256), short(g.Backbone)))
	}
	if f.TokenizerSHA256 != g.TokenizerSHA256 {
		add("tokenizer sha256", short(f.TokenizerSHA256), short(g.TokenizerSHA256))
	}
	for _, d := range f.Spec.Diff(g.Spec) {
		add(d.Field, d.A, d.B)
	}
	if f.Dim != 0 && g.Dim != 0 && f.Dim != g.Dim {
		add("dim", f.Dim, g.Dim)
	}
	if len(diffs) == 0 {
		return nil
	}
	return errorf(ErrFingerprint, "head: the features were made differently from the head's training features (%s); extract them with the head's backbone and settings",
		strings.Join(diffs, "; "))
}

// Head is a trained classifier on fixed features. Its zero value is not usable: heads
// come from Fit, FitLogReg, FitMLP or Load. A Head is not modified by its methods and
// is safe for concurrent use.
type Head struct {
	Kind Kind
	// Classes names the outputs: column k of Predict's probabilities is Classes[k].
	Classes    []string
	MultiLabel bool
	Dim        int // feature dimension D
	// Fingerprint of the training features (zero when trained on a bare Dataset).
	Fingerprint Fingerprint
	// Mean and Std standardise a row before the first layer, x' = (x − Mean)/Std;
	// both nil when the head does not standardise.
	Mean, Std []float64
	// Layers are applied in order; the last one gives the logits.
	Layers []Dense
	Output Output
	// Settings are the training settings (LogRegSettings or MLPSettings).
	LogRegSettings *LogRegSettings
	MLPSettings    *MLPSettings
	Summary        Summary
	// Top, when set, holds trained top encoder blocks: the head then applies to the
	// backbone with these blocks (see Top), not to the backbone's own features.
	Top *Top
}

// Summary describes how a head was trained.
type Summary struct {
	Rows    int `json:"rows"`    // training rows
	Classes int `json:"classes"` // K

	// Logistic regression.
	C           float64   `json:"C,omitempty"`           // the C used (the CV choice under AutoC)
	Iterations  int       `json:"iterations,omitempty"`  // L-BFGS iterations (one-vs-rest: the most of any label)
	Evaluations int       `json:"evaluations,omitempty"` // loss and gradient evaluations (one-vs-rest: total)
	Converged   bool      `json:"converged"`             // the solver met tol (every label for one-vs-rest)
	Stop        string    `json:"stop,omitempty"`        // why the solver stopped
	Loss        float64   `json:"loss"`                  // final objective (logreg; one-vs-rest: summed over labels) or best validation loss (MLP)
	GradMax     float64   `json:"grad_max,omitempty"`    // final max |gradient| (logreg)
	CV          []CVScore `json:"cv,omitempty"`          // cross-validation scores under AutoC

	// MLP.
	Epochs        int     `json:"epochs,omitempty"`         // epochs run
	BestEpoch     int     `json:"best_epoch,omitempty"`     // epoch whose weights were kept (1-based)
	ValidRows     int     `json:"valid_rows,omitempty"`     // validation rows
	ValidAccuracy float64 `json:"valid_accuracy,omitempty"` // at the best epoch
	TrainLoss     float64 `json:"train_loss,omitempty"`     // mean training loss of the best epoch

	// Elapsed is the wall time of the fit. It is not saved, so that saving the same
	// head twice gives the same bytes.
	Elapsed time.Duration `json:"-"`
	// Resumed is the number of MLP epochs taken from a checkpoint
	// (MLPSettings.Resume); not saved either.
	Resumed int `json:"-"`
}

// CVScore is the cross-validated accuracy of one C.
type CVScore struct {
	C        float64   `json:"C"`
	Accuracy float64   `json:"accuracy"` // mean over folds
	Folds    []float64 `json:"folds"`    // per fold
}

// Check returns an error wrapping ErrFingerprint when features described by m were not
// made like the head's training features (another backbone, tokenizer, pooling, layers,
// normalisation or max_len), naming each differing field with both values.
func (h *Head) Check(m features.Manifest) error {
	if h.Top != nil {
		return errorf(ErrFingerprint, "head: this head carries trained top blocks %d..%d; the backbone's own features do not fit it: evaluate it on an activation cache (pipeline extract --cut-top %d), or predict from texts",
			h.Top.CutBlock, h.Top.NumBlocks-1, h.Top.NumBlocks-h.Top.CutBlock)
	}
	fp := FingerprintOf(m, 0)
	return h.Fingerprint.Compare(fp)
}

// CheckStore is Check for a store, which also checks the dimension (ErrDimension).
// name is used in errors (the store's path).
func (h *Head) CheckStore(s *features.Store, name string) error {
	if err := h.Check(s.Manifest); err != nil {
		return fmt.Errorf("features %s: %w", name, err)
	}
	if s.D != h.Dim {
		return errorf(ErrDimension, "head: features %s have %d columns; the head takes %d", name, s.D, h.Dim)
	}
	return nil
}

// Fold returns an equivalent head without standardisation: the first layer absorbs
// it, W' = W·diag(1/Std) and b' = b − W'·Mean, so that W'x + b' = W·(x − Mean)/Std + b
// (to rounding). A head without standardisation is returned as is. Useful to export a
// head as plain layers.
func (h *Head) Fold() *Head {
	if h.Mean == nil {
		return h
	}
	g := *h
	g.Mean, g.Std = nil, nil
	g.Layers = slices.Clone(h.Layers)
	l := g.Layers[0]
	w, b := make([]float64, len(l.W)), slices.Clone(l.B)
	for o := range l.Out {
		for j := range l.In {
			w[o*l.In+j] = l.W[o*l.In+j] / h.Std[j]
			b[o] -= w[o*l.In+j] * h.Mean[j]
		}
	}
	l.W, l.B = w, b
	g.Layers[0] = l
	return &g
}

// predictChunk is the number of rows Predict processes at a time.
const predictChunk = 256

// logits computes the head's last-layer values for the n rows of x, (n,D) row-major,
// predictChunk rows at a time, calling fn with the first row's index and the chunk's
// logits, (rows,outputs) row-major (valid only during the call).
func (h *Head) logits(x []float32, n int, fn func(lo int, z []float64)) {
	if len(x) != n*h.Dim {
		panic(fmt.Sprintf("head: Predict: len(x) = %d, want n*Dim = %d", len(x), n*h.Dim))
	}
	width := h.Dim
	for _, l := range h.Layers {
		width = max(width, l.Out)
	}
	chunk := min(predictChunk, n) // a few rows when serving: no chunk-sized buffers
	a := make([]float64, chunk*width)
	b := make([]float64, chunk*width)
	for lo := 0; lo < n; lo += predictChunk {
		rows := min(predictChunk, n-lo)
		in := a[:rows*h.Dim]
		for i, v := range x[lo*h.Dim : (lo+rows)*h.Dim] {
			in[i] = float64(v)
		}
		if h.Mean != nil {
			for r := range rows {
				row := in[r*h.Dim : (r+1)*h.Dim]
				for j := range row {
					row[j] = (row[j] - h.Mean[j]) / h.Std[j]
				}
			}
		}
		cur, next := a, b
		for _, l := range h.Layers {
			out := next[:rows*l.Out]
			denseForward(out, cur[:rows*l.In], l, rows)
			cur, next = next, cur
		}
		fn(lo, cur[:rows*h.Layers[len(h.Layers)-1].Out])
	}
}

// denseForward computes dst = act(x·Wᵀ + B) for rows rows: x (rows,In), dst (rows,Out).
func denseForward(dst, x []float64, l Dense, rows int) {
	for r := range rows {
		copy(dst[r*l.Out:(r+1)*l.Out], l.B)
	}
	gemm(false, true, rows, l.Out, l.In, x, l.In, l.W, l.In, 1, dst, l.Out, runtime.GOMAXPROCS(0))
	if l.Act == GELU {
		for i, v := range dst[:rows*l.Out] {
			dst[i] = gelu(v)
		}
	}
}

// Predict writes the class probabilities of the n rows of x, (n,Dim) row-major, to dst,
// (n,K) row-major with K = len(Classes). x is not modified. It panics if the lengths
// disagree; check features with CheckStore first.
func (h *Head) Predict(dst []float32, x []float32, n int) {
	k := len(h.Classes)
	if len(dst) < n*k {
		panic(fmt.Sprintf("head: Predict: len(dst) = %d, want at least n*K = %d", len(dst), n*k))
	}
	p := make([]float64, k)
	h.logits(x, n, func(lo int, z []float64) {
		out := h.Layers[len(h.Layers)-1].Out
		for r := range len(z) / out {
			h.probs(p, z[r*out:(r+1)*out])
			for c, v := range p {
				dst[(lo+r)*k+c] = float32(v)
			}
		}
	})
}

// probs turns one row of logits into probabilities.
func (h *Head) probs(dst, z []float64) {
	switch h.Output {
	case Binary:
		q := sigmoid(z[0])
		dst[0], dst[1] = 1-q, q
	case Sigmoid:
		for c, v := range z {
			dst[c] = sigmoid(v)
		}
	default:
		softmax(dst, z)
	}
}

// PredictLabels writes the most probable class of each of the n rows of x to dst: the
// largest logit (the first on a tie, as numpy's argmax), or for a binary head class 1
// when its logit is positive (scikit-learn's predict). For a multi-label head it is the
// most probable label; PredictSets gives all labels above a threshold.
func (h *Head) PredictLabels(dst []int, x []float32, n int) {
	if len(dst) < n {
		panic("head: PredictLabels: len(dst) < n")
	}
	h.logits(x, n, func(lo int, z []float64) {
		out := h.Layers[len(h.Layers)-1].Out
		for r := range len(z) / out {
			row := z[r*out : (r+1)*out]
			if h.Output == Binary {
				dst[lo+r] = 0
				if row[0] > 0 {
					dst[lo+r] = 1
				}
				continue
			}
			dst[lo+r] = argmax(row)
		}
	})
}

// PredictSets writes, for each of the n rows of x, whether each label's probability is
// at least threshold: dst is (n,K) row-major. It is meant for multi-label heads (use 0.5
// for OneVsRestClassifier's predict); for other heads it thresholds the class
// probabilities.
func (h *Head) PredictSets(dst []bool, x []float32, n int, threshold float64) {
	k := len(h.Classes)
	if len(dst) < n*k {
		panic("head: PredictSets: len(dst) < n*K")
	}
	p := make([]float64, k)
	h.logits(x, n, func(lo int, z []float64) {
		out := h.Layers[len(h.Layers)-1].Out
		for r := range len(z) / out {
			h.probs(p, z[r*out:(r+1)*out])
			for c, v := range p {
				dst[(lo+r)*k+c] = v >= threshold
			}
		}
	})
}

// Targets maps the labels of d, a data set whose classes are named, onto the head's
// classes: the result holds, for each row, the index into h.Classes of its label.
// Labels the head was not trained on give ErrUnseenLabel naming them. Multi-label data
// gives (N,K) targets over the head's classes in Y order instead.
func (h *Head) Targets(d *Dataset) (labels []int, y []float32, err error) {
	index := make(map[string]int, len(h.Classes))
	for i, c := range h.Classes {
		index[c] = i
	}
	remap := make([]int, len(d.Classes))
	var unseen []string
	for i, c := range d.Classes {
		j, ok := index[c]
		if !ok {
			j = -1
		}
		remap[i] = j
	}
	if d.Y != nil {
		if !h.MultiLabel {
			return nil, nil, errorf(ErrBadSetting, "head: data %s is multi-label but the head is single-label", d.Name)
		}
		k, kd := len(h.Classes), len(d.Classes)
		y = make([]float32, d.N*k)
		for i := range d.N {
			for c := range kd {
				if d.Y[i*kd+c] == 0 {
					continue
				}
				if remap[c] < 0 {
					if !slices.Contains(unseen, d.Classes[c]) {
						unseen = append(unseen, d.Classes[c])
					}
					continue
				}
				y[i*k+remap[c]] = 1
			}
		}
	} else {
		labels = make([]int, d.N)
		for i, l := range d.Labels {
			if remap[l] < 0 {
				if !slices.Contains(unseen, d.Classes[l]) {
					unseen = append(unseen, d.Classes[l])
				}
				continue
			}
			labels[i] = remap[l]
		}
	}
	if len(unseen) > 0 {
		slices.Sort(unseen)
		q := make([]string, len(unseen))
		for i, u := range unseen {
			q[i] = fmt.Sprintf("%q", u)
		}
		return nil, nil, errorf(ErrUnseenLabel, "head: data %s has %d label(s) the head was not trained on: %s; the head knows %d classes",
			d.Name, len(unseen), strings.Join(q, ", "), len(h.Classes))
	}
	return labels, y, nil
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// softmax writes softmax(z) to dst.
func softmax(dst, z []float64) {
	m := z[0]
	for _, v := range z[1:] {
		m = math.Max(m, v)
	}
	var s float64
	for c, v := range z {
		dst[c] = math.Exp(v - m)
		s += dst[c]
	}
	for c := range dst[:len(z)] {
		dst[c] /= s
	}
}

func argmax(z []float64) int {
	best := 0
	for c, v := range z {
		if v > z[best] {
			best = c
		}
	}
	return best
}
