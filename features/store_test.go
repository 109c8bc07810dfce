package features

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden store and the fuzz seeds in testdata")

func testManifest() Manifest {
	return Manifest{
		Tool:       "headstart test",
		Backbone:   Backbone{Name: "all-minilm-l6-v2", SHA256: strings.Repeat("a", 64), TokenizerSHA256: strings.Repeat("b", 64)},
		Spec:       Spec{Pooling: PoolMean.String(), Layers: []int{5}, Normalize: true, MaxLen: 128},
		Dataset:    Dataset{Path: "data/train.csv", SHA256: strings.Repeat("c", 64), Rows: 40, Format: "csv", TextCol: "text", LabelCol: "label"},
		LabelNames: []string{"negative", "positive", "naïve \"quoted\""},
	}
}

// testRows returns n rows of d seeded random features, labels in [-1, 3) and row ids.
func testRows(n, d int, seed uint64) ([]float32, []int64, []int64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	feats := make([]float32, n*d)
	for i := range feats {
		feats[i] = float32(rng.NormFloat64())
	}
	labels := make([]int64, n)
	ids := make([]int64, n)
	for i := range labels {
		labels[i] = int64(rng.IntN(4)) - 1
		ids[i] = int64(2*i + 1)
	}
	return feats, labels, ids
}

// writeStore writes a store in chunks of at most chunk rows.
func writeStore(t *testing.T, path string, m Manifest, d int, dtype Dtype, feats []float32, labels, ids []int64, chunk int) {
	t.Helper()
	n := len(labels)
	w, err := NewWriter(path, m, n, d, dtype)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += chunk {
		j := min(i+chunk, n)
		if err := w.WriteRows(feats[i*d:j*d], labels[i:j], ids[i:j]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// dirEntries lists a directory's names.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestStoreRoundTrip(t *testing.T) {
	const n, d = 40, 7
	feats, labels, ids := testRows(n, d, 1)
	for _, chunk := range []int{1, 13, n} {
		dir := t.TempDir()
		path := filepath.Join(dir, "f.safetensors")
		writeStore(t, path, testManifest(), d, Float32, feats, labels, ids, chunk)
		if got := dirEntries(t, dir); !slices.Equal(got, []string{"f.safetensors"}) {
			t.Errorf("directory holds %q; want only the store", got)
		}
		s, err := OpenStore(path)
		if err != nil {
			t.Fatal(err)
		}
		want := testManifest()
		want.FormatVersion, want.Dtype = FormatVersion, "f32"
		if !reflect.DeepEqual(s.Manifest, want) {
			t.Errorf("manifest\n got %+v\nwant %+v", s.Manifest, want)
		}
		if s.N != n || s.D != d || !slices.Equal(s.Features, feats) || !slices.Equal(s.Labels, labels) || !slices.Equal(s.RowIDs, ids) {
			t.Errorf("chunk %d: data differs after round trip", chunk)
		}
		if !slices.Equal(s.Row(3), feats[3*d:4*d]) {
			t.Error("Row(3) differs")
		}
		if chunk == 1 {
			continue
		}
		// Deterministic: the same rows give the same bytes, however they were chunked.
		other := filepath.Join(t.TempDir(), "f.safetensors")
		writeStore(t, other, testManifest(), d, Float32, feats, labels, ids, 1)
		a, _ := os.ReadFile(path)
		b, _ := os.ReadFile(other)
		if !bytes.Equal(a, b) {
			t.Errorf("chunk %d: bytes differ from a chunk-1 write", chunk)
		}
		if len(a)%8 != 0 || (8+binary.LittleEndian.Uint64(a))%8 != 0 {
			t.Errorf("store size %d or data start not 8-byte aligned", len(a))
		}
	}
}

func TestStoreEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.safetensors")
	writeStore(t, path, testManifest(), 5, Float32, nil, nil, nil, 1)
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.N != 0 || s.D != 5 || len(s.Features) != 0 {
		t.Errorf("empty store: N=%d D=%d", s.N, s.D)
	}
}

func TestStoreFloat16(t *testing.T) {
	const n, d = 9, 4
	feats, labels, ids := testRows(n, d, 2)
	path := filepath.Join(t.TempDir(), "h.safetensors")
	writeStore(t, path, testManifest(), d, Float16, feats, labels, ids, 4)
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Manifest.Dtype != "f16" {
		t.Errorf("manifest dtype %q; want f16", s.Manifest.Dtype)
	}
	// float16 keeps 11 significant bits: relative error <= 2^-11.
	for i, x := range feats {
		if got := s.Features[i]; !(math.Abs(float64(got-x)) <= math.Abs(float64(x))*0x1p-11) {
			t.Fatalf("feature %d: %v became %v", i, x, got)
		}
	}
}

// f16Cases are float32 values whose float16 rounding is delicate.
func f16Cases() []float32 {
	v := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65519, 65520, 1e6, -1e6,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26,
		0x1p-14, 0x1.ffcp-15, 6.1e-5, 1e-8, 1e-40, 0.1, 1.0 / 3, 2049, 2051, 4097, 0x1.002p0, 0x1.003p0, 0x1.001p0,
		0x1.0018p0, 0x1.0008p-20}
	rng := rand.New(rand.NewPCG(11, 12))
	for range 2000 {
		v = append(v, float32(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(12)-8))))
	}
	for range 2000 {
		v = append(v, math.Float32frombits(rng.Uint32()))
	}
	return v
}

