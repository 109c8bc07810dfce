package features

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// mlab builds an expected multi-label row.
func mlab(i int64, text, field string, labels ...string) Row {
	if labels == nil {
		labels = []string{}
	}
	return Row{Index: i, Text: text, Label: field, HasLabel: len(labels) > 0, Labels: labels}
}

func TestReaderLabelSets(t *testing.T) {
	pipe := ReaderOptions{LabelSep: "|"}
	for _, tc := range []struct {
		name, file, data string
		opts             ReaderOptions
		want             []Row
		msg              string // an ErrMalformedRow error must contain it
	}{
		{
			name: "csv", file: "d.csv", opts: pipe,
			data: "text,label\nwhere is my card,card|arrival\nhi,greeting\n",
			want: []Row{mlab(0, "where is my card", "card|arrival", "card", "arrival"), mlab(1, "hi", "greeting", "greeting")},
		},
		{
			name: "trimmed and deduplicated", file: "d.csv", opts: pipe,
			data: "text,label\na, x | y |x \n",
			want: []Row{mlab(0, "a", " x | y |x ", "x", "y")},
		},
		{
			name: "empty and blank fields are no labels", file: "d.csv", opts: pipe,
			data: "text,label\na,\nb,\"  \"\n",
			want: []Row{mlab(0, "a", ""), mlab(1, "b", "  ")},
		},
		{
			name: "tsv, multi-character separator", file: "d.tsv", opts: ReaderOptions{LabelSep: ", "},
			data: "text\tlabel\na\tx, y\nb\tx,y\n",
			want: []Row{mlab(0, "a", "x, y", "x", "y"), mlab(1, "b", "x,y", "x,y")},
		},
		{
			name: "jsonl: strings, numbers, null, missing", file: "d.jsonl", opts: pipe,
			data: `{"text":"a","label":"x|y"}` + "\n" + `{"text":"b","label":3}` + "\n" + `{"text":"c","label":null}` + "\n" + `{"text":"d"}` + "\n",
			want: []Row{mlab(0, "a", "x|y", "x", "y"), mlab(1, "b", "3", "3"), mlab(2, "c", ""), mlab(3, "d", "")},
		},
		{
			name: "no label column", file: "d.csv", opts: pipe,
			data: "text\na\n",
			want: []Row{mlab(0, "a", "")},
		},
		{
			name: "without a separator the field is one label", file: "d.csv",
			data: "text,label\na,card|arrival\n",
			want: []Row{lab(0, "a", "card|arrival")},
		},
		{name: "empty label between separators", file: "d.csv", opts: pipe, data: "text,label\nok,x\nbad,a||b\n", msg: `d.csv: line 3 (row 1): label "a||b": empty label at position 2`},
		{name: "trailing separator", file: "d.csv", opts: pipe, data: "text,label\nbad,a|\n", msg: `line 2 (row 0): label "a|": empty label at position 2`},
		{name: "leading separator, blank label", file: "d.tsv", opts: pipe, data: "text\tlabel\nbad\t | a\n", msg: "empty label at position 1"},
		{name: "jsonl stray separator", file: "d.jsonl", opts: pipe, data: `{"text":"a","label":"|"}` + "\n", msg: "line 1 (row 0)"},
		{
			name: "jsonl arrays: taken as they are, trimmed, deduplicated", file: "d.jsonl", opts: pipe,
			data: `{"text":"a","label":["card"," arrival","card"]}` + "\n" + `{"text":"b","label":[]}` + "\n" +
				`{"text":"c","label":[3,true]}` + "\n" + `{"text":"d","label":"x|y"}` + "\n" + `{"text":"e","label":["caf\u00e9"]}` + "\n",
			want: []Row{mlab(0, "a", "card|arrival", "card", "arrival"), mlab(1, "b", ""), mlab(2, "c", "3|true", "3", "true"),
				mlab(3, "d", "x|y", "x", "y"), mlab(4, "e", "café", "café")},
		},
		{name: "jsonl array without a separator", file: "d.jsonl", data: `{"text":"a","label":"x"}` + "\n" + `{"text":"b","label":["x","y"]}` + "\n", msg: `line 2 (row 1): label ["x","y"]: a JSON array is a set of labels; read multi-label data with a label separator`},
		{name: "jsonl array, element holds the separator", file: "d.jsonl", opts: pipe, data: `{"text":"a","label":["x|y"]}` + "\n", msg: `element 0 ("x|y") contains the label separator "|"`},
		{name: "jsonl array, empty element", file: "d.jsonl", opts: pipe, data: `{"text":"a","label":["x"," "]}` + "\n", msg: "element 1 is an empty label"},
		{name: "jsonl array, nested", file: "d.jsonl", opts: pipe, data: `{"text":"a","label":["x",["y"]]}` + "\n", msg: `element 1 (["y"]) is not a string, number or boolean`},
		{name: "jsonl array, null element", file: "d.jsonl", opts: pipe, data: `{"text":"a","label":[null]}` + "\n", msg: "element 0 (null) is not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, _, err := readAll(tc.file, tc.data, tc.opts)
			if tc.msg != "" {
				if !errors.Is(err, ErrMalformedRow) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v; want ErrMalformedRow containing %q", err, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rows, tc.want) {
				t.Errorf("rows\n got %#v\nwant %#v", rows, tc.want)
			}
		})
	}
}

