package features

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzReadCSV: any input either reads cleanly or fails with an error; rows are numbered
// in order, texts and labels are valid UTF-8, and nothing panics.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("text,label\nhello,1\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, require bool) {
		r, err := NewReader(bytes.NewReader(data), "fuzz.csv", ReaderOptions{RequireLabel: require})
		if err != nil {
			if !errors.Is(err, ErrMissingColumn) && !errors.Is(err, ErrMalformedRow) && !errors.Is(err, ErrDuplicateColumn) {
				t.Fatalf("Open error wraps no sentinel: %v", err)
			}
			return
		}
		var n int64
		for r.Next() {
			row := r.Row()
			if row.Index != n {
				t.Fatalf("row index %d; want %d", row.Index, n)
			}
			if !utf8.ValidString(row.Text) || !utf8.ValidString(row.Label) {
				t.Fatalf("row %d: invalid UTF-8 passed through", n)
			}
			if row.HasLabel != (row.Label != "") {
				t.Fatalf("row %d: HasLabel %v with label %q", n, row.HasLabel, row.Label)
			}
			n++
		}
		if err := r.Err(); err != nil && !errors.Is(err, ErrMalformedRow) && !errors.Is(err, ErrInvalidUTF8) {
			t.Fatalf("read error wraps no sentinel: %v", err)
		}
	})
}

// FuzzOpenStore: any bytes either decode to a consistent store or fail with
// ErrCorruptStore; nothing panics or allocates beyond the input's size.
func FuzzOpenStore(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeStore(bytes.NewReader(data), int64(len(data)), "fuzz.safetensors")
		if err != nil {
			if !errors.Is(err, ErrCorruptStore) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(s.Features) != s.N*s.D || len(s.Labels) != s.N || len(s.RowIDs) != s.N {
			t.Fatalf("inconsistent store: N=%d D=%d, %d features", s.N, s.D, len(s.Features))
		}
	})
}

// TestFuzzSeeds keeps the seed corpora in testdata/fuzz current: -update rewrites them
// from the inputs below (valid stores of each dtype, truncations, reader edge cases).
func TestFuzzSeeds(t *testing.T) {
	csvSeeds := []string{
		"text,label\nhello,1\n",
		"\ufefftext,label\r\n\"a, \"\"b\"\"\nc\",x\r\n",
		"text,label\nit 's a \"good\" film,1\n",
		"text,label\na,1,2\n",
		"text,label\n\xff,1\n",
		"label,text\n,\n\n\"\",\"\"\n",
		"text,text\na,b\n",
		"",
	}
	valid := goldenStore(t)
	dir16 := t.TempDir()
	feats, labels, ids := testRows(2, 3, 9)
	writeStore(t, filepath.Join(dir16, "h.safetensors"), testManifest(), 3, Float16, feats, labels, ids, 2)
	valid16, _ := os.ReadFile(filepath.Join(dir16, "h.safetensors"))
	storeSeeds := [][]byte{valid, valid16, valid[:len(valid)-1], valid[:8], valid[:40], {}}

	check := func(fuzzName string, seeds [][]any) {
		dir := filepath.Join("testdata", "fuzz", fuzzName)
		for i, args := range seeds {
			var b bytes.Buffer
			b.WriteString("go test fuzz v1\n")
			for _, a := range args {
				switch v := a.(type) {
				case []byte:
					fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
				case bool:
					fmt.Fprintf(&b, "bool(%v)\n", v)
				}
			}
			path := filepath.Join(dir, fmt.Sprintf("seed%02d", i))
			if *update {
				os.MkdirAll(dir, 0o755)
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, b.Bytes()) {
				t.Errorf("%s is missing or stale (go test -run TestFuzzSeeds -update rewrites it)", path)
			}
		}
	}
	var cs [][]any
	for i, s := range csvSeeds {
		cs = append(cs, []any{[]byte(s), i%2 == 1})
	}
	check("FuzzReadCSV", cs)
	var ss [][]any
	for _, s := range storeSeeds {
		ss = append(ss, []any{s})
	}
	check("FuzzOpenStore", ss)
}
