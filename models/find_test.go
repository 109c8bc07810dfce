package models

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
)

// TestFind: a recorded backbone is found again in its directory when that still holds
// the same files, and otherwise the error names the backbone and why each place failed.
func TestFind(t *testing.T) {
	t.Setenv("HEADSTART_CACHE", t.TempDir()) // no registry model pulled
	dir := t.TempDir()
	model, tok := []byte("onnx bytes"), []byte(`{"tokenizer": true}`)
	for name, b := range map[string][]byte{ModelFile: model, TokenizerFile: tok} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := features.Backbone{Name: filepath.Base(dir), SHA256: sum256(model), TokenizerSHA256: sum256(tok), Dir: dir}
	p, err := Find(b)
	if err != nil || p.Model != filepath.Join(dir, ModelFile) {
		t.Fatalf("Find = %+v, %v", p, err)
	}
	if p, err := ResolveRecorded(dir, features.Backbone{}); err != nil || p.Dir != dir {
		t.Fatalf("ResolveRecorded with an argument = %+v, %v", p, err)
	}

	cases := []struct {
		name string
		b    features.Backbone
		msg  []string
	}{
		{"other model bytes", features.Backbone{Name: "x", SHA256: strings.Repeat("ab", 32), Dir: dir},
			[]string{"directory " + dir, "not abababababab"}},
		{"unknown name, no directory", features.Backbone{Name: "x", SHA256: b.SHA256}, []string{`"x" is not a registry model`}},
		{"other tokenizer", features.Backbone{Name: "x", SHA256: b.SHA256, TokenizerSHA256: strings.Repeat("cd", 32), Dir: dir},
			[]string{TokenizerFile, "not cdcdcdcdcdcd"}},
		{"directory gone", features.Backbone{Name: "x", SHA256: b.SHA256, Dir: filepath.Join(dir, "gone")},
			[]string{"gone"}},
		{"registry model not pulled", features.Backbone{Name: Default, SHA256: strings.Repeat("ab", 32)},
			[]string{"registry model " + Default, "pipeline models pull"}},
		{"nothing recorded", features.Backbone{}, []string{"nothing records where it is"}},
	}
	for _, c := range cases {
		_, err := Find(c.b)
		if !errors.Is(err, ErrBackboneMissing) {
			t.Errorf("%s: got %v, want ErrBackboneMissing", c.name, err)
			continue
		}
		for _, m := range c.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s: %q does not say %q", c.name, err, m)
			}
		}
	}
}
