package serve

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// resultTol bounds the difference between a text's outputs answered alone and answered
// from a forward shared with other requests (see the root package's serviceTol; the
// measured difference is 0). Values cross JSON as shortest float32 strings, exactly.
const resultTol = 1e-6

// sample returns the texts and labels of the shipped Banking77 sample's split.
func sample(t testing.TB, split string) (texts, labels []string) {
	t.Helper()
	recs := testutil.ReadCSV(t, testutil.Data(t, "banking77-sample/"+split+".csv"))
	for _, r := range recs[1:] {
		texts, labels = append(texts, r[0]), append(labels, r[1])
	}
	return texts, labels
}

var shared struct {
	once sync.Once
	h    *head.Head
	err  error
}

// intentHead fits (once per test binary) a logistic regression on 3 training examples
// per intent, embedded by the default backbone as given (Exact: mean of the last layer, not normalised, max_len 128).
func intentHead(t testing.TB) *head.Head {
	t.Helper()
	testutil.Model(t, models.Default)
	shared.once.Do(func() {
		texts, labels := sample(t, "train")
		seen := map[string]int{}
		var xs, ys []string
		for i := range texts {
			if seen[labels[i]]++; seen[labels[i]] <= 3 {
				xs, ys = append(xs, texts[i]), append(ys, labels[i])
			}
		}
		m, err := headstart.Open(context.Background(), headstart.OpenOptions{Threads: 2, Exact: true})
		if err != nil {
			shared.err = err
			return
		}
		defer m.Close()
		emb, err := m.Embed(context.Background(), xs)
		if err != nil {
			shared.err = err
			return
		}
		bb := m.Backbone()
		ds := head.Dataset{N: len(xs), D: m.Dim(), Fingerprint: head.Fingerprint{
			Backbone: bb.Name, BackboneSHA256: bb.SHA256, TokenizerSHA256: bb.TokenizerSHA256,
			Spec: features.Spec{Pooling: "mean", Layers: []int{6}, MaxLen: m.MaxLen()}, Dim: m.Dim(),
		}}
		index := map[string]int{}
		for i, row := range emb {
			ds.X = append(ds.X, row...)
			l, ok := index[ys[i]]
			if !ok {
				l = len(ds.Classes)
				index[ys[i]] = l
				ds.Classes = append(ds.Classes, ys[i])
			}
			ds.Labels = append(ds.Labels, l)
		}
		shared.h, shared.err = head.Fit(ds, nil, head.Options{})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.h
}

// openModel opens the default backbone with the intent head twice (as "intent" and
// "again"), closed when the test ends.
func openModel(t testing.TB, opts headstart.OpenOptions) *headstart.Model {
	t.Helper()
	h := intentHead(t)
	opts.LoadedHeads = []*head.Head{h, h}
	opts.HeadNames = []string{"intent", "again"}
	if opts.Threads == 0 {
		opts.Threads = 2
	}
	m, err := headstart.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