// TestSafetensorsPython writes stores and reads them with the safetensors library: the
// arrays and the metadata must come back unchanged, and float16 encoding must match
// numpy's astype(float16) bit for bit.
func TestSafetensorsPython(t *testing.T) {
	const n, d = 23, 6
	feats, labels, _ := testRows(n, d, 3)
	for _, dtype := range []Dtype{Float32, Float16} {
		t.Run(dtype.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "s.safetensors")
			src := feats
			if dtype == Float16 {
				src = f16Cases()
				src = src[:len(src)/d*d]
			}
			rows := len(src) / d
			lab, rid := make([]int64, rows), make([]int64, rows)
			for i := range rows {
				lab[i], rid[i] = labels[i%n], int64(i)
			}
			writeStore(t, path, testManifest(), d, dtype, src, lab, rid, 50)
			writeF32(t, filepath.Join(dir, "src.f32"), src)
			runScript(t, "ref_store.py", path, dir, filepath.Join(dir, "src.f32"))

			var info struct {
				Tensors map[string]struct {
					Dtype string
					Shape []int
				}
				Metadata map[string]string
				SHA256   string
			}
			b, err := os.ReadFile(filepath.Join(dir, "info.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &info); err != nil {
				t.Fatal(err)
			}
			fdt := map[Dtype]string{Float32: "float32", Float16: "float16"}[dtype]
			want := fmt.Sprint(map[string]any{"features": []any{fdt, []int{rows, d}}, "labels": []any{"int64", []int{rows}}, "row_ids": []any{"int64", []int{rows}}})
			got := map[string]any{}
			for k, v := range info.Tensors {
				got[k] = []any{v.Dtype, v.Shape}
			}
			if fmt.Sprint(got) != want {
				t.Errorf("python sees tensors %v; want %v", got, want)
			}
			var m Manifest
			if err := json.Unmarshal([]byte(info.Metadata[MetadataKey]), &m); err != nil || len(info.Metadata) != 2 {
				t.Fatalf("python metadata %v: %v", info.Metadata, err)
			}
			// The checksum, as Python's hashlib computes it from the file.
			if s := info.Metadata[SHA256Key]; s != info.SHA256 {
				t.Errorf("stored checksum %s; hashlib over the manifest and the data gives %s", s, info.SHA256)
			}
			wantM := testManifest()
			wantM.FormatVersion, wantM.Dtype = FormatVersion, dtype.String()
			if !reflect.DeepEqual(m, wantM) {
				t.Errorf("python manifest\n got %+v\nwant %+v", m, wantM)
			}
			if !slices.Equal(readI64(t, filepath.Join(dir, "labels.bin")), lab) || !slices.Equal(readI64(t, filepath.Join(dir, "row_ids.bin")), rid) {
				t.Error("python labels or row_ids differ")
			}
			raw, _ := os.ReadFile(filepath.Join(dir, "features.bin"))
			if dtype == Float32 {
				if !slices.Equal(readF32(t, filepath.Join(dir, "features.bin")), src) {
					t.Error("python features differ")
				}
				return
			}
			ref, _ := os.ReadFile(filepath.Join(dir, "f16.bin"))
			if !bytes.Equal(raw, ref) {
				for i := 0; i < len(ref); i += 2 {
					if raw[i] != ref[i] || raw[i+1] != ref[i+1] {
						t.Fatalf("float16 of %g (0x%08x): Go 0x%04x, numpy 0x%04x", src[i/2], math.Float32bits(src[i/2]),
							binary.LittleEndian.Uint16(raw[i:]), binary.LittleEndian.Uint16(ref[i:]))
					}
				}
				t.Fatal("float16 bytes differ in length")
			}
		})
	}
}

