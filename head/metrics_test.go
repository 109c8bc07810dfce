package head

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
)

// metricTol: the metrics are short sums of float64 terms.
const metricTol = 1e-12

func TestReport(t *testing.T) {
	classes := []string{"a", "b", "c"}
	truth := []int{0, 0, 1, 1, 2, 2}
	pred := []int{0, 1, 1, 1, 2, 0}
	probs := []float32{
		0.8, 0.1, 0.1, // right, confidence 0.8
		0.3, 0.6, 0.1, // wrong, 0.6
		0.1, 0.9, 0, // right, 0.9
		0.2, 0.7, 0.1, // right, 0.7
		0, 0.0, 1, // right, 1
		0.5, 0.25, 0.25, // wrong, 0.5 (true class 0.25)
	}
	r := NewReport(classes, truth, pred, probs)
	// Per class: a P=1/2 R=1/2 F1=1/2; b P=2/3 R=1 F1=4/5; c P=1 R=1/2 F1=2/3.
	want := []ClassScore{
		{"a", 0.5, 0.5, 0.5, 2, 2},
		{"b", 2.0 / 3, 1, 0.8, 2, 3},
		{"c", 1, 0.5, 2.0 / 3, 2, 1},
	}
	for i, w := range want {
		g := r.PerClass[i]
		if g.Label != w.Label || g.Support != w.Support || g.Predicted != w.Predicted ||
			!scalar.EqualWithinAbs(g.Precision, w.Precision, metricTol) || !scalar.EqualWithinAbs(g.Recall, w.Recall, metricTol) ||
			!scalar.EqualWithinAbs(g.F1, w.F1, metricTol) {
			t.Errorf("class %d: %+v, want %+v", i, g, w)
		}
	}
	macro := (0.5 + 0.8 + 2.0/3) / 3
	// log-loss: −mean log p_true, with p = 0 clipped to ε32.
	ll := -(math.Log(0.8) + math.Log(float64(float32(0.3))) + math.Log(float64(float32(0.9))) + math.Log(float64(float32(0.7))) +
		math.Log(1-eps32) + math.Log(0.25)) / 6
	// ECE: bins (7/15,8/15]: 0.5 wrong; (8/15,9/15]: 0.6 wrong; (10/15,11/15]: 0.7 right;
	// (11/15,12/15]: 0.8 right; (13/15,14/15]: 0.9 right; (14/15,1]: 1 right.
	ece := (0.5 + 0.6 + float64(float32(0.3)) + float64(float32(0.2)) + float64(float32(0.1)) + 0) / 6
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"accuracy", r.Accuracy, 4.0 / 6}, {"macro F1", r.MacroF1, macro}, {"weighted F1", r.WeightedF1, macro},
		{"log-loss", r.LogLoss, ll}, {"ECE", r.ECE, ece},
	} {
		if !scalar.EqualWithinAbs(c.got, c.want, 1e-7) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if r.N != 6 || !slices.Equal(r.Confusion[0], []int{1, 1, 0}) || !slices.Equal(r.Confusion[1], []int{0, 2, 0}) || !slices.Equal(r.Confusion[2], []int{1, 0, 1}) {
		t.Errorf("confusion %v, n %d", r.Confusion, r.N)
	}

	// JSON field names.
	b, _ := json.Marshal(r)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"accuracy", "macro_f1", "weighted_f1", "log_loss", "ece", "n", "per_class", "confusion"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}

	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"accuracy 0.6667  macro F1 0.6556", "label  precision  recall      F1  support", "b         0.6667  1.0000  0.8000        2"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, buf.String())
		}
	}
}

// TestReportMacroSkipsAbsent: a class neither true nor predicted does not count in
// the macro average (scikit-learn's labels = union of truth and predictions).
func TestReportMacroSkipsAbsent(t *testing.T) {
	r := NewReport([]string{"a", "b", "unused"}, []int{0, 1}, []int{0, 1}, []float32{1, 0, 0, 0, 1, 0})
	if r.MacroF1 != 1 || r.WeightedF1 != 1 || r.Accuracy != 1 {
		t.Errorf("%+v", r)
	}
}

