package head

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
)

var testFingerprint = Fingerprint{
	Backbone: "all-minilm-l6-v2", BackboneSHA256: strings.Repeat("ab", 32), TokenizerSHA256: strings.Repeat("cd", 32),
	Spec: features.Spec{Pooling: "mean", Layers: []int{6}, Normalize: false, MaxLen: 128}, Dim: 16,
}

// testHeads returns one head of every shape the file format holds.
func testHeads(t *testing.T) map[string]*Head {
	t.Helper()
	d := synthetic(300, 16, 4, 3, false, 1)
	d.Fingerprint = testFingerprint
	bin := synthetic(200, 16, 2, 3, false, 2)
	bin.Fingerprint = testFingerprint
	ml := multiLabel(d)
	heads := map[string]*Head{}
	var err error
	if heads["softmax standardised"], err = FitLogReg(d, LogRegSettings{Standardize: true, ClassWeight: Balanced}); err != nil {
		t.Fatal(err)
	}
	if heads["binary"], err = FitLogReg(bin, LogRegSettings{C: 0.5, Precision: Float64}); err != nil {
		t.Fatal(err)
	}
	if heads["one-vs-rest"], err = FitLogReg(ml, LogRegSettings{}); err != nil {
		t.Fatal(err)
	}
	if heads["mlp"], err = FitMLP(d, nil, MLPSettings{Hidden: []int{8, 5}, MaxEpochs: 3, Dropout: 0.1}); err != nil {
		t.Fatal(err)
	}
	return heads
}

func TestFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	x := synthetic(50, 16, 4, 3, false, 9).X
	for name, h := range testHeads(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".safetensors")
			if err := h.Save(path); err != nil {
				t.Fatal(err)
			}
			b1, _ := os.ReadFile(path)
			b2, err := h.Encode()
			if err != nil || !bytes.Equal(b1, b2) {
				t.Fatalf("Encode is not deterministic (err %v)", err)
			}
			g, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := *h
			want.Summary.Elapsed = 0 // not saved
			if !reflect.DeepEqual(*g, want) {
				t.Errorf("loaded head differs:\n got %+v\nwant %+v", *g, want)
			}
			k := len(h.Classes)
			p1, p2 := make([]float32, 50*k), make([]float32, 50*k)
			h.Predict(p1, x, 50)
			g.Predict(p2, x, 50)
			if !slices.Equal(p1, p2) {
				t.Errorf("predictions differ after a round trip")
			}
			// Nothing but the file is left in the directory.
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
		})
	}
}

// rewriteMeta edits a head file's metadata JSON and, with fixSum, recomputes the
// checksum so that only the edit is wrong.
func rewriteMeta(t *testing.T, b []byte, edit func(m map[string]any), fixSum bool) []byte {
	t.Helper()
	hlen := binary.LittleEndian.Uint64(b)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hlen], &hdr); err != nil {
		t.Fatal(err)
	}
	data := b[8+hlen:]
	var md map[string]string
	json.Unmarshal(hdr["__metadata__"], &md)
	var meta map[string]any
	json.Unmarshal([]byte(md[MetaKey]), &meta)
	edit(meta)
	mj, _ := json.Marshal(meta)
	md[MetaKey] = string(mj)
	if fixSum {
		s := sha256.Sum256(append(slices.Clone(mj), data...))
		md[MetaHashKey] = hex.EncodeToString(s[:])
	}
	hdr["__metadata__"], _ = json.Marshal(md)
	h, _ := json.Marshal(hdr)
	for (8+len(h))%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

func TestLoadCorrupt(t *testing.T) {
	h := testHeads(t)["softmax standardised"]
	good, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(binary.LittleEndian.Uint64(good))
	flip := func(i int) []byte {
		b := slices.Clone(good)
		b[i] ^= 0x01
		return b
	}
	metaAt := bytes.Index(good, []byte(`classes`)) + 20 // inside the class names
	store := filepath.Join(t.TempDir(), "features.safetensors")
	w, _ := features.NewWriter(store, features.Manifest{LabelNames: []string{"a"}}, 1, 2, features.Float32)
	w.WriteRows([]float32{1, 2}, []int64{0}, []int64{0})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	storeBytes, _ := os.ReadFile(store)
	for _, tc := range []struct {
		name string
		b    []byte
		err  error
		msg  string
	}{
		{"weight bit flipped", flip(len(good) - 100), ErrCorruptHead, "checksum mismatch"},
		{"first weight byte", flip(8 + hlen), ErrCorruptHead, "checksum mismatch"},
		{"class name edited", flip(metaAt), ErrCorruptHead, "checksum mismatch"},
		{"truncated", good[:len(good)-8], ErrCorruptHead, "truncated"},
		{"header cut", good[:40], ErrCorruptHead, "does not fit"},
		{"empty", nil, ErrCorruptHead, "too short"},
		{"not JSON", append(binary.LittleEndian.AppendUint64(nil, 8), []byte("garbage!")...), ErrCorruptHead, "not a safetensors file"},
		{"bad JSON", append(binary.LittleEndian.AppendUint64(nil, 8), []byte("{garbage")...), ErrCorruptHead, "not valid JSON"},
		{"feature store", storeBytes, ErrCorruptHead, "not a headstart head file"},
		{"newer version", rewriteMeta(t, good, func(m map[string]any) { m["format_version"] = 99 }, true), ErrVersion, "version 99"},
		{"layer shape", rewriteMeta(t, good, func(m map[string]any) { m["dim"] = 17 }, true), ErrCorruptHead, "want 17 inputs"},
		{"unknown kind", rewriteMeta(t, good, func(m map[string]any) { m["kind"] = "forest" }, true), ErrCorruptHead, `kind "forest" unknown`},
		{"edited, old checksum", rewriteMeta(t, good, func(m map[string]any) { m["classes"].([]any)[0] = "x" }, false), ErrCorruptHead, "checksum mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "head.safetensors")
			os.WriteFile(path, tc.b, 0o644)
			_, err := Load(path)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v; want %v naming the file and containing %q", err, tc.err, tc.msg)
			}
		})
	}
}

