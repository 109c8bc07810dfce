package features

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// flipByte flips the low bit of the byte at off in the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tensorOffset returns the file offset of the middle byte of tensor name in the
// safetensors file at path.
func tensorOffset(t *testing.T, path, name string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	sf, err := parseHeader(f, st.Size(), path)
	if err != nil {
		t.Fatal(err)
	}
	x, ok := sf.Tensors[name]
	if !ok || x.End == x.Begin {
		t.Fatalf("no tensor %q with data in %s", name, path)
	}
	return sf.Base + (x.Begin+x.End)/2
}

// TestStoreChecksum: a flipped byte anywhere in a store's tensors or manifest is an
// ErrCorruptStore naming the file (issue 17, item 6: such flips went unnoticed and moved
// eval's accuracy).
func TestStoreChecksum(t *testing.T) {
	dir := t.TempDir()
	const n, d = 9, 4
	feats, labels, ids := testRows(n, d, 7)
	single := filepath.Join(dir, "single.safetensors")
	writeStore(t, single, testManifest(), d, Float32, feats, labels, ids, 4)
	multi := filepath.Join(dir, "multi.safetensors")
	m := testManifest()
	m.MultiLabel, m.LabelSep = true, "|"
	w, err := NewWriter(multi, m, n, d, Float16)
	if err != nil {
		t.Fatal(err)
	}
	sets := make([]uint8, n*len(m.LabelNames))
	for i := range sets {
		sets[i] = uint8(i % 2)
	}
	if err := w.WriteRowSets(feats, sets, ids); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, what string }{
		{single, "features"}, {single, "labels"}, {single, "row_ids"}, {single, "manifest"},
		{multi, "features"}, {multi, "labels"}, {multi, "row_ids"}, {multi, "label_sets"},
	} {
		t.Run(filepath.Base(c.path)+" "+c.what, func(t *testing.T) {
			s, err := OpenStore(c.path)
			if err != nil || len(s.SHA256) != 64 {
				t.Fatalf("intact store: %v, checksum %q", err, s.SHA256)
			}
			p := filepath.Join(t.TempDir(), "s.safetensors")
			b, _ := os.ReadFile(c.path)
			os.WriteFile(p, b, 0o644)
			if c.what == "manifest" {
				// A label name's letter: still valid JSON, a different store.
				at := bytes.Index(b, []byte("negative"))
				flipByte(t, p, int64(at)+2)
			} else {
				flipByte(t, p, tensorOffset(t, p, c.what))
			}
			_, err = OpenStore(p)
			if !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "checksum mismatch") {
				t.Fatalf("flipped byte in %s: %v; want a checksum mismatch naming the file", c.what, err)
			}
		})
	}
}

// TestStoreWithoutChecksum: a store written before stores had a checksum
// (testdata/golden_nosum.safetensors) is still read, with SHA256 "", and holds the same
// data as the store written now.
func TestStoreWithoutChecksum(t *testing.T) {
	old, err := OpenStore(filepath.Join("testdata", "golden_nosum.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if old.SHA256 != "" {
		t.Fatalf("checksum %q; want none", old.SHA256)
	}
	p := filepath.Join(t.TempDir(), "g.safetensors")
	os.WriteFile(p, goldenStore(t), 0o644)
	cur, err := OpenStore(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(old.Features, cur.Features) || !slices.Equal(old.Labels, cur.Labels) || !slices.Equal(old.RowIDs, cur.RowIDs) {
		t.Fatal("the old store's data differs from the current one's")
	}
}

// TestTokenCacheChecksum: a flipped byte in any tensor of an activation cache is an
// ErrCorruptStore naming the file.
func TestTokenCacheChecksum(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.cache")
	w := writeTokens(t, path, []int{2, 5, 1, 3}, Float32, false, 4)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := OpenTokens(path); err != nil || len(c.SHA256) != 64 {
		t.Fatalf("intact cache: %v", err)
	}
	for _, name := range []string{"hidden", "labels", "row_ids", "offsets"} {
		p := filepath.Join(t.TempDir(), "c.cache")
		b, _ := os.ReadFile(path)
		os.WriteFile(p, b, 0o644)
		flipByte(t, p, tensorOffset(t, p, name))
		_, err := OpenTokens(p)
		if !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("flipped byte in %s: %v; want a checksum mismatch naming the file", name, err)
		}
	}
}

// TestCheckpointChecksum: a flipped byte in an extraction checkpoint's rows is caught
// when the run is resumed and when Finish reads the rows back; the checkpoint is kept.
func TestCheckpointChecksum(t *testing.T) {
	const d = 3
	feats, labels, ids := testRows(6, d, 1)
	m := testManifest()
	for _, when := range []string{"resume", "finish"} {
		t.Run(when, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "o.safetensors")
			ck, err := OpenCheckpoint(out, "k", d, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := ck.Append(feats, labels, ids); err != nil {
				t.Fatal(err)
			}
			if when == "resume" {
				ck.Close()
				flipByte(t, out+".partial", 5)
				_, err = OpenCheckpoint(out, "k", d, true)
			} else {
				flipByte(t, out+".partial", 5)
				w, werr := NewWriter(out, m, 6, d, Float32)
				if werr != nil {
					t.Fatal(werr)
				}
				err = ck.Finish(w)
				ck.Close()
			}
			if !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), out+".partial") {
				t.Fatalf("%v; want ErrCorruptCheckpoint naming the checkpoint", err)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("a store was written from a corrupt checkpoint")
			}
			if _, err := os.Stat(out + ".partial.json"); err != nil {
				t.Fatal("the checkpoint was removed")
			}
		})
	}
}

// TestTokenCheckpointChecksum: a flipped byte in the committed rows of an activation
// cache's partial file is caught on resume.
func TestTokenCheckpointChecksum(t *testing.T) {
	lens := []int{2, 5, 1, 3}
	for _, region := range []string{"labels", "row_ids", "hidden"} {
		t.Run(region, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.cache")
			w := writeTokens(t, path, lens, Float32, false, 2)
			if err := w.Release(); err != nil {
				t.Fatal(err)
			}
			lay := w.lay
			off := map[string]int64{"labels": lay.labels + 3, "row_ids": lay.rowIDs + 9, "hidden": lay.hidden + 17}[region]
			flipByte(t, path+".partial", off)
			_, err := NewTokenWriter(path, tokenManifest(), lens, Float32, "key", true)
			if !errors.Is(err, ErrCorruptCheckpoint) || !strings.Contains(err.Error(), path+".partial") {
				t.Fatalf("%v; want ErrCorruptCheckpoint naming the partial file", err)
			}
		})
	}
}
