package headstart

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/onnx"
)

// TestExtractLabelSets extracts the shipped Banking77 tags sample as multi-label data:
// the store holds each row's tag set, an interrupted run resumes into the same bytes as
// an uninterrupted one, and the same file without a separator stays single-label.
func TestExtractLabelSets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	model := defaultModel(t)
	data := filepath.Join("data", "banking77-tags-sample", "train.csv")
	dir := t.TempDir()
	base := ExtractOptions{Model: model.Dir, Data: data, Reader: features.ReaderOptions{Limit: 200, LabelSep: "|"}, ChunkRows: 64, BatchSize: 16,
		Session: onnx.SessionOptions{IntraOpThreads: 2}}

	full := base
	full.Out = filepath.Join(dir, "full.safetensors")
	if _, err := Extract(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	s, err := features.OpenStore(full.Out)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifest
	if !m.MultiLabel || m.LabelSep != "|" || m.FormatVersion != features.MultiLabelFormatVersion || s.N != 200 {
		t.Fatalf("manifest %+v, %d rows; want a multi-label store of 200 rows", m, s.N)
	}
	// The first 200 rows are the first 10 intents: card_arrival, card_linking, ...
	// Row 0 is card_arrival: {arrival, card}; row 20 card_linking: {card, linking}.
	set := func(i int) []string {
		var out []string
		for c, v := range s.LabelSet(i) {
			if v == 1 {
				out = append(out, m.LabelNames[c])
			}
		}
		return out
	}
	if !slices.IsSorted(m.LabelNames) || !slices.Equal(set(0), []string{"arrival", "card"}) || !slices.Equal(set(20), []string{"card", "linking"}) {
		t.Errorf("label names %q; row 0 %q, row 20 %q", m.LabelNames, set(0), set(20))
	}

	part := base
	part.Out = filepath.Join(dir, "part.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	part.Progress = &cancelAfter{n: 64, cancel: cancel}
	if _, err := Extract(ctx, part); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted extract: %v; want context.Canceled", err)
	}
	part.Progress, part.Resume = nil, true
	sum, err := Extract(context.Background(), part)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(full.Out)
	b, _ := os.ReadFile(part.Out)
	if sum.Resumed < 64 || !bytes.Equal(a, b) {
		t.Fatalf("resumed %d rows; resumed multi-label store equal to the uninterrupted one: %v", sum.Resumed, bytes.Equal(a, b))
	}

	// Without --label-sep the field is one label, as before: "card|arrival".
	single := base
	single.Reader.LabelSep = ""
	single.Reader.Limit = 40
	single.Out = filepath.Join(dir, "single.safetensors")
	if _, err := Extract(context.Background(), single); err != nil {
		t.Fatal(err)
	}
	ss, err := features.OpenStore(single.Out)
	if err != nil {
		t.Fatal(err)
	}
	if ss.Manifest.MultiLabel || ss.LabelSets != nil || ss.Manifest.FormatVersion != features.FormatVersion ||
		!slices.Equal(ss.Manifest.LabelNames, []string{"card|arrival", "card|linking"}) || ss.Labels[0] != 0 || ss.Labels[39] != 1 {
		t.Errorf("single-label store: manifest %+v, labels %v", ss.Manifest, ss.Labels)
	}

	// Bad combinations: clear errors, nothing written.
	for _, c := range []struct {
		name string
		edit func(o *ExtractOptions)
		msg  string
	}{
		{"activation cache", func(o *ExtractOptions) { o.CutTop = 1 }, "activation caches"},
		{"no labels", func(o *ExtractOptions) { o.Data = writeTemp(t, "text,label\nhi,\nho, \n") }, "no row of"},
		{"stray separator", func(o *ExtractOptions) { o.Data = writeTemp(t, "text,label\nhi,a\nho,a||b\n") }, `line 3 (row 1): label "a||b": empty label`},
	} {
		o := base
		o.Out = filepath.Join(dir, "bad.safetensors")
		c.edit(&o)
		if _, err := Extract(context.Background(), o); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v; want an error containing %q", c.name, err, c.msg)
		}
		if _, err := os.Stat(o.Out); err == nil {
			t.Errorf("%s: output written", c.name)
		}
	}
}

// writeTemp writes content to a CSV file in a temporary directory.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.csv")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
