package headstart

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/onnx"
)

// TestExtractCacheOut: one pass writing pooled features and the activation cache
// (CacheOut) gives the bytes of the two separate runs, for a pooled layer below the
// cut and for layers that include the cut state, and resumes when the two files were
// left at different points (the features two chunks ahead of the cache).
func TestExtractCacheOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	model := defaultModel(t)
	data := testutil.Data(t, "sst2/dev.csv")
	base := ExtractOptions{Model: model.Dir, Data: data, Reader: features.ReaderOptions{Limit: 200}, ChunkRows: 64, BatchSize: 16,
		Session: onnx.SessionOptions{IntraOpThreads: 2}}
	same := func(t *testing.T, what, a, b string) {
		t.Helper()
		x, err := os.ReadFile(a)
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s: %s (%d bytes) differs from %s (%d bytes)", what, b, len(y), a, len(x))
		}
	}
	for _, tc := range []struct {
		name   string
		layers []int
	}{{"last layer", nil}, {"layers -4..-1 hold the cut state", []int{-4, -3, -2, -1}}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pooled, cache := base, base
			pooled.Layers, pooled.Out = tc.layers, filepath.Join(dir, "pooled.safetensors")
			cache.CutTop, cache.Out = 1, filepath.Join(dir, "tokens.cache")
			for _, o := range []ExtractOptions{pooled, cache} {
				if _, err := Extract(context.Background(), o); err != nil {
					t.Fatal(err)
				}
			}
			both := pooled
			both.Out, both.CacheOut, both.CutTop = filepath.Join(dir, "both.safetensors"), filepath.Join(dir, "both.cache"), 1
			sum, err := Extract(context.Background(), both)
			if err != nil {
				t.Fatal(err)
			}
			if sum.CacheOut != both.CacheOut || sum.Rows != 200 {
				t.Fatalf("summary %+v", sum)
			}
			same(t, "features", pooled.Out, both.Out)
			same(t, "cache", cache.Out, both.CacheOut)

			// Interrupted runs of each kind alone leave the features 128 rows in and
			// the cache 64: the combined run resumes both.
			res := both
			res.Out, res.CacheOut = filepath.Join(dir, "res.safetensors"), filepath.Join(dir, "res.cache")
			for _, part := range []struct {
				o ExtractOptions
				n int
			}{{pooled, 128}, {cache, 64}} {
				o := part.o
				o.Out = res.Out
				if o.CutTop > 0 {
					o.Out = res.CacheOut
				}
				ctx, cancel := context.WithCancel(context.Background())
				o.Progress = &cancelAfter{n: part.n, cancel: cancel}
				if _, err := Extract(ctx, o); !errors.Is(err, context.Canceled) {
					t.Fatalf("interrupted: %v", err)
				}
				cancel()
			}
			res.Resume = true
			sum, err = Extract(context.Background(), res)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Resumed != 64 {
				t.Errorf("resumed %d rows; want 64 (the cache's rows; the features had 128)", sum.Resumed)
			}
			same(t, "resumed features", pooled.Out, res.Out)
			same(t, "resumed cache", cache.Out, res.CacheOut)
			if m, _ := filepath.Glob(filepath.Join(dir, "res.*.*")); len(m) != 0 {
				t.Errorf("checkpoint files left after completion: %v", m)
			}
		})
	}

	// Bad options.
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func(*ExtractOptions)
		msg  string
	}{
		{"cache-out without cut-top", func(o *ExtractOptions) { o.CacheOut = filepath.Join(dir, "c") }, "needs cut-top"},
		{"cache-out = out", func(o *ExtractOptions) { o.CutTop, o.CacheOut = 1, o.Out }, "same file"},
		{"cut below the embeddings", func(o *ExtractOptions) { o.CutTop, o.CacheOut = 7, filepath.Join(dir, "c") }, "6 encoder blocks"},
	} {
		o := base
		o.Out = filepath.Join(dir, "f.safetensors")
		tc.edit(&o)
		if _, err := Extract(context.Background(), o); !errors.Is(err, ErrBadOption) || !bytes.Contains([]byte(err.Error()), []byte(tc.msg)) {
			t.Errorf("%s: err = %v; want ErrBadOption containing %q", tc.name, err, tc.msg)
		}
		if _, err := os.Stat(o.Out); err == nil {
			t.Errorf("%s: an output was written", tc.name)
		}
	}
}