func TestScanLabelSets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.csv")
	os.WriteFile(path, []byte("text,label\na,zeta|alpha\nb,\nc,beta | alpha\nd,zeta\n"), 0o644)
	s, err := Scan(path, ReaderOptions{LabelSep: "|"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Labels, []string{"alpha", "beta", "zeta"}) || s.Labelled != 3 || s.Rows != 4 {
		t.Errorf("labels %q, labelled %d, rows %d; want the sorted union, 3, 4", s.Labels, s.Labelled, s.Rows)
	}
	s, err = Scan(path, ReaderOptions{})
	if err != nil || !slices.Equal(s.Labels, []string{"beta | alpha", "zeta", "zeta|alpha"}) {
		t.Errorf("without a separator: labels %q, %v", s.Labels, err)
	}
}

func multiManifest() Manifest {
	m := testManifest()
	m.LabelNames = []string{"arrival", "card", "naïve \"quoted\"", "top"}
	m.MultiLabel, m.LabelSep = true, "|"
	return m
}

// testSets returns n seeded multi-hot rows over k labels, some of them empty.
func testSets(n, k int, seed uint64) []uint8 {
	rng := rand.New(rand.NewPCG(seed, 7))
	sets := make([]uint8, n*k)
	for i := range sets {
		if rng.IntN(3) == 0 {
			sets[i] = 1
		}
	}
	return sets
}

