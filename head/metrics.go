package head

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// Report holds a head's scores on labelled data. It marshals to JSON with the field
// names below.
type Report struct {
	// Accuracy is the fraction of rows whose predicted class is right (for multi-label
	// data: whose predicted label set is exactly right, scikit-learn's subset accuracy).
	Accuracy float64 `json:"accuracy"`
	// MacroF1 is the unweighted mean of the per-class F1 over the classes that occur in
	// the truth or the predictions (scikit-learn's f1_score(average="macro"); every
	// label for multi-label data).
	MacroF1 float64 `json:"macro_f1"`
	// WeightedF1 is the mean of the per-class F1 weighted by support
	// (f1_score(average="weighted")).
	WeightedF1 float64 `json:"weighted_f1"`
	// MicroPrecision, MicroRecall and MicroF1 pool the counts of every class: true
	// positives over predictions, over true labels, and their harmonic mean
	// (precision_recall_fscore_support(average="micro")). For single-label data all
	// three equal Accuracy.
	MicroPrecision float64 `json:"micro_precision"`
	MicroRecall    float64 `json:"micro_recall"`
	MicroF1        float64 `json:"micro_f1"`
	// HammingLoss is the fraction of wrong (row, label) decisions, a label predicted but
	// not true or true but not predicted, over rows × labels (hamming_loss); for
	// single-label data it is the fraction of wrong rows, 1 − Accuracy.
	HammingLoss float64 `json:"hamming_loss"`
	// LogLoss is the mean negative log-probability of the true class, probabilities
	// clipped to [ε, 1−ε] with ε the float32 machine epsilon (scikit-learn's log_loss on
	// float32 probabilities); for multi-label data, the mean binary cross-entropy over
	// rows and labels.
	LogLoss float64 `json:"log_loss"`
	// ECE is the expected calibration error with 15 equal-width confidence bins
	// (Guo et al., On Calibration of Modern Neural Networks, ICML 2017, eq. 3):
	// Σ_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)|, the confidence being the
	// predicted class's probability and bin b holding confidences in (b/15, (b+1)/15].
	// For multi-label data every (row, label) pair counts as one binary prediction.
	ECE float64 `json:"ece"`
	// N is the number of rows scored.
	N int `json:"n"`
	// MultiLabel marks the scores of multi-label data (NewMultiLabelReport), where a
	// label counts as predicted when its probability is at least Threshold.
	MultiLabel bool    `json:"multi_label,omitempty"`
	Threshold  float64 `json:"threshold,omitempty"`
	// PerClass lists every class of the head, in the head's order.
	PerClass []ClassScore `json:"per_class"`
	// Confusion counts rows by true class (row) and predicted class (column), in the
	// head's class order; nil for multi-label data.
	Confusion [][]int `json:"confusion"`
}

// ClassScore holds one class's scores. Precision (recall) is 0 when the class is never
// predicted (never true), as scikit-learn's zero_division=0.
type ClassScore struct {
	Label     string  `json:"label"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"` // rows whose true class (a true label) this is
	Predicted int     `json:"predicted"`
}

// eceBins is the number of confidence bins of the expected calibration error.
const eceBins = 15

// eps32 is the float32 machine epsilon, numpy.finfo(float32).eps: the log-loss clip.
const eps32 = 0x1p-23

// NewReport scores single-label predictions: truth and pred hold class indices into
// classes for n rows, probs the (n, K) class probabilities. It panics if the lengths
// disagree.
func NewReport(classes []string, truth, pred []int, probs []float32) Report {
	n, k := len(truth), len(classes)
	if len(pred) != n || len(probs) != n*k {
		panic("head: NewReport: len(truth), len(pred) and len(probs)/K disagree")
	}
	r := Report{N: n, PerClass: make([]ClassScore, k), Confusion: make([][]int, k)}
	for c := range k {
		r.Confusion[c] = make([]int, k)
		r.PerClass[c].Label = classes[c]
	}
	var bins eceAcc
	right := 0
	for i := range n {
		t, p := truth[i], pred[i]
		r.Confusion[t][p]++
		r.PerClass[t].Support++
		r.PerClass[p].Predicted++
		if t == p {
			right++
		}
		pt := math.Min(math.Max(float64(probs[i*k+t]), eps32), 1-eps32)
		r.LogLoss -= math.Log(pt)
		bins.add(float64(probs[i*k+p]), t == p)
	}
	tp := make([]int, k)
	for c := range k {
		tp[c] = r.Confusion[c][c]
	}
	r.finish(tp, right, &bins)
	if n > 0 {
		r.HammingLoss = float64(n-right) / float64(n)
	}
	return r
}

