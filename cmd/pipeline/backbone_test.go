package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// TestRecordedBackbone: predict and export without --model use the backbone the head
// records: a directory model is found again at its recorded path while it holds the
// same files, and when it is gone the error names it.
func TestRecordedBackbone(t *testing.T) {
	testutil.Model(t, models.Default)
	def, err := models.Resolve(models.Default)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mdir := filepath.Join(dir, "my-encoder")
	if err := os.Mkdir(mdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{def.Model, def.Tokenizer} {
		if err := os.Symlink(f, filepath.Join(mdir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	data := repoFile("data/banking77-sample/test.csv")
	feats, hd := filepath.Join(dir, "f.safetensors"), filepath.Join(dir, "h.safetensors")
	if code, _, stderr := run(t, "extract", "--model", mdir, "--data", data, "--limit", "60", "--out", feats, "--threads", "2"); code != 0 {
		t.Fatalf("extract: %d\n%s", code, stderr)
	}
	st, err := features.OpenStore(feats)
	if err != nil {
		t.Fatal(err)
	}
	if st.Manifest.Backbone.Dir != mdir || st.Manifest.Backbone.Name != "my-encoder" {
		t.Fatalf("store records backbone %+v; want dir %s", st.Manifest.Backbone, mdir)
	}
	if code, _, stderr := run(t, "fit-head", "--train", feats, "--out", hd); code != 0 {
		t.Fatalf("fit-head: %d\n%s", code, stderr)
	}
	out := filepath.Join(dir, "p.csv")
	if code, _, stderr := run(t, "predict", "--head", hd, "--data", data, "--limit", "5", "--out", out); code != 0 {
		t.Fatalf("predict without --model: %d\n%s", code, stderr)
	}
	if code, _, stderr := run(t, "export", "--head", hd, "--out", filepath.Join(dir, "c.onnx")); code != 0 {
		t.Fatalf("export without --model: %d\n%s", code, stderr)
	}
	// The directory moves away: the error says which backbone and where it looked.
	if err := os.Rename(mdir, mdir+"-moved"); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "predict", "--head", hd, "--data", data, "--limit", "5", "--out", out)
	for _, want := range []string{"recorded backbone not found", "my-encoder", "directory " + mdir, "--model"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("predict after the move: exit %d, stderr %q; want 1 and %q", code, stderr, want)
		}
	}
	// Given explicitly, the moved directory serves (same sha256).
	if code, _, stderr := run(t, "predict", "--head", hd, "--model", mdir+"-moved", "--data", data, "--limit", "5", "--out", out); code != 0 {
		t.Fatalf("predict --model moved dir: %d\n%s", code, stderr)
	}
}

// TestCardFlags: the model card's conventions reach the store without flags, a flag
// overrides one of them, and a prefix on a model whose card has none is a usage error.
func TestCardFlags(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	data := repoFile("data/banking77-sample/test.csv")
	cases := []struct {
		args []string
		spec string
	}{
		{nil, "pooling=mean layers=6 normalize=true max_len=256"},
		{[]string{"--normalize=false", "--max-len", "64", "--pooling", "cls"}, "pooling=cls layers=6 normalize=false max_len=64"},
		{[]string{"--prefix", "none"}, "pooling=mean layers=6 normalize=true max_len=256"},
	}
	for i, c := range cases {
		out := filepath.Join(dir, "f"+string(rune('0'+i))+".safetensors")
		args := append([]string{"extract", "--data", data, "--limit", "10", "--out", out, "--threads", "2"}, c.args...)
		if code, _, stderr := run(t, args...); code != 0 {
			t.Fatalf("%v: %d\n%s", c.args, code, stderr)
		}
		st, err := features.OpenStore(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Manifest.Spec.String(); got != c.spec {
			t.Errorf("%v: store spec %s, want %s", c.args, got, c.spec)
		}
	}
	out := filepath.Join(dir, "bad.safetensors")
	code, _, stderr := run(t, "extract", "--data", data, "--limit", "10", "--out", out, "--prefix", "query")
	if code != 2 || !strings.Contains(stderr, "takes texts as they are") {
		t.Errorf("--prefix on all-MiniLM: exit %d, %q; want 2 and a clear message", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("--prefix on all-MiniLM wrote a store")
	}
}