// writeSetStore writes a multi-label store in chunks of at most chunk rows.
func writeSetStore(t *testing.T, path string, m Manifest, d int, dtype Dtype, feats []float32, sets []uint8, ids []int64, chunk int) {
	t.Helper()
	n, k := len(ids), len(m.LabelNames)
	w, err := NewWriter(path, m, n, d, dtype)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += chunk {
		j := min(i+chunk, n)
		if err := w.WriteRowSets(feats[i*d:j*d], sets[i*k:j*k], ids[i:j]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStoreLabelSets: a multi-label store reads back with its sets, manifest and -1
// labels, gives the same bytes however it was chunked, and is what Python's safetensors
// sees; a single-label store is unchanged (TestStoreGolden).
func TestStoreLabelSets(t *testing.T) {
	const n, d = 37, 5
	m := multiManifest()
	k := len(m.LabelNames)
	feats, _, ids := testRows(n, d, 11)
	sets := testSets(n, k, 12)
	for _, dtype := range []Dtype{Float32, Float16} {
		dir := t.TempDir()
		path := filepath.Join(dir, "m.safetensors")
		writeSetStore(t, path, m, d, dtype, feats, sets, ids, 10)
		s, err := OpenStore(path)
		if err != nil {
			t.Fatal(err)
		}
		want := multiManifest()
		want.FormatVersion, want.Dtype = MultiLabelFormatVersion, dtype.String()
		if !reflect.DeepEqual(s.Manifest, want) {
			t.Errorf("manifest\n got %+v\nwant %+v", s.Manifest, want)
		}
		if !slices.Equal(s.LabelSets, sets) || !slices.Equal(s.RowIDs, ids) || s.N != n || s.D != d {
			t.Errorf("%v: sets, row ids or shape differ after the round trip", dtype)
		}
		if !slices.Equal(s.LabelSet(3), sets[3*k:4*k]) {
			t.Errorf("LabelSet(3) = %v", s.LabelSet(3))
		}
		for i, l := range s.Labels {
			if l != -1 {
				t.Fatalf("row %d: label %d; want -1 in a multi-label store", i, l)
			}
		}
		if dtype == Float32 && !slices.Equal(s.Features, feats) {
			t.Error("features differ")
		}
		other := filepath.Join(dir, "one.safetensors")
		writeSetStore(t, other, m, d, dtype, feats, sets, ids, 1)
		a, _ := os.ReadFile(path)
		b, _ := os.ReadFile(other)
		if !bytes.Equal(a, b) {
			t.Errorf("%v: bytes depend on the chunking", dtype)
		}
	}

	// Python's safetensors reads the sets as uint8 [N, K].
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	writeSetStore(t, path, m, d, Float32, feats, sets, ids, 50)
	runScript(t, "ref_store.py", path, dir)
	var info struct {
		Tensors map[string]struct {
			Dtype string
			Shape []int
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "info.json"))
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	ls := info.Tensors["label_sets"]
	if ls.Dtype != "uint8" || !slices.Equal(ls.Shape, []int{n, k}) || len(info.Tensors) != 4 {
		t.Errorf("python sees %+v; want label_sets uint8 [%d %d] and 4 tensors", info.Tensors, n, k)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "label_sets.bin")); !bytes.Equal(got, sets) {
		t.Error("python label_sets differ")
	}
}

func TestStoreLabelSetsErrors(t *testing.T) {
	m := multiManifest()
	feats, _, ids := testRows(2, 3, 1)
	w, err := NewWriter(filepath.Join(t.TempDir(), "x.safetensors"), m, 2, 3, Float32)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRowSets(feats, []uint8{1, 0, 0, 0, 0, 2, 0, 0}, ids); !errors.Is(err, ErrBadLabel) || !strings.Contains(err.Error(), "row 1: label set value 2 at label 1") {
		t.Errorf("set value 2: %v", err)
	}
	w.Abort()
	for _, c := range []struct {
		name string
		call func(w *Writer)
	}{
		{"WriteRows on a multi-label store", func(w *Writer) { w.WriteRows(feats, []int64{-1, -1}, ids) }},
		{"WriteRowSets with a short set", func(w *Writer) { w.WriteRowSets(feats, []uint8{1}, ids) }},
	} {
		w, _ := NewWriter(filepath.Join(t.TempDir(), "x.safetensors"), m, 2, 3, Float32)
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", c.name)
				}
			}()
			c.call(w)
		}()
		w.Abort()
	}

	// Corrupt multi-label stores are refused, naming the file.
	path := filepath.Join(t.TempDir(), "v.safetensors")
	writeSetStore(t, path, m, 3, Float32, feats, []uint8{1, 0, 0, 1, 0, 1, 0, 0}, ids, 2)
	valid, _ := os.ReadFile(path)
	hlen := binary.LittleEndian.Uint64(valid)
	setByte := slices.Clone(valid)
	setByte[len(setByte)-1] = 3
	label := slices.Clone(valid)
	binary.LittleEndian.PutUint64(label[8+hlen:], 0)
	for name, data := range map[string][]byte{
		"set value 3":       setByte,
		"label not -1":      label,
		"version 1":         corruptHeader(valid, func(h string) string { return strings.Replace(h, `\"format_version\":2`, `\"format_version\":1`, 1) }),
		"not multi_label":   corruptHeader(valid, func(h string) string { return strings.Replace(h, `\"multi_label\":true,`, ``, 1) }),
		"no label_sets":     corruptHeader(valid, func(h string) string { return strings.Replace(h, `"label_sets"`, `"other"`, 1) }),
		"label_sets I8":     corruptHeader(valid, func(h string) string { return strings.Replace(h, `"U8"`, `"I8"`, 1) }),
		"label_sets 3 cols": corruptHeader(valid, func(h string) string { return strings.Replace(h, `"shape":[2,4]`, `"shape":[4,2]`, 1) }),
	} {
		bad := filepath.Join(t.TempDir(), "c.safetensors")
		os.WriteFile(bad, data, 0o644)
		if _, err := OpenStore(bad); !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v; want ErrCorruptStore naming the file", name, err)
		}
	}
	// A single-label store with a label_sets tensor: the tensor is there, the manifest
	// does not say multi-label.
	single := testManifest()
	one := filepath.Join(t.TempDir(), "s.safetensors")
	writeStore(t, one, single, 3, Float32, feats, []int64{0, 1}, ids, 2)
	if _, err := OpenStore(one); err != nil {
		t.Fatal(err)
	}
	sb, _ := os.ReadFile(one)
	extra := corruptHeader(sb, func(h string) string {
		return strings.Replace(h, `"row_ids":`, `"label_sets":{"dtype":"U8","shape":[0,0],"data_offsets":[0,0]},"row_ids":`, 1)
	})
	bad := filepath.Join(t.TempDir(), "e.safetensors")
	os.WriteFile(bad, extra, 0o644)
	if _, err := OpenStore(bad); !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), "not multi_label") {
		t.Errorf("single-label store with label_sets: %v", err)
	}
}

