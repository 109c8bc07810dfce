package head

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/headstart-ml/headstart/features"
)

// TestMultiLabelScores checks the pooled (micro) scores and the Hamming loss against
// hand counts, as scikit-learn defines them on multi-hot arrays.
func TestMultiLabelScores(t *testing.T) {
	classes := []string{"x", "y", "z"}
	y := []float32{
		1, 0, 1, // predicted {x}: z missed
		1, 1, 0, // predicted {x, y, z}: z extra
		0, 1, 0, // predicted {y}: right
		0, 0, 1, // predicted {}: z missed
	}
	p := []float32{
		0.9, 0.2, 0.4,
		0.8, 0.7, 0.6,
		0.1, 0.55, 0.3,
		0.2, 0.1, 0.45,
	}
	r := NewMultiLabelReport(classes, y, p, 0.5)
	// tp: x 2, y 2, z 0 → 4; predicted 2+2+1 = 5; true 2+2+2 = 6.
	microP, microR := 4.0/5, 4.0/6
	microF1 := 2 * microP * microR / (microP + microR)
	// Per label F1: x 1; y 1; z P 0 (1 predicted, 0 right), R 0 → 0. Macro over all 3.
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"subset accuracy", r.Accuracy, 1.0 / 4},
		{"micro precision", r.MicroPrecision, microP},
		{"micro recall", r.MicroRecall, microR},
		{"micro F1", r.MicroF1, microF1},
		{"macro F1", r.MacroF1, 2.0 / 3},
		{"weighted F1", r.WeightedF1, (2*1 + 2*1 + 2*0) / 6.0},
		{"hamming loss", r.HammingLoss, 3.0 / 12},
		{"threshold", r.Threshold, 0.5},
	} {
		if !scalar.EqualWithinAbs(c.got, c.want, metricTol) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !r.MultiLabel || r.N != 4 || r.PerClass[2].Support != 2 || r.PerClass[2].Predicted != 1 {
		t.Errorf("report %+v", r)
	}
	// A lower threshold predicts more: z at 0.4 and 0.45 become right, x at 0.2 stays out.
	r2 := NewMultiLabelReport(classes, y, p, 0.35)
	if !(r2.MicroRecall > r.MicroRecall) || !scalar.EqualWithinAbs(r2.HammingLoss, 1.0/12, metricTol) {
		t.Errorf("threshold 0.35: micro recall %v, hamming %v", r2.MicroRecall, r2.HammingLoss)
	}

	b, _ := json.Marshal(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"accuracy", "macro_f1", "micro_f1", "micro_precision", "micro_recall", "hamming_loss", "n", "per_class", "multi_label", "threshold"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	var buf bytes.Buffer
	r.WriteTable(&buf)
	for _, want := range []string{"multi-label, threshold 0.5: subset accuracy 0.2500  micro F1 0.7273 (P 0.8000, R 0.6667)", "hamming loss 0.2500", "z         0.0000  0.0000  0.0000        2"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestSingleLabelMicro: for single-label data the micro scores are the accuracy and
// the Hamming loss the error rate (scikit-learn's multiclass definitions); the JSON of
// a single-label report says nothing of multi-label.
func TestSingleLabelMicro(t *testing.T) {
	r := NewReport([]string{"a", "b", "c"}, []int{0, 0, 1, 2, 2}, []int{0, 1, 1, 2, 0}, make([]float32, 15))
	for _, v := range []float64{r.MicroPrecision, r.MicroRecall, r.MicroF1} {
		if !scalar.EqualWithinAbs(v, 3.0/5, metricTol) {
			t.Errorf("micro score %v, want the accuracy 0.6", v)
		}
	}
	if !scalar.EqualWithinAbs(r.HammingLoss, 2.0/5, metricTol) {
		t.Errorf("hamming loss %v, want 0.4", r.HammingLoss)
	}
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "multi_label") || strings.Contains(string(b), "threshold") {
		t.Errorf("single-label JSON mentions multi-label fields: %s", b)
	}
}

// multiStore writes a multi-label store of the data set's rows and sets over names.
func multiStore(t *testing.T, x []float32, d int, names []string, sets []uint8) *features.Store {
	t.Helper()
	n := len(x) / d
	m := features.Manifest{Tool: "test", Spec: features.Spec{Pooling: "mean", Layers: []int{6}, MaxLen: 128}, LabelNames: names, MultiLabel: true, LabelSep: "|"}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	w, err := features.NewWriter(path, m, n, d, features.Float32)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i)
	}
	if err := w.WriteRowSets(x, sets, ids); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := features.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFromMultiLabelStore: a multi-label store gives a multi-label data set over the
// labels that occur; a head fit on it is one-vs-rest, and scores a store whose label
// names differ by matching names; an empty set is an unlabelled row.
func TestFromMultiLabelStore(t *testing.T) {
	src := multiLabel(synthetic(300, 8, 3, 3, false, 5))
	k := len(src.Classes)
	// The store has an extra label "unused" between the real ones, never set.
	names := []string{src.Classes[0], "unused", src.Classes[1], src.Classes[2]}
	col := []int{0, 2, 3}
	sets := make([]uint8, src.N*len(names))
	for i := range src.N {
		for c := range k {
			if src.Y[i*k+c] == 1 {
				sets[i*len(names)+col[c]] = 1
			}
		}
	}
	s := multiStore(t, src.X, src.D, names, sets)
	d, err := FromStore(s, "m.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if !d.MultiLabel() || !slices.Equal(d.Classes, src.Classes) || !slices.Equal(d.Y, src.Y) || d.Labels != nil {
		t.Fatalf("data set: classes %q, multi-label %v, Y equal %v", d.Classes, d.MultiLabel(), slices.Equal(d.Y, src.Y))
	}
	for _, o := range []Options{{Kind: LogReg}, {Kind: MLP, MLP: MLPSettings{Hidden: []int{16}, MaxEpochs: 30}}} {
		h, err := Fit(d, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		if !h.MultiLabel || h.Output != Sigmoid {
			t.Errorf("%v: multi-label %v, output %v; want a sigmoid one-vs-rest head", o.Kind, h.MultiLabel, h.Output)
		}
		r, err := h.EvaluateAt(&d, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		// Separable synthetic data, scored on the training rows: measured micro F1 1.0 for both.
		t.Logf("%v: micro F1 %.4f", o.Kind, r.MicroF1)
		if !r.MultiLabel || !(r.MicroF1 > 0.85) {
			t.Errorf("%v: micro F1 %v on its training data", o.Kind, r.MicroF1)
		}
		if _, err := h.EvaluateAt(&d, 1); !errors.Is(err, ErrBadSetting) {
			t.Errorf("threshold 1: %v", err)
		}
	}

	// Row 7 loses its labels: unlabelled, named.
	for c := range names {
		sets[7*len(names)+c] = 0
	}
	s = multiStore(t, src.X, src.D, names, sets)
	if _, err := FromStore(s, "m.safetensors"); !errors.Is(err, ErrUnlabelled) || !strings.Contains(err.Error(), "row 7 has an empty label set") {
		t.Errorf("empty set: %v", err)
	}
}

// ovrTol bounds the difference between a one-vs-rest label and the same binary problem
// fitted alone: the same objective and solver; only the number of loss threads differs,
// which the package keeps out of the result.
const ovrTol = 1e-12

// TestOneVsRestBalanced: with ClassWeight Balanced each label of a one-vs-rest fit is
// the binary balanced fit of that label (OneVsRestClassifier(LogisticRegression(
// class_weight="balanced"))): weights n/(2·n_c) within each binary problem.
func TestOneVsRestBalanced(t *testing.T) {
	d := multiLabel(synthetic(200, 6, 3, 2, true, 8))
	k := len(d.Classes)
	s := LogRegSettings{ClassWeight: Balanced, Precision: Float64}
	h, err := FitLogReg(d, s)
	if err != nil {
		t.Fatal(err)
	}
	for c := range k {
		b := Dataset{N: d.N, D: d.D, X: d.X, Labels: make([]int, d.N), Classes: []string{"no", "yes"}}
		for i := range d.N {
			b.Labels[i] = int(d.Y[i*k+c])
		}
		hb, err := FitLogReg(b, s)
		if err != nil {
			t.Fatal(err)
		}
		got := append(slices.Clone(h.Layers[0].W[c*d.D:(c+1)*d.D]), h.Layers[0].B[c])
		want := append(slices.Clone(hb.Layers[0].W), hb.Layers[0].B[0])
		for j := range got {
			if !scalar.EqualWithinAbsOrRel(got[j], want[j], ovrTol, ovrTol) {
				t.Fatalf("label %q, coefficient %d: one-vs-rest %v, binary %v", d.Classes[c], j, got[j], want[j])
			}
		}
	}
}