func TestMultiLabelReport(t *testing.T) {
	y := []float32{1, 0, 1, 1, 0, 0}
	p := []float32{0.9, 0.2, 0.6, 0.4, 0.1, 0.7}
	r := NewMultiLabelReport([]string{"x", "y"}, y, p, 0.5)
	// Rows: {x} predicted {x} right; {x,y} predicted {x} wrong; {} predicted {y} wrong.
	if r.Accuracy != 1.0/3 || r.N != 3 || r.Confusion != nil {
		t.Errorf("accuracy %v n %d confusion %v", r.Accuracy, r.N, r.Confusion)
	}
	// x: tp 2, predicted 2, support 2 → F1 1; y: tp 0, predicted 1, support 1 → F1 0.
	if r.PerClass[0].F1 != 1 || r.PerClass[1].F1 != 0 || r.MacroF1 != 0.5 || !scalar.EqualWithinAbs(r.WeightedF1, 2.0/3, metricTol) {
		t.Errorf("%+v", r)
	}
	ll := 0.0
	for i := range y {
		q := float64(p[i])
		if y[i] == 1 {
			ll -= math.Log(q)
		} else {
			ll -= math.Log(1 - q)
		}
	}
	if !scalar.EqualWithinAbs(r.LogLoss, ll/6, 1e-12) {
		t.Errorf("log-loss %v, want %v", r.LogLoss, ll/6)
	}
}

func TestEvaluateUnseen(t *testing.T) {
	d := synthetic(60, 4, 3, 2, false, 1)
	h, err := FitLogReg(d, LogRegSettings{})
	if err != nil {
		t.Fatal(err)
	}
	e := synthetic(10, 4, 5, 2, false, 2)
	e.Name = "test.safetensors"
	_, err = h.Evaluate(&e)
	if !errors.Is(err, ErrUnseenLabel) || !strings.Contains(err.Error(), `test.safetensors has 2 label(s) the head was not trained on: "Da", "Ea"`) {
		t.Errorf("err = %v", err)
	}
	// Classes are matched by name, not position.
	p := d
	p.Classes = []string{"Ca", "Aa", "Ba"}
	p.Labels = make([]int, d.N)
	for i, l := range d.Labels {
		p.Labels[i] = (l + 1) % 3
	}
	r1, err1 := h.Evaluate(&d)
	r2, err2 := h.Evaluate(&p)
	if err1 != nil || err2 != nil || r1.Accuracy != r2.Accuracy || r1.LogLoss != r2.LogLoss {
		t.Errorf("renamed classes: %v %v %v %v", r1.Accuracy, r2.Accuracy, err1, err2)
	}
	wide := synthetic(10, 5, 3, 2, false, 3)
	if _, err := h.Evaluate(&wide); !errors.Is(err, ErrDimension) {
		t.Errorf("dimension: %v", err)
	}
}

func TestPlotConfusion(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []int{3, 77} {
		truth := make([]int, 5*k)
		pred := make([]int, 5*k)
		probs := make([]float32, 5*k*k)
		classes := make([]string, k)
		for c := range k {
			classes[c] = strings.Repeat("label_", 3) + string(rune('a'+c%26))
		}
		for i := range truth {
			truth[i] = i % k
			pred[i] = truth[i]
			if i%4 == 0 {
				pred[i] = (truth[i] + 1) % k
			}
			probs[i*k+pred[i]] = 1
		}
		r := NewReport(classes, truth, pred, probs)
		path := filepath.Join(dir, "confusion.png")
		os.WriteFile(path, []byte("old"), 0o644)
		if err := PlotConfusion(path, r); err != nil {
			t.Fatalf("%d classes: %v", k, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%d classes: not a PNG: %v", k, err)
		}
		if w := img.Bounds().Dx(); w < 400 || (k == 77 && w < 1000) {
			t.Errorf("%d classes: %d pixels wide", k, w)
		}
		// Every class is named on the axes, whatever their number.
		for c, tick := range confusionTicks(r) {
			if tick.Value != float64(c) || tick.Label != classes[c] {
				t.Errorf("%d classes: tick %d is %v %q; want %d %q", k, c, tick.Value, tick.Label, c, classes[c])
			}
		}
		// The colour bar: the right-hand strip holds the whole scale, from white to the
		// darkest blue, in many shades (the matrix's cells alone have a handful).
		b := img.Bounds()
		shades := map[[3]uint32]bool{}
		darkest := false
		for x := b.Max.X - b.Dx()/12; x < b.Max.X; x++ {
			for y := b.Min.Y; y < b.Max.Y; y++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				shades[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
				darkest = darkest || (r>>8 <= 10 && g>>8 <= 50 && bl>>8 <= 110 && bl>>8 >= 100)
			}
		}
		if len(shades) < 100 || !darkest {
			t.Errorf("%d classes: the right-hand strip has %d colours, darkest blue %v; want a colour bar", k, len(shades), darkest)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("files left: %v", ents)
	}
	ml := NewMultiLabelReport([]string{"x"}, []float32{1}, []float32{1}, 0.5)
	if err := PlotConfusion(filepath.Join(dir, "ml.png"), ml); !errors.Is(err, ErrBadSetting) {
		t.Errorf("multi-label plot: %v", err)
	}
}