func TestFloat16RoundTrip(t *testing.T) {
	// Every float16 converts to float32 and back to itself (NaNs stay NaN).
	for h := range 1 << 16 {
		f := float16ToFloat32(uint16(h))
		back := float32ToFloat16(f)
		if f != f {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN 0x%04x came back as 0x%04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("0x%04x -> %g -> 0x%04x", h, f, back)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	feats, labels, ids := testRows(4, 2, 4)

	// Too few rows: Close fails and leaves nothing behind.
	w, err := NewWriter(path, testManifest(), 4, 2, Float32)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteRows(feats[:4], labels[:2], ids[:2])
	if err := w.Close(); !errors.Is(err, ErrRowCount) {
		t.Errorf("Close with 2 of 4 rows: %v", err)
	}
	if got := dirEntries(t, dir); len(got) != 0 {
		t.Errorf("left %q behind", got)
	}

	// Too many rows.
	w, _ = NewWriter(path, testManifest(), 3, 2, Float32)
	if err := w.WriteRows(feats, labels, ids); !errors.Is(err, ErrRowCount) {
		t.Errorf("WriteRows 4 into 3: %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrRowCount) {
		t.Errorf("Close after failed write: %v", err)
	}

	// A label outside the manifest's names.
	w, _ = NewWriter(path, testManifest(), 1, 2, Float32)
	if err := w.WriteRows(feats[:2], []int64{3}, ids[:1]); !errors.Is(err, ErrBadLabel) {
		t.Errorf("label 3 of 3 names: %v", err)
	}
	w.Abort()

	// Abort leaves nothing and an existing store untouched.
	os.WriteFile(path, []byte("old"), 0o644)
	w, _ = NewWriter(path, testManifest(), 4, 2, Float32)
	w.WriteRows(feats, labels, ids)
	if err := errors.Join(w.Abort(), w.Abort(), w.Close()); err != nil {
		t.Errorf("Abort, Abort, Close: %v", err)
	}
	if got := dirEntries(t, dir); !slices.Equal(got, []string{"out.safetensors"}) {
		t.Errorf("left %q behind", got)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Error("Abort changed the existing file")
	}

	// A directory that does not exist.
	if _, err := NewWriter(filepath.Join(dir, "no", "such", "dir.safetensors"), testManifest(), 1, 1, Float32); err == nil {
		t.Error("NewWriter in a missing directory succeeded")
	}
	if _, err := NewWriter(path, testManifest(), 1, 0, Float32); err == nil {
		t.Error("NewWriter with d=0 succeeded")
	}
}

func TestParseDtype(t *testing.T) {
	for in, want := range map[string]Dtype{"": Float32, "f32": Float32, "FLOAT32": Float32, "f16": Float16, "half": Float16} {
		if got, err := ParseDtype(in); err != nil || got != want {
			t.Errorf("ParseDtype(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseDtype("bf16"); !errors.Is(err, ErrUnknownDtype) || !strings.Contains(err.Error(), "want one of f32, f16") {
		t.Errorf("ParseDtype(bf16): %v", err)
	}
}

// goldenStore is a small store whose bytes are fixed (testdata/golden.safetensors): a
// change to the layout or the manifest's encoding shows up as a diff (-update rewrites).
func goldenStore(t *testing.T) []byte {
	t.Helper()
	feats, labels, ids := testRows(3, 2, 5)
	path := filepath.Join(t.TempDir(), "g.safetensors")
	writeStore(t, path, testManifest(), 2, Float32, feats, labels, ids, 3)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreGolden(t *testing.T) {
	got := goldenStore(t)
	golden := filepath.Join("testdata", "golden.safetensors")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("store bytes differ from %s (go test -update rewrites it after a deliberate change)", golden)
	}
}

// corrupt rewrites the header of a valid store through edit, keeping the data.
func corruptHeader(valid []byte, edit func(string) string) []byte {
	n := binary.LittleEndian.Uint64(valid)
	h := edit(string(valid[8 : 8+n]))
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), valid[8+n:]...)
}

func TestOpenStoreCorrupt(t *testing.T) {
	valid := goldenStore(t)
	dir := t.TempDir()
	cases := map[string][]byte{
		"empty":                        {},
		"huge header length":           append(binary.LittleEndian.AppendUint64(nil, 1<<62), valid[8:]...),
		"header longer than file":      append(binary.LittleEndian.AppendUint64(nil, uint64(len(valid))), valid[8:]...),
		"extra byte at the end":        append(slices.Clone(valid), 0),
		"not JSON":                     corruptHeader(valid, func(h string) string { return "{not json" + h[9:] }),
		"not an object":                corruptHeader(valid, func(h string) string { return "[" + h[1:] }),
		"no manifest":                  corruptHeader(valid, func(h string) string { return strings.Replace(h, `"headstart"`, `"other"`, 1) }),
		"manifest not JSON":            corruptHeader(valid, func(h string) string { return strings.Replace(h, `{\"format_version`, `{{\"format_version`, 1) }),
		"future version":               corruptHeader(valid, func(h string) string { return strings.Replace(h, `\"format_version\":1`, `\"format_version\":9`, 1) }),
		"labels wrong dtype":           corruptHeader(valid, func(h string) string { return strings.Replace(h, `"I64"`, `"F64"`, 1) }),
		"unknown dtype":                corruptHeader(valid, func(h string) string { return strings.Replace(h, `"F32"`, `"Q7"`, 1) }),
		"manifest dtype disagrees":     corruptHeader(valid, func(h string) string { return strings.Replace(h, `\"dtype\":\"f32\"`, `\"dtype\":\"f16\"`, 1) }),
		"shape disagrees with offsets": corruptHeader(valid, func(h string) string { return strings.Replace(h, `"shape":[3,2]`, `"shape":[3,3]`, 1) }),
		"negative shape":               corruptHeader(valid, func(h string) string { return strings.Replace(h, `"shape":[3,2]`, `"shape":[-3,-2]`, 1) }),
		"overflowing shape": corruptHeader(valid, func(h string) string {
			return strings.Replace(h, `"shape":[3,2]`, `"shape":[4611686018427387904,4]`, 1)
		}),
		"missing tensor":  corruptHeader(valid, func(h string) string { return strings.Replace(h, `"row_ids"`, `"rowids"`, 1) }),
		"metadata number": corruptHeader(valid, func(h string) string { return strings.Replace(h, `{"__metadata__":{`, `{"__metadata__":{"n":1,`, 1) }),
	}
	for k := 0; k < len(valid); k += 7 {
		cases[fmt.Sprintf("truncated to %d bytes", k)] = valid[:k]
	}
	// A label outside the manifest's names (data byte edit: the first label is row 0's).
	n := binary.LittleEndian.Uint64(valid)
	badLabel := slices.Clone(valid)
	binary.LittleEndian.PutUint64(badLabel[8+n:], 7)
	cases["label out of range"] = badLabel
	for name, data := range cases {
		path := filepath.Join(dir, "c.safetensors")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := OpenStore(path)
		if !errors.Is(err, ErrCorruptStore) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v; want an ErrCorruptStore naming the file", name, err)
		}
	}
	if _, err := OpenStore(filepath.Join(dir, "missing.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheckpointResume(t *testing.T) {
	const n, d = 1300, 5 // chunks of more rows than Append writes at a time (appendBlock)
	feats, labels, ids := testRows(n, d, 6)
	m := testManifest()
	key := CheckpointKey(m, "batch=8")

	direct := filepath.Join(t.TempDir(), "direct.safetensors")
	writeStore(t, direct, m, d, Float32, feats, labels, ids, 16)
	want, _ := os.ReadFile(direct)

	for _, dtype := range []Dtype{Float32, Float16} {
		dir := t.TempDir()
		out := filepath.Join(dir, "out.safetensors")
		if dtype == Float16 {
			writeStore(t, direct, m, d, Float16, feats, labels, ids, 50)
			want, _ = os.ReadFile(direct)
		}
		// First run: two chunks, then a "crash" in the middle of the third.
		c, err := OpenCheckpoint(out, key, d, true)
		if err != nil || c.Rows() != 0 {
			t.Fatalf("fresh checkpoint: rows %d, %v", c.Rows(), err)
		}
		for _, r := range [][2]int{{0, 600}, {600, 1100}} {
			if err := c.Append(feats[r[0]*d:r[1]*d], labels[r[0]:r[1]], ids[r[0]:r[1]]); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
		f, _ := os.OpenFile(out+".partial", os.O_WRONLY|os.O_APPEND, 0)
		f.Write([]byte("torn chunk"))
		f.Close()

		// Other options: refused, and the checkpoint is left alone.
		if _, err := OpenCheckpoint(out, CheckpointKey(m, "batch=9"), d, true); !errors.Is(err, ErrCheckpointMismatch) ||
			!strings.Contains(err.Error(), "remove it or run without --resume") {
			t.Fatalf("other key: %v", err)
		}
		if _, err := OpenCheckpoint(out, key, d+1, true); !errors.Is(err, ErrCheckpointMismatch) {
			t.Fatalf("other d: %v", err)
		}

		// Resume: the torn bytes are dropped and the run goes on from row 1100.
		c, err = OpenCheckpoint(out, key, d, true)
		if err != nil || c.Rows() != 1100 {
			t.Fatalf("resumed checkpoint: rows %d, %v", c.Rows(), err)
		}
		if err := c.Append(feats[1100*d:], labels[1100:], ids[1100:]); err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(out, m, int(c.Rows()), d, dtype)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Finish(w); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, want) {
			t.Errorf("%v: resumed store differs from a direct write", dtype)
		}
		if names := dirEntries(t, dir); !slices.Equal(names, []string{"out.safetensors"}) {
			t.Errorf("%v: left %q behind", dtype, names)
		}
	}
}

func TestCheckpointFreshAndCorrupt(t *testing.T) {
	const d = 3
	feats, labels, ids := testRows(4, d, 7)
	out := filepath.Join(t.TempDir(), "o.safetensors")
	c, _ := OpenCheckpoint(out, "k1", d, false)
	c.Append(feats, labels, ids)
	c.Close()

	// Without resume, another key starts afresh.
	c, err := OpenCheckpoint(out, "k2", d, false)
	if err != nil || c.Rows() != 0 {
		t.Fatalf("fresh over old: rows %d, %v", c.Rows(), err)
	}
	c.Append(feats, labels, ids)
	c.Close()

	// Data shorter than the sidecar says: refused.
	os.Truncate(out+".partial", 10)
	if _, err := OpenCheckpoint(out, "k2", d, true); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Errorf("short data: %v", err)
	}
	os.WriteFile(out+".partial.json", []byte("{"), 0o644)
	if _, err := OpenCheckpoint(out, "k2", d, true); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Errorf("bad sidecar: %v", err)
	}
	os.Remove(out + ".partial")
	os.WriteFile(out+".partial.json", []byte(`{"version":1,"key":"k2","dim":3,"rows":0,"bytes":0}`), 0o644)
	if _, err := OpenCheckpoint(out, "k2", d, true); !errors.Is(err, ErrCorruptCheckpoint) {
		t.Errorf("missing data: %v", err)
	}

	// Finish into a writer of the wrong size fails, aborts the writer, keeps the checkpoint.
	c, _ = OpenCheckpoint(out, "k3", d, false)
	c.Append(feats, labels, ids)
	w, _ := NewWriter(out, testManifest(), 3, d, Float32)
	if err := c.Finish(w); !errors.Is(err, ErrRowCount) {
		t.Errorf("Finish into a 3-row writer: %v", err)
	}
	c.Close()
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("failed Finish left a store")
	}
	c, err = OpenCheckpoint(out, "k3", d, true)
	if err != nil || c.Rows() != 4 {
		t.Errorf("checkpoint after failed Finish: rows %d, %v", c.Rows(), err)
	}
	c.Remove()
}
