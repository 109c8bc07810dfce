package serve

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// tagsHead fits a one-vs-rest logistic regression on the first 200 rows (10 intents)
// of the shipped Banking77 tags sample, embedded by m (mean of the last layer).
func tagsHead(t testing.TB, m *headstart.Model) (*head.Head, []string) {
	t.Helper()
	read := func(split string) [][]string {
		return testutil.ReadCSV(t, testutil.Data(t, "banking77-tags-sample/"+split+".csv"))[1:]
	}
	train := read("train")[:200]
	var texts []string
	var classes []string
	for _, r := range train {
		texts = append(texts, r[0])
		for _, l := range strings.Split(r[1], "|") {
			if !slices.Contains(classes, l) {
				classes = append(classes, l)
			}
		}
	}
	slices.Sort(classes)
	emb, err := m.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	bb := m.Backbone()
	k := len(classes)
	ds := head.Dataset{N: len(texts), D: m.Dim(), Classes: classes, Y: make([]float32, len(texts)*k), Fingerprint: head.Fingerprint{
		Backbone: bb.Name, BackboneSHA256: bb.SHA256, TokenizerSHA256: bb.TokenizerSHA256,
		Spec: features.Spec{Pooling: "mean", Layers: []int{6}, MaxLen: m.MaxLen()}, Dim: m.Dim(),
	}}
	for i, row := range emb {
		ds.X = append(ds.X, row...)
		for _, l := range strings.Split(train[i][1], "|") {
			ds.Y[i*k+slices.Index(classes, l)] = 1
		}
	}
	h, err := head.Fit(ds, nil, head.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// One test text per intent, and one far from them all.
	var test []string
	for i, r := range read("test")[:100] {
		if i%10 == 0 {
			test = append(test, r[0])
		}
	}
	return h, append(test, "what is the weather like on mars")
}

// classifyBytes is the /v1/classify answer for out, written independently of the
// server: single-label heads {"label", "probs"} as before multi-label heads existed,
// multi-label heads {"label", "labels", "probs"}.
func classifyBytes(names []string, heads []*head.Head, out headstart.Output) []byte {
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var sb strings.Builder
	sb.WriteString(`{"results":[`)
	for i, r := range out.Results {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('{')
		for h, p := range r.Predictions {
			if h > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(str(names[h]) + `:{"label":` + str(p.Label))
			if heads[h].MultiLabel {
				labels := make([]string, len(p.Labels))
				for j, l := range p.Labels {
					labels[j] = str(l)
				}
				sb.WriteString(`,"labels":[` + strings.Join(labels, ",") + `]`)
			}
			sb.WriteString(`,"probs":{`)
			for k, v := range p.Probs {
				if k > 0 {
					sb.WriteByte(',')
				}
				sb.WriteString(str(heads[h].Classes[k]) + ":" + strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
			sb.WriteString("}}")
		}
		sb.WriteByte('}')
	}
	sb.WriteString(`],"truncated":[`)
	for i, v := range out.Truncated {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatBool(v))
	}
	sb.WriteString("]}\n")
	return []byte(sb.String())
}

// TestClassifyMultiLabel serves a single-label and a multi-label head: the answer is
// byte for byte the expected JSON (the single-label head's object unchanged, the
// multi-label head's with "labels"), and each "labels" is exactly the classes whose
// answered probability reaches the threshold ([] when none does), at the default
// threshold and at others.
func TestClassifyMultiLabel(t *testing.T) {
	testutil.Model(t, models.Default)
	single := intentHead(t)
	base, err := headstart.Open(context.Background(), headstart.OpenOptions{Threads: 2, Exact: true})
	if err != nil {
		t.Fatal(err)
	}
	tags, texts := tagsHead(t, base)
	if err := base.Close(); err != nil {
		t.Fatal(err)
	}
	names := []string{"intent", "tags"}
	heads := []*head.Head{single, tags}
	empty, several := false, false
	for _, th := range []float64{0, 0.3, 0.95} {
		m, err := headstart.Open(context.Background(), headstart.OpenOptions{Threads: 2, LoadedHeads: heads, HeadNames: names, Threshold: th})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		srv := httptest.NewServer(New(m, Options{}))
		defer srv.Close()
		want, err := m.Run(context.Background(), texts, headstart.TaskClassify)
		if err != nil {
			t.Fatal(err)
		}
		code, _, body := post(t, srv.URL+RouteClassify, textsBody(texts...))
		if code != 200 {
			t.Fatalf("threshold %v: status %d: %s", th, code, body)
		}
		if wb := classifyBytes(names, heads, want); string(body) != string(wb) {
			t.Fatalf("threshold %v: answer\n%s\nwant\n%s", th, body, wb)
		}

		var got struct {
			Results []map[string]struct {
				Label  string             `json:"label"`
				Labels *[]string          `json:"labels"`
				Probs  map[string]float64 `json:"probs"`
			} `json:"results"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		threshold := m.Threshold()
		for i, r := range got.Results {
			if r["intent"].Labels != nil {
				t.Errorf("threshold %v, text %d: the single-label head answers labels %q", th, i, *r["intent"].Labels)
			}
			tr := r["tags"]
			if tr.Labels == nil { // absent or null; an empty set must be []
				t.Fatalf("threshold %v, text %d: the multi-label head answers no labels: %s", th, i, body)
			}
			var set []string
			for _, c := range tags.Classes {
				if tr.Probs[c] >= threshold {
					set = append(set, c)
				}
			}
			if !slices.Equal(*tr.Labels, set) {
				t.Errorf("threshold %v, text %d: labels %q; want %q (p >= %v)", threshold, i, *tr.Labels, set, threshold)
			}
			empty = empty || len(set) == 0
			several = several || len(set) >= 2
		}
	}
	if !empty || !several {
		t.Errorf("no answer had an empty label set (%v) or one of several labels (%v): the texts or thresholds test too little", empty, several)
	}
}