func TestSaveFailureLeavesFile(t *testing.T) {
	dir := t.TempDir()
	h := testHeads(t)["binary"]
	if err := h.Save(filepath.Join(dir, "missing", "head.safetensors")); err == nil {
		t.Fatal("saving into a missing directory succeeded")
	}
	// An unencodable head (no layers) leaves the existing file untouched.
	path := filepath.Join(dir, "head.safetensors")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := *h
	bad.Layers = nil
	if err := bad.Save(path); err == nil {
		t.Fatal("saving a head without layers succeeded")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("a failed save changed the file")
	}
}

func TestCheckFingerprint(t *testing.T) {
	h := &Head{Fingerprint: testFingerprint, Dim: 16}
	base := features.Manifest{
		Backbone: features.Backbone{Name: "all-minilm-l6-v2", SHA256: testFingerprint.BackboneSHA256, TokenizerSHA256: testFingerprint.TokenizerSHA256},
		Spec:     features.Spec{Pooling: "mean", Layers: []int{6}, MaxLen: 128},
	}
	if err := h.Check(base); err != nil {
		t.Fatalf("matching manifest: %v", err)
	}
	renamed := base
	renamed.Backbone.Name = "/models/minilm"
	if err := h.Check(renamed); err != nil {
		t.Errorf("the backbone's name is informative only: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(m *features.Manifest)
		msg  string
	}{
		{"backbone", func(m *features.Manifest) { m.Backbone.SHA256 = "ff"; m.Backbone.Name = "e5-small-v2-q" },
			"backbone sha256: head " + testFingerprint.BackboneSHA256 + " (all-minilm-l6-v2), features ff (e5-small-v2-q)"},
		{"tokenizer", func(m *features.Manifest) { m.Backbone.TokenizerSHA256 = "" }, "tokenizer sha256: head " + testFingerprint.TokenizerSHA256 + ", features (none)"},
		{"pooling", func(m *features.Manifest) { m.Pooling = "cls" }, "pooling: head mean, features cls"},
		{"layers", func(m *features.Manifest) { m.Layers = []int{5, 6} }, "layers: head [6], features [5 6]"},
		{"normalize", func(m *features.Manifest) { m.Normalize = true }, "normalize: head false, features true"},
		{"max_len", func(m *features.Manifest) { m.MaxLen = 256 }, "max_len: head 128, features 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			m.Layers = slices.Clone(base.Layers)
			tc.edit(&m)
			err := h.Check(m)
			if !errors.Is(err, ErrFingerprint) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v; want ErrFingerprint containing %q", err, tc.msg)
			}
		})
	}
	s := &features.Store{Manifest: base, N: 1, D: 384, Features: make([]float32, 384), Labels: []int64{0}, RowIDs: []int64{0}}
	if err := h.CheckStore(s, "x.safetensors"); !errors.Is(err, ErrDimension) || !strings.Contains(err.Error(), "384 columns; the head takes 16") {
		t.Errorf("dimension: %v", err)
	}
}

func TestFold(t *testing.T) {
	x := synthetic(40, 16, 4, 3, false, 9).X
	for name, h := range testHeads(t) {
		f := h.Fold()
		if f.Mean != nil || (h.Mean == nil && f != h) {
			t.Errorf("%s: Fold kept the standardisation or copied a plain head", name)
		}
		k := len(h.Classes)
		p1, p2 := make([]float32, 40*k), make([]float32, 40*k)
		h.Predict(p1, x, 40)
		f.Predict(p2, x, 40)
		for i := range p1 {
			// Folding reorders float64 arithmetic: the probabilities agree to float32
			// rounding.
			if !(math.Abs(float64(p1[i]-p2[i])) <= 1e-6) {
				t.Fatalf("%s: probability %d: %v folded, %v standardised", name, i, p2[i], p1[i])
			}
		}
	}
}

// TestPredictFewRowsAllocates: predicting a few rows (a served request) allocates
// buffers for those rows, not for a whole prediction chunk (which once cost 1.5 MB
// of garbage per call at 384 dimensions and slowed serving by 15-20%).
func TestPredictFewRowsAllocates(t *testing.T) {
	x := synthetic(2, 16, 4, 3, false, 9).X
	for name, h := range testHeads(t) {
		dst := make([]float32, 2*len(h.Classes))
		h.Predict(dst, x, 2) // warm the kernel's pools
		// TotalAlloc counts every goroutine's allocations (the runtime's own too), so the
		// least of three measurements is taken: a busy machine adds, never subtracts.
		per := uint64(math.MaxUint64)
		for range 3 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			const calls = 200
			for range calls {
				h.Predict(dst, x, 2)
			}
			runtime.ReadMemStats(&after)
			per = min(per, (after.TotalAlloc-before.TotalAlloc)/calls)
		}
		// A chunk-sized pair of buffers is 2 x 256 x 16 x 8 = 64 KiB here.
		if per > 4096 {
			t.Errorf("%s: Predict of 2 rows allocates %d bytes per call; want at most 4096", name, per)
		}
	}
}
