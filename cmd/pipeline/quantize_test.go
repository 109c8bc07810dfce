package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/headstart-ml/headstart/models"
)

// TestModelsQuantize: `models quantize NAME --out DIR` (flags after the model, as
// documented) writes a model directory that resolves, with a manifest that says int8
// and holds the written files' sha256; bad invocations are usage errors, and an
// occupied --out is refused with nothing written.
func TestModelsQuantize(t *testing.T) {
	src, err := models.Resolve(models.Default)
	if err != nil {
		if testing.Short() {
			t.Skip("-short: default model not in the cache")
		}
		t.Fatalf("default model missing (scripts/setup.sh): %v", err)
	}
	app := func(args ...string) error {
		a := newApp()
		a.Writer, a.ErrWriter = io.Discard, io.Discard
		return a.Run(append([]string{"pipeline", "models", "quantize"}, args...))
	}
	out := filepath.Join(t.TempDir(), "minilm-int8")
	if err := app(src.Dir, "--out", out); err != nil {
		t.Fatal(err)
	}
	p, err := models.Resolve(out)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "minilm-int8" || p.Manifest.Dtype != "int8" || p.Manifest.Pooling != src.Manifest.Pooling || p.Manifest.MaxLen != src.Manifest.MaxLen {
		t.Errorf("manifest %+v; want name minilm-int8, dtype int8, the source's pooling and max_len", p.Manifest)
	}
	for key, path := range map[string]string{"model": p.Model, "tokenizer": p.Tokenizer} {
		sum, err := models.FileSHA256(path)
		if err != nil {
			t.Fatal(err)
		}
		if f := p.Manifest.Files[key]; f.SHA256 != sum {
			t.Errorf("manifest %s sha256 %q; the file's is %q", key, f.SHA256, sum)
		}
	}

	for _, args := range [][]string{
		{src.Dir}, // no --out
		{"--out", filepath.Join(t.TempDir(), "x")},                         // no model
		{src.Dir, "--out", filepath.Join(t.TempDir(), "x"), "--bits", "4"}, // unknown flag
		{src.Dir, "other", "--out", filepath.Join(t.TempDir(), "x")},       // two models
	} {
		var ue usageError
		if err := app(args...); !errors.As(err, &ue) {
			t.Errorf("%q: error %v; want a usage error", args, err)
		}
	}
	if err := app(src.Dir, "--out", out); err == nil {
		t.Error("quantize into a non-empty directory: no error")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 3 {
		t.Errorf("%s holds %d entries after the refused run; want the first run's 3", out, len(entries))
	}
}
