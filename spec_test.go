package headstart

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// cardDir makes a model directory holding the default model's files (linked) and a
// manifest.json with the given card fields over the registry's.
func cardDir(t *testing.T, edit func(*models.Manifest)) string {
	t.Helper()
	p := defaultModel(t)
	dir := t.TempDir()
	for _, f := range []string{p.Model, p.Tokenizer} {
		if err := os.Symlink(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	m := p.Manifest
	m.Name = "minilm-card-test"
	edit(&m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, models.ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestExtractCardPrefix: a card's default prefix is put before every text, exactly as
// if the data held the prefixed texts, and the store records it; Exact turns it off.
func TestExtractCardPrefix(t *testing.T) {
	dir := t.TempDir()
	texts := []string{"How do I locate my card?", "Why was I charged a fee?", "Café naïve résumé"}
	plain, prefixed := "text,label\n", "text,label\n"
	for i, s := range texts {
		plain += `"` + s + `",l` + string(rune('a'+i)) + "\n"
		prefixed += `"query: ` + s + `",l` + string(rune('a'+i)) + "\n"
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plainCSV, prefixedCSV := write("plain.csv", plain), write("prefixed.csv", prefixed)
	model := cardDir(t, func(m *models.Manifest) {
		m.Prefixes, m.Prefix = map[string]string{"query": "query: ", "passage": "passage: "}, "query"
	})
	run := func(data, out string, exact bool, spec features.Spec) *features.Store {
		t.Helper()
		_, err := Extract(context.Background(), ExtractOptions{Model: model, Data: data, Out: filepath.Join(dir, out),
			Spec: spec, Exact: exact, Session: onnx.SessionOptions{IntraOpThreads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		st, err := features.OpenStore(filepath.Join(dir, out))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	card := run(plainCSV, "card.safetensors", false, features.Spec{})
	if want := `pooling=mean layers=6 normalize=true max_len=256 prefix="query: "`; card.Manifest.Spec.String() != want {
		t.Errorf("store spec %s, want %s", card.Manifest.Spec, want)
	}
	byHand := run(prefixedCSV, "hand.safetensors", true, features.Spec{Normalize: true, MaxLen: 256})
	if byHand.Manifest.Prefix != "" {
		t.Errorf("exact run recorded prefix %q", byHand.Manifest.Prefix)
	}
	for i := range card.Features {
		if card.Features[i] != byHand.Features[i] {
			t.Fatalf("feature %d: %g with the card's prefix, %g with the prefix in the data", i, card.Features[i], byHand.Features[i])
		}
	}
	// Without the prefix the features differ (the check above can fail).
	none := run(plainCSV, "none.safetensors", true, features.Spec{Normalize: true, MaxLen: 256})
	same := true
	for i := range none.Features {
		same = same && none.Features[i] == card.Features[i]
	}
	if same {
		t.Fatal("features without the prefix equal those with it")
	}
}

// TestModelCardErrors: a prefix on a model whose card has none, and a manifest that
// disagrees with the graph, are refused before any work, writing nothing.
func TestModelCardErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(data, []byte("text,label\nhello,a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		model string
		spec  features.Spec
		kind  error
		msg   string
	}{
		{"prefix on a model with none", cardDir(t, func(*models.Manifest) {}), features.Spec{Prefix: "query: "}, ErrBadOption, "takes texts as they are"},
		{"layer count", cardDir(t, func(m *models.Manifest) { m.Layers = 12 }), features.Spec{}, ErrManifestMismatch, "says 12 layers; the graph"},
		{"hidden size", cardDir(t, func(m *models.Manifest) { m.HiddenSize = 512 }), features.Spec{}, ErrManifestMismatch, "says hidden_size 512; the graph"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out.safetensors")
			_, err := Extract(context.Background(), ExtractOptions{Model: c.model, Data: data, Out: out, Spec: c.spec})
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v saying %q", err, c.kind, c.msg)
			}
			if matches, _ := filepath.Glob(out + "*"); len(matches) > 0 {
				t.Fatalf("wrote %v", matches)
			}
		})
	}
}
