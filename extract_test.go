package headstart

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/onnx"
)

// parityTol is the largest absolute difference allowed between headstart's embeddings and
// the Python reference (same ONNX file, same onnxruntime release, same tokenizer): what
// remains is float32 summation order in pooling and batch composition inside the runtime.
const parityTol = 1e-5

func TestExtractParityWithPythonReference(t *testing.T) {
	if testing.Short() {
		t.Skip("parity against the Python reference runs the model: not in -short")
	}
	model := defaultModel(t)
	py := testutil.VenvPython(t)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.safetensors")
	cmd := exec.Command(py, "scripts/ref_embed.py", "--model", model.Model, "--tokenizer", model.Tokenizer,
		"--data", data, "--out", ref, "--max-len", "128", "--batch-size", "32",
		"--config", "mean:-1", "--config", "cls:-1", "--config", "max:-1", "--config", "last:-1",
		"--config", "mean:-4,-3,-2,-1", "--config", "mean:-1:norm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference script: %v\n%s", err, out)
	}
	refs := readSafetensors(t, ref)

	cases := []struct {
		pooling   string
		layers    []int
		normalize bool
		key       string
	}{
		{"mean", []int{-1}, false, "mean_L6"},
		{"cls", []int{-1}, false, "cls_L6"},
		{"max", []int{-1}, false, "max_L6"},
		{"last", []int{-1}, false, "last_L6"},
		{"mean", []int{-4, -3, -2, -1}, false, "mean_L3_4_5_6"},
		{"mean", []int{-1}, true, "mean_L6_norm"},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			out := filepath.Join(dir, c.key+".safetensors")
			sum, err := Extract(context.Background(), ExtractOptions{
				Model: model.Dir, Data: data, Out: out, Exact: true,
				Spec:    features.Spec{Pooling: c.pooling, Layers: c.layers, Normalize: c.normalize},
				Session: onnx.SessionOptions{IntraOpThreads: 2},
			})
			if err != nil {
				t.Fatal(err)
			}
			st, err := features.OpenStore(out)
			if err != nil {
				t.Fatal(err)
			}
			want := refs[c.key]
			if st.N != 872 || sum.Rows != 872 || st.D != 384*len(c.layers) {
				t.Fatalf("store %d x %d, summary %d rows; want 872 x %d", st.N, st.D, sum.Rows, 384*len(c.layers))
			}
			for i, id := range st.RowIDs {
				if id != int64(i) {
					t.Fatalf("row_ids[%d] = %d; rows must come back in input order", i, id)
				}
			}
			d := testutil.MaxAbsDiff(st.Features, want)
			if !(d < parityTol) {
				t.Fatalf("max abs diff vs Python onnxruntime reference = %g; want < %g", d, parityTol)
			}
			t.Logf("%s: 872 x %d, max abs diff vs Python onnxruntime %g", c.key, st.D, d)
			if st.Manifest.Pooling != c.pooling || st.Manifest.Normalize != c.normalize {
				t.Fatalf("manifest %+v", st.Manifest)
			}
			if len(st.Manifest.LabelNames) != 2 || st.Labels[0] < 0 {
				t.Fatalf("labels not recorded: names %v, first %d", st.Manifest.LabelNames, st.Labels[0])
			}
		})
	}
}