// TestCheckpointResumeSets: an interrupted multi-label checkpoint (a torn chunk at the
// end) resumes into the store a direct write gives, byte for byte.
func TestCheckpointResumeSets(t *testing.T) {
	const n, d = 50, 4
	m := multiManifest()
	k := len(m.LabelNames)
	feats, _, ids := testRows(n, d, 21)
	sets := testSets(n, k, 22)
	key := CheckpointKey(m, "batch=8")
	direct := filepath.Join(t.TempDir(), "direct.safetensors")
	writeSetStore(t, direct, m, d, Float32, feats, sets, ids, 16)
	want, _ := os.ReadFile(direct)

	dir := t.TempDir()
	out := filepath.Join(dir, "out.safetensors")
	c, err := OpenCheckpointSets(out, key, d, k, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int{{0, 16}, {16, 30}} {
		if err := c.AppendSets(feats[r[0]*d:r[1]*d], sets[r[0]*k:r[1]*k], ids[r[0]:r[1]]); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	f, _ := os.OpenFile(out+".partial", os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("torn chunk"))
	f.Close()

	// The same key with another number of labels, or a single-label checkpoint: refused.
	if _, err := OpenCheckpointSets(out, key, d, k+1, true); !errors.Is(err, ErrCheckpointMismatch) {
		t.Errorf("other label count: %v", err)
	}
	if _, err := OpenCheckpoint(out, key, d, true); !errors.Is(err, ErrCheckpointMismatch) {
		t.Errorf("single-label resume of a multi-label checkpoint: %v", err)
	}

	c, err = OpenCheckpointSets(out, key, d, k, true)
	if err != nil || c.Rows() != 30 {
		t.Fatalf("resumed: rows %d, %v", c.Rows(), err)
	}
	if err := c.AppendSets(feats[30*d:], sets[30*k:], ids[30:]); err != nil {
		t.Fatal(err)
	}
	// Finishing into a single-label writer is refused and keeps the checkpoint.
	single := testManifest()
	sw, _ := NewWriter(out, single, n, d, Float32)
	if err := c.Finish(sw); err == nil || !strings.Contains(err.Error(), "label-set columns") {
		t.Errorf("Finish into a single-label store: %v", err)
	}
	c.Close()
	c, _ = OpenCheckpointSets(out, key, d, k, true)
	w, err := NewWriter(out, m, int(c.Rows()), d, Float32)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(w); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, want) {
		t.Error("resumed multi-label store differs from a direct write")
	}
	if names := dirEntries(t, dir); !slices.Equal(names, []string{"out.safetensors"}) {
		t.Errorf("left %q behind", names)
	}
}

// TestMergeLabelSets: shards of a multi-label store merge into the store a single run
// writes; a single-label shard among them is refused.
func TestMergeLabelSets(t *testing.T) {
	const n, d, shards = 23, 3, 3
	m := multiManifest()
	m.Dataset.Rows = n
	k := len(m.LabelNames)
	feats, _, _ := testRows(n, d, 31)
	sets := testSets(n, k, 32)
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i)
	}
	dir := t.TempDir()
	single := filepath.Join(dir, "single.safetensors")
	writeSetStore(t, single, m, d, Float32, feats, sets, ids, n)
	var paths []string
	for s := range shards {
		sm := m
		sm.Shard = &Shard{Index: s, Count: shards}
		var f []float32
		var st []uint8
		var id []int64
		for r := s; r < n; r += shards {
			f = append(f, feats[r*d:(r+1)*d]...)
			st = append(st, sets[r*k:(r+1)*k]...)
			id = append(id, int64(r))
		}
		p := filepath.Join(dir, fmt.Sprintf("shard-%d.safetensors", s))
		writeSetStore(t, p, sm, d, Float32, f, st, id, 4)
		paths = append(paths, p)
	}
	merged := filepath.Join(dir, "merged.safetensors")
	if err := Merge(merged, []string{paths[2], paths[0], paths[1]}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(single)
	b, _ := os.ReadFile(merged)
	if !bytes.Equal(a, b) {
		t.Fatal("merged multi-label store differs from the single write")
	}

	// Shard 1 extracted single-label: other settings.
	sm := testManifest()
	sm.Dataset.Rows = n
	sm.LabelNames = m.LabelNames
	sm.Shard = &Shard{Index: 1, Count: shards}
	var f []float32
	var lab, id []int64
	for r := 1; r < n; r += shards {
		f = append(f, feats[r*d:(r+1)*d]...)
		lab, id = append(lab, 0), append(id, int64(r))
	}
	one := filepath.Join(dir, "single-label-1.safetensors")
	writeStore(t, one, sm, d, Float32, f, lab, id, 4)
	bad := filepath.Join(dir, "bad.safetensors")
	if err := Merge(bad, []string{paths[0], one, paths[2]}); !errors.Is(err, ErrShards) || !strings.Contains(err.Error(), "format_version") {
		t.Errorf("mixed multi- and single-label shards: %v", err)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a refused merge wrote its output")
	}
}
