package headstart

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/onnx"
)

// tagsHead fits a one-vs-rest logistic regression on the first 200 rows (10 intents,
// 20 rows each) of the shipped Banking77 tags sample, extracted as multi-label data.
func tagsHead(t testing.TB) *head.Head {
	t.Helper()
	store := filepath.Join(t.TempDir(), "tags.safetensors")
	_, err := Extract(context.Background(), ExtractOptions{Data: filepath.Join("data", "banking77-tags-sample", "train.csv"), Out: store,
		Reader: features.ReaderOptions{Limit: 200, LabelSep: "|"}, Session: onnx.SessionOptions{IntraOpThreads: 2}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := features.OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := head.FromStore(st, store)
	if err != nil {
		t.Fatal(err)
	}
	h, err := head.Fit(ds, nil, head.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !h.MultiLabel {
		t.Fatal("the head of the tags sample is not multi-label")
	}
	return h
}

// tagsTexts returns one test text of each of the first 10 intents of the tags sample.
func tagsTexts(t testing.TB) []string {
	t.Helper()
	recs := testutil.ReadCSV(t, filepath.Join("data", "banking77-tags-sample", "test.csv"))
	var texts []string
	for i := 1; i <= 100 && i < len(recs); i += 10 {
		texts = append(texts, recs[i][0])
	}
	return texts
}

// thresholded is the label set the probabilities give at threshold: the classes with
// p >= threshold, in class order.
func thresholded(classes []string, probs []float32, threshold float64) []string {
	set := []string{}
	for k, p := range probs {
		if float64(p) >= threshold {
			set = append(set, classes[k])
		}
	}
	return set
}

// TestClassifyLabelSets classifies texts with a single-label and a multi-label head:
// the multi-label head's Labels is exactly its thresholded probabilities (never nil),
// at the default and at another threshold, from Model and Classifier alike; the
// single-label head's Labels is nil; thresholds outside (0, 1) are refused.
func TestClassifyLabelSets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	paths := defaultModel(t)
	for _, th := range []float64{-0.1, 1, 1.5, math.NaN()} {
		if _, err := Open(context.Background(), OpenOptions{Threshold: th}); !errors.Is(err, ErrBadOption) {
			t.Errorf("Open with threshold %v: %v; want ErrBadOption", th, err)
		}
	}
	single, tags := bankingHead(t), tagsHead(t)
	texts := tagsTexts(t)

	var probs05 [][]float32 // the tags head's probabilities at the default threshold
	for _, th := range []float64{0, 0.2} {
		m := openModel(t, OpenOptions{LoadedHeads: []*head.Head{single, tags}, Threshold: th})
		want := th
		if th == 0 {
			want = DefaultThreshold
		}
		if m.Threshold() != want {
			t.Errorf("Model.Threshold() = %v; want %v", m.Threshold(), want)
		}
		res, err := m.Classify(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		multi := 0
		for i, r := range res {
			s, ml := r.Predictions[0], r.Predictions[1]
			if s.Labels != nil {
				t.Errorf("text %d: single-label head's Labels %q; want nil", i, s.Labels)
			}
			if ml.Labels == nil || !slices.Equal(ml.Labels, thresholded(tags.Classes, ml.Probs, want)) {
				t.Errorf("text %d: Labels %q; want %q (p >= %v)", i, ml.Labels, thresholded(tags.Classes, ml.Probs, want), want)
			}
			if ml.Label != tags.Classes[argmax32(ml.Probs)] {
				t.Errorf("text %d: Label %q is not the most probable class", i, ml.Label)
			}
			if len(ml.Labels) >= 2 {
				multi++
			}
			if th == 0 {
				probs05 = append(probs05, ml.Probs)
			} else if d := maxDiff(ml.Probs, probs05[i]); !(d <= serviceTol) {
				t.Errorf("text %d: the threshold changed the probabilities by %g", i, d)
			}
		}
		// The check means something only if some texts get several labels.
		if multi == 0 {
			t.Errorf("threshold %v: no text has two labels or more", want)
		}
	}

	// Classifier: the default threshold, then SetThreshold.
	c, err := NewClassifier(paths, []*head.Head{tags}, EncoderOptions{Session: onnx.SessionOptions{IntraOpThreads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetThreshold(1); !errors.Is(err, ErrBadOption) {
		t.Errorf("SetThreshold(1): %v; want ErrBadOption", err)
	}
	for _, th := range []float64{DefaultThreshold, 0.2, 0.9} {
		if th != DefaultThreshold {
			if err := c.SetThreshold(th); err != nil {
				t.Fatal(err)
			}
		}
		out, err := c.Classify(texts)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range out[0] {
			if p.Labels == nil || !slices.Equal(p.Labels, thresholded(tags.Classes, p.Probs, th)) {
				t.Errorf("Classifier at %v, text %d: Labels %q; want %q", th, i, p.Labels, thresholded(tags.Classes, p.Probs, th))
			}
		}
	}
}

func argmax32(p []float32) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}