// NewMultiLabelReport scores multi-label predictions: y holds the (n, K) 0/1 truth,
// probs the (n, K) label probabilities, and a label is predicted when its probability is
// at least threshold. Accuracy is the subset accuracy (the predicted set is exactly the
// true set), MacroF1 averages over every label, and the micro scores and the Hamming
// loss count (row, label) decisions.
func NewMultiLabelReport(classes []string, y, probs []float32, threshold float64) Report {
	k := len(classes)
	if k == 0 || len(y) != len(probs) || len(y)%k != 0 {
		panic("head: NewMultiLabelReport: len(y), len(probs) and K disagree")
	}
	n := len(y) / k
	r := Report{N: n, PerClass: make([]ClassScore, k), MultiLabel: true, Threshold: threshold}
	wrong := 0
	for c := range k {
		r.PerClass[c].Label = classes[c]
	}
	var bins eceAcc
	tp := make([]int, k)
	right := 0
	for i := range n {
		ok := true
		for c := range k {
			t := y[i*k+c] == 1
			p := float64(probs[i*k+c])
			pred := p >= threshold
			if t {
				r.PerClass[c].Support++
			}
			if pred {
				r.PerClass[c].Predicted++
			}
			if t && pred {
				tp[c]++
			}
			ok = ok && t == pred
			if t != pred {
				wrong++
			}
			q := math.Min(math.Max(p, eps32), 1-eps32)
			if t {
				r.LogLoss -= math.Log(q)
			} else {
				r.LogLoss -= math.Log(1 - q)
			}
			conf := p
			if !pred {
				conf = 1 - p
			}
			bins.add(conf, t == pred)
		}
		if ok {
			right++
		}
	}
	r.LogLoss /= float64(k) // finish divides by n
	r.finish(tp, right, &bins)
	r.macroOverAll()
	if n > 0 {
		r.HammingLoss = float64(wrong) / float64(n*k)
	}
	return r
}

// finish computes the derived scores from the counts.
func (r *Report) finish(tp []int, right int, bins *eceAcc) {
	if r.N == 0 {
		r.LogLoss, r.Accuracy = math.NaN(), math.NaN()
		return
	}
	r.Accuracy = float64(right) / float64(r.N)
	r.LogLoss /= float64(r.N)
	r.ECE = bins.ece()
	var macro, weighted float64
	var used, support, predicted, hits int
	for c := range r.PerClass {
		predicted += r.PerClass[c].Predicted
		hits += tp[c]
		s := &r.PerClass[c]
		if s.Predicted > 0 {
			s.Precision = float64(tp[c]) / float64(s.Predicted)
		}
		if s.Support > 0 {
			s.Recall = float64(tp[c]) / float64(s.Support)
		}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		if s.Support > 0 || s.Predicted > 0 {
			macro += s.F1
			used++
		}
		weighted += s.F1 * float64(s.Support)
		support += s.Support
	}
	if used > 0 {
		r.MacroF1 = macro / float64(used)
	}
	if support > 0 {
		r.WeightedF1 = weighted / float64(support)
		r.MicroRecall = float64(hits) / float64(support)
	}
	if predicted > 0 {
		r.MicroPrecision = float64(hits) / float64(predicted)
	}
	if r.MicroPrecision+r.MicroRecall > 0 {
		r.MicroF1 = 2 * r.MicroPrecision * r.MicroRecall / (r.MicroPrecision + r.MicroRecall)
	}
}

// macroOverAll recomputes MacroF1 over every class (scikit-learn's multi-label macro
// average counts labels that never occur).
func (r *Report) macroOverAll() {
	var s float64
	for _, c := range r.PerClass {
		s += c.F1
	}
	r.MacroF1 = s / float64(len(r.PerClass))
}

// eceAcc accumulates confidence bins.
type eceAcc struct {
	count      [eceBins]int
	conf, hits [eceBins]float64
	n          int
}

func (e *eceAcc) add(conf float64, hit bool) {
	b := int(math.Ceil(conf*eceBins)) - 1 // (b/15, (b+1)/15]
	b = min(max(b, 0), eceBins-1)
	e.count[b]++
	e.conf[b] += conf
	if hit {
		e.hits[b]++
	}
	e.n++
}

