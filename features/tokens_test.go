package features

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// f16Tol bounds a value read back from a float16 cache: float16 keeps 11 significant
// bits, a relative error of at most 2^-11 ≈ 4.9e-4, about 1e-3 at the values (up to 2.75)
// the test writes.
const f16Tol = 1e-3

func tokenManifest() TokenManifest {
	return TokenManifest{
		Manifest: Manifest{Tool: "test", Backbone: Backbone{Name: "m", SHA256: "ab"}, Spec: Spec{Pooling: "none", Layers: []int{5},
			MaxLen: 16}, LabelNames: []string{"neg", "pos"}},
		CutTop: 1, CutBlock: 5, NumBlocks: 6, Hidden: 3,
	}
}

// writeTokens writes rows [0, stop) of a cache of the given lengths and returns the
// writer (not closed).
func writeTokens(t *testing.T, path string, lens []int, dtype Dtype, resume bool, stop int) *TokenWriter {
	t.Helper()
	w, err := NewTokenWriter(path, tokenManifest(), lens, dtype, "key", resume)
	if err != nil {
		t.Fatal(err)
	}
	for i := w.Rows(); i < stop; i++ {
		h := make([]float32, lens[i]*3)
		for j := range h {
			h[j] = float32(i) + float32(j)/8
		}
		if err := w.WriteRows(h, []int64{int64(i % 2)}, []int64{int64(10 + i)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func TestTokenCacheRoundTripAndResume(t *testing.T) {
	lens := []int{2, 5, 1, 3}
	for _, dtype := range []Dtype{Float32, Float16} {
		t.Run(dtype.String(), func(t *testing.T) {
			dir := t.TempDir()
			whole := filepath.Join(dir, "whole.cache")
			w := writeTokens(t, whole, lens, dtype, false, len(lens))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			c, err := OpenTokens(whole)
			if err != nil {
				t.Fatal(err)
			}
			if c.N != 4 || !slices.Equal(c.Offsets, []int64{0, 2, 7, 8, 11}) || !slices.Equal(c.Labels, []int64{0, 1, 0, 1}) ||
				!slices.Equal(c.RowIDs, []int64{10, 11, 12, 13}) || c.Manifest.Tokens != 11 || c.Manifest.CutBlock != 5 {
				t.Fatalf("read back: %+v", c)
			}
			if r := c.Row(1); len(r) != 15 || r[0] != 1 || !testutil.Within(float64(r[14]), 1+14.0/8, f16Tol) || c.Len(1) != 5 {
				t.Fatalf("row 1: %v", r)
			}
			// Interrupted after two rows, resumed: the same bytes.
			part := filepath.Join(dir, "part.cache")
			w = writeTokens(t, part, lens, dtype, false, 2)
			if err := w.Release(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a partial cache is at the destination")
			}
			w = writeTokens(t, part, lens, dtype, true, len(lens))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(whole)
			b, _ := os.ReadFile(part)
			if !bytes.Equal(a, b) {
				t.Fatal("resumed cache differs from the uninterrupted one")
			}
			if _, err := os.Stat(part + ".partial.json"); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("checkpoint left behind")
			}
		})
	}
}

func TestTokenCacheErrors(t *testing.T) {
	dir := t.TempDir()
	lens := []int{2, 2}
	p := filepath.Join(dir, "c.cache")
	w := writeTokens(t, p, lens, Float32, false, 1)
	w.Release()
	// Resume with another key.
	if _, err := NewTokenWriter(p, tokenManifest(), lens, Float32, "other", true); !errors.Is(err, ErrCheckpointMismatch) {
		t.Fatalf("other key: %v", err)
	}
	// Closing short.
	w = writeTokens(t, p, lens, Float32, true, 1)
	if err := w.Close(); !errors.Is(err, ErrRowCount) {
		t.Fatalf("short close: %v", err)
	}
	w = writeTokens(t, p, lens, Float32, true, 2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A feature store is not a cache and the other way round, both said clearly.
	if _, err := OpenStore(p); !errors.Is(err, ErrCorruptStore) || !bytes.Contains([]byte(err.Error()), []byte("activation cache")) {
		t.Fatalf("OpenStore on a cache: %v", err)
	}
	if ok, err := IsTokenCache(p); !ok || err != nil {
		t.Fatalf("IsTokenCache: %v %v", ok, err)
	}
	// Truncated.
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-4], 0o644)
	if _, err := OpenTokens(p); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("truncated: %v", err)
	}
	// Empty rows are refused when writing.
	if _, err := NewTokenWriter(filepath.Join(dir, "e.cache"), tokenManifest(), []int{1, 0}, Float32, "k", false); err == nil {
		t.Fatal("a row of 0 tokens was accepted")
	}
}

// TestReadTokenManifest: the manifest read from the header alone is OpenTokens'; it is
// read from a cache whose data no longer matches its checksum (which OpenTokens
// refuses), and a pooled feature store is refused as OpenTokens refuses it.
func TestReadTokenManifest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.cache")
	if err := writeTokens(t, p, []int{2, 3}, Float32, false, 2).Close(); err != nil {
		t.Fatal(err)
	}
	c, err := OpenTokens(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadTokenManifest(p)
	if err != nil || !reflect.DeepEqual(m, c.Manifest) {
		t.Fatalf("ReadTokenManifest = %+v, %v; want OpenTokens' %+v", m, err, c.Manifest)
	}

	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 0x40 // the last hidden value
	os.WriteFile(p, b, 0o644)
	if _, err := OpenTokens(p); !errors.Is(err, ErrCorruptStore) {
		t.Fatalf("OpenTokens of a changed cache: %v; want ErrCorruptStore", err)
	}
	if m, err := ReadTokenManifest(p); err != nil || !reflect.DeepEqual(m, c.Manifest) {
		t.Fatalf("ReadTokenManifest of a changed cache = %+v, %v; want the manifest", m, err)
	}

	store := filepath.Join(dir, "s.safetensors")
	feats, labels, ids := testRows(4, 3, 1)
	writeStore(t, store, testManifest(), 3, Float32, feats, labels, ids, 4)
	if _, err := ReadTokenManifest(store); !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), "pooled features") {
		t.Fatalf("ReadTokenManifest of a feature store: %v; want ErrCorruptStore naming pooled features", err)
	}
}