// readSafetensors reads every F32 tensor of a reference file written by the Python
// safetensors package (a minimal reader of its documented layout, independent of the store code).
func readSafetensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string   `json:"dtype"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(raw, &info); err != nil || info.Dtype != "F32" {
			t.Fatalf("%s: tensor %s: %v dtype %s", path, name, err, info.Dtype)
		}
		data := b[8+int64(n)+info.Offsets[0] : 8+int64(n)+info.Offsets[1]]
		v := make([]float32, len(data)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		out[name] = v
	}
	return out
}

func TestEmbeddingIndependentOfBatchAndPadding(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	enc, err := NewEncoder(defaultModel(t), EncoderOptions{Session: onnx.SessionOptions{IntraOpThreads: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	text := "a short sentence about the weather"
	alone, err := enc.Embed([]string{text})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("this batch-mate is much longer and forces a lot of padding onto the short one ", 8)
	mixed, err := enc.Embed([]string{long, text, "ok", long + " indeed"})
	if err != nil {
		t.Fatal(err)
	}
	d := enc.Dim()
	// Tolerance: the runtime may pick other kernels for another shape; results must agree
	// to float32 rounding of a 384-wide reduction.
	const invarianceTol = 1e-5
	if diff := testutil.MaxAbsDiff(alone, mixed[d:2*d]); !(diff < invarianceTol) {
		t.Fatalf("embedding changed with batch-mates/padding: max abs diff %g", diff)
	}
}

func TestExtractResumeIsByteIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	model := defaultModel(t)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	base := ExtractOptions{Model: model.Dir, Data: data, Reader: features.ReaderOptions{Limit: 300}, ChunkRows: 64, BatchSize: 16,
		Session: onnx.SessionOptions{IntraOpThreads: 2}}

	full := base
	full.Out = filepath.Join(dir, "full.safetensors")
	if _, err := Extract(context.Background(), full); err != nil {
		t.Fatal(err)
	}

	part := base
	part.Out = filepath.Join(dir, "part.safetensors")
	ctx, cancel := context.WithCancel(context.Background())
	part.Progress = &cancelAfter{n: 128, cancel: cancel}
	_, err := Extract(ctx, part)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted extract: err = %v; want context.Canceled", err)
	}
	if _, err := os.Stat(part.Out); err == nil {
		t.Fatal("interrupted extract left an output file")
	}
	part.Progress = nil
	part.Resume = true
	sum, err := Extract(context.Background(), part)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed < 128 || sum.Resumed >= 300 {
		t.Fatalf("resumed %d rows; want the 128+ done before the interruption", sum.Resumed)
	}
	a, _ := os.ReadFile(full.Out)
	b, _ := os.ReadFile(part.Out)
	if !bytes.Equal(a, b) {
		t.Fatalf("resumed store differs from an uninterrupted run (%d vs %d bytes)", len(b), len(a))
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "part.safetensors.*")); len(m) != 0 {
		t.Fatalf("checkpoint files left after completion: %v", m)
	}

	// Other options make the checkpoint unusable: refused, not mixed in.
	part.Progress = &cancelAfter{n: 64, cancel: nil}
	ctx, cancel = context.WithCancel(context.Background())
	part.Progress = &cancelAfter{n: 64, cancel: cancel}
	part.Resume = false
	part.Out = filepath.Join(dir, "other.safetensors")
	if _, err := Extract(ctx, part); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted: %v", err)
	}
	part.Progress = nil
	part.Resume = true
	part.Pooling = "cls" // the checkpoint's was the model card's mean
	if _, err := Extract(context.Background(), part); !errors.Is(err, features.ErrCheckpointMismatch) {
		t.Fatalf("resume with other options: %v; want ErrCheckpointMismatch", err)
	}
}

type cancelAfter struct {
	n, done int
	cancel  context.CancelFunc
}

func (c *cancelAfter) Start(total, done int) { c.done = done }
func (c *cancelAfter) Add(n int) {
	c.done += n
	if c.done >= c.n && c.cancel != nil {
		c.cancel()
	}
}

func TestExtractBadInput(t *testing.T) {
	model := defaultModel(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notONNX := filepath.Join(dir, "notonnx")
	os.MkdirAll(notONNX, 0o755)
	os.WriteFile(filepath.Join(notONNX, "model.onnx"), []byte("this is not a model\n"), 0o644)
	tok, _ := os.ReadFile(model.Tokenizer)
	os.WriteFile(filepath.Join(notONNX, "tokenizer.json"), tok, 0o644)

	good := write("good.csv", "text,label\nhello world,a\n")
	cases := []struct {
		name    string
		opts    ExtractOptions
		wantErr error
		wantMsg string
	}{
		{"missing file", ExtractOptions{Data: filepath.Join(dir, "nope.csv")}, os.ErrNotExist, "nope.csv"},
		{"missing column", ExtractOptions{Data: write("cols.csv", "sentence,label\nhi,a\n")}, features.ErrMissingColumn, "sentence"},
		{"invalid utf-8", ExtractOptions{Data: write("utf.csv", "text,label\nfine,a\nbad \xff\xfe,b\n")}, features.ErrInvalidUTF8, "row 1"},
		{"empty text", ExtractOptions{Data: write("empty.csv", "text,label\nfine,a\n\"\",b\n")}, ErrEmptyText, "row 1 (0-based, as in row_ids) has an empty"},
		{"empty texts", ExtractOptions{Data: write("empties.csv", "text,label\nfine,a\n\"\",b\n\"\",c\nok,a\n\"\",b\n")}, ErrEmptyText, "row 1 (0-based, as in row_ids; 2 more after it) has an empty"},
		{"blank text", ExtractOptions{Data: write("blank.csv", "text,label\nfine,a\nok,b\n\" \t\u200b\",b\n")}, ErrEmptyText, "row 2"},
		{"control text", ExtractOptions{Data: write("ctl.jsonl", `{"text": "fine"}`+"\n"+`{"text": "\u0000\u0007"}`+"\n")}, ErrEmptyText, "row 1"},
		{"no rows", ExtractOptions{Data: write("norows.csv", "text,label\n")}, ErrBadOption, "no data rows"},
		{"max len beyond positions", ExtractOptions{Data: good, Spec: features.Spec{MaxLen: 1000}}, ErrMaxLen, "512 positions"},
		{"not onnx", ExtractOptions{Data: good, Model: notONNX}, onnx.ErrNotONNX, "model.onnx"},
		{"layer out of range", ExtractOptions{Data: good, Spec: features.Spec{Layers: []int{-9}}}, nil, "out of range"},
		{"unknown model", ExtractOptions{Data: good, Model: "no-such-model"}, nil, "known models"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Out = filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
			if c.opts.Model == "" {
				c.opts.Model = model.Dir
			}
			_, err := Extract(context.Background(), c.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("err = %v; want %v", err, c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Errorf("err = %q; want it to mention %q", err, c.wantMsg)
			}
			if _, serr := os.Stat(c.opts.Out); serr == nil {
				t.Errorf("output written despite the error")
			}
		})
	}
}

func TestExtractTruncationCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	model := defaultModel(t)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("text\n")
	for i := range 5 {
		if i%2 == 0 {
			fmt.Fprintf(&b, "%s\n", strings.Repeat("word ", 2000)) // 10k characters
		} else {
			b.WriteString("short\n")
		}
	}
	data := filepath.Join(dir, "long.csv")
	os.WriteFile(data, []byte(b.String()), 0o644)
	sum, err := Extract(context.Background(), ExtractOptions{Model: model.Dir, Data: data, Out: filepath.Join(dir, "o.safetensors"), Spec: features.Spec{MaxLen: 64}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Truncated != 3 || sum.Rows != 5 {
		t.Fatalf("summary %+v; want 3 truncated of 5", sum)
	}
	st, err := features.OpenStore(filepath.Join(dir, "o.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Labels {
		if l != -1 {
			t.Fatalf("unlabelled data stored label %d; want -1", l)
		}
	}
}

// TestExtractRunsIdentical: batches computed two at a time on one session (Runs 2,
// one intra-op thread each) give byte-identical stores, pooled features and an
// activation cache written in the same pass, to one batch at a time; interrupted and
// resumed, too.
func TestExtractRunsIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	model := defaultModel(t)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	run := func(name string, runs int, progress Progress, resume bool) (string, string, error) {
		o := ExtractOptions{Model: model.Dir, Data: data, Reader: features.ReaderOptions{Limit: 300}, ChunkRows: 64, BatchSize: 8,
			Session: onnx.SessionOptions{IntraOpThreads: 2 / runs}, Runs: runs, CutTop: 1,
			Out: filepath.Join(dir, name+".safetensors"), CacheOut: filepath.Join(dir, name+".cache.safetensors"),
			Progress: progress, Resume: resume}
		_, err := Extract(context.Background(), o)
		return o.Out, o.CacheOut, err
	}
	one, oneCache, err := run("one", 1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	two, twoCache, err := run("two", 2, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b string) {
		t.Helper()
		x, _ := os.ReadFile(a)
		y, _ := os.ReadFile(b)
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s (%d bytes) differs from %s (%d bytes)", b, len(y), a, len(x))
		}
	}
	same(one, two)
	same(oneCache, twoCache)

	ctx, cancel := context.WithCancel(context.Background())
	o := ExtractOptions{Model: model.Dir, Data: data, Reader: features.ReaderOptions{Limit: 300}, ChunkRows: 64, BatchSize: 8,
		Session: onnx.SessionOptions{IntraOpThreads: 1}, Runs: 2, Out: filepath.Join(dir, "part.safetensors"),
		Progress: &cancelAfter{n: 128, cancel: cancel}}
	if _, err := Extract(ctx, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted extract with Runs 2: err = %v; want context.Canceled", err)
	}
	o.Progress, o.Resume = nil, true
	if _, err := Extract(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	full := o
	full.Out, full.Resume, full.Runs = filepath.Join(dir, "full.safetensors"), false, 1
	if _, err := Extract(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	same(full.Out, o.Out)
}

func TestSplitThreads(t *testing.T) {
	cpu, cuda := onnx.Provider{Kind: onnx.ProviderCPU}, onnx.Provider{Kind: onnx.ProviderCUDA}
	for _, c := range []struct {
		threads, runs int
		p             onnx.Provider
		n, intra      int
	}{
		{2, 0, cpu, 2, 1},
		{8, 0, cpu, 2, 4},
		{1, 0, cpu, 1, 1},
		{2, 1, cpu, 1, 2},
		{3, 2, cpu, 2, 1},
		{2, 4, cpu, 4, 1},
		{4, 0, cuda, 1, 4},
		{0, 0, cuda, 1, 0}, // onnxruntime's own choice
		{0, 1, cpu, 1, 0},
	} {
		if n, intra := SplitThreads(c.threads, c.runs, c.p); n != c.n || intra != c.intra {
			t.Errorf("SplitThreads(%d, %d, %s) = %d runs of %d threads; want %d of %d", c.threads, c.runs, c.p, n, intra, c.n, c.intra)
		}
	}
	if n, intra := SplitThreads(0, 0, cpu); runtime.NumCPU() >= 2 && (n != 2 || intra != runtime.NumCPU()/2) {
		t.Errorf("SplitThreads(0, 0, cpu) = %d runs of %d threads on %d cores; want 2 of half", n, intra, runtime.NumCPU())
	}
}