func (e *eceAcc) ece() float64 {
	var s float64
	for b := range eceBins {
		if e.count[b] == 0 {
			continue
		}
		c := float64(e.count[b])
		s += c / float64(e.n) * math.Abs(e.hits[b]/c-e.conf[b]/c)
	}
	return s
}

// Evaluate scores the head on d, whose labels are matched to the head's classes by
// name (ErrUnseenLabel for labels the head does not know). A multi-label head is scored
// with NewMultiLabelReport at threshold 0.5, a single-label one with NewReport. d's features must be the
// head's (check a store with CheckStore first); a dimension mismatch is ErrDimension.
func (h *Head) Evaluate(d *Dataset) (Report, error) { return h.EvaluateAt(d, 0.5) }

// EvaluateAt is Evaluate with the probability threshold at or above which a multi-label
// head predicts a label, in (0, 1) (ErrBadSetting otherwise). It does not change the
// scores of a single-label head.
func (h *Head) EvaluateAt(d *Dataset, threshold float64) (Report, error) {
	if !(threshold > 0 && threshold < 1) {
		return Report{}, errorf(ErrBadSetting, "head: threshold %v: want a probability in (0, 1)", threshold)
	}
	if d.N == 0 {
		return Report{}, errorf(ErrEmpty, "head: evaluation data %s: no rows", d.Name)
	}
	if d.D != h.Dim {
		return Report{}, errorf(ErrDimension, "head: evaluation data %s has %d columns; the head takes %d", d.Name, d.D, h.Dim)
	}
	if err := checkFinite(d.X, d.N, d.D, d.Name, d.RowIDs); err != nil {
		return Report{}, err
	}
	labels, y, err := h.Targets(d)
	if err != nil {
		return Report{}, err
	}
	if h.MultiLabel && y == nil {
		// Single-label rows scored by a multi-label head: each row carries one label.
		k := len(h.Classes)
		y = make([]float32, d.N*k)
		for i, l := range labels {
			y[i*k+l] = 1
		}
	}
	probs := make([]float32, d.N*len(h.Classes))
	h.Predict(probs, d.X, d.N)
	if y != nil {
		return NewMultiLabelReport(h.Classes, y, probs, threshold), nil
	}
	pred := make([]int, d.N)
	h.PredictLabels(pred, d.X, d.N)
	return NewReport(h.Classes, labels, pred, probs), nil
}

// WriteTable writes the report for people: the summary scores (for multi-label data
// the subset accuracy, micro and macro F1 and the Hamming loss), then one line per class
// with precision, recall, F1 and support.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	if r.MultiLabel {
		fmt.Fprintf(&b, "multi-label, threshold %g: subset accuracy %.4f  micro F1 %.4f (P %.4f, R %.4f)  macro F1 %.4f  weighted F1 %.4f\nhamming loss %.4f  log-loss %.4f  ECE %.4f  n %d\n\n",
			r.Threshold, r.Accuracy, r.MicroF1, r.MicroPrecision, r.MicroRecall, r.MacroF1, r.WeightedF1, r.HammingLoss, r.LogLoss, r.ECE, r.N)
	} else {
		fmt.Fprintf(&b, "accuracy %.4f  macro F1 %.4f  weighted F1 %.4f  log-loss %.4f  ECE %.4f  n %d\n\n",
			r.Accuracy, r.MacroF1, r.WeightedF1, r.LogLoss, r.ECE, r.N)
	}
	width := len("label")
	for _, c := range r.PerClass {
		width = max(width, utf8.RuneCountInString(c.Label))
	}
	fmt.Fprintf(&b, "%-*s  %9s  %6s  %6s  %7s\n", width, "label", "precision", "recall", "F1", "support")
	for _, c := range r.PerClass {
		fmt.Fprintf(&b, "%-*s  %9.4f  %6.4f  %6.4f  %7d\n", width, c.Label, c.Precision, c.Recall, c.F1, c.Support)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ArgmaxRows sets dst[i] to the index of the largest of row i of probs (N, k), the first
// one on ties: the predicted class of each row of probabilities computed elsewhere.
func ArgmaxRows(dst []int, probs []float32, k int) {
	for i := range dst {
		p := probs[i*k : (i+1)*k]
		best := 0
		for j, v := range p {
			if v > p[best] {
				best = j
			}
		}
		dst[i] = best
	}
}
