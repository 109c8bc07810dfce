package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

func TestFindLibrary(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libonnxruntime.so")
	if err := os.WriteFile(lib, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(dir, "cache")
	cached := filepath.Join(cacheDir, "onnxruntime", "1.24.1", "libonnxruntime.so.1.24.1")
	missing := filepath.Join(dir, "nope.so")

	tests := []struct {
		name        string
		explicit    string
		env         string
		cacheHasLib bool
		want        string
		errHas      []string // substrings of the error; nil means no error
	}{
		{name: "explicit wins", explicit: lib, env: missing, cacheHasLib: true, want: lib},
		{name: "explicit missing is an error", explicit: missing, cacheHasLib: true,
			errHas: []string{"explicit path " + missing, "scripts/setup.sh runtime"}},
		{name: "env before cache", env: lib, cacheHasLib: true, want: lib},
		{name: "env missing is an error", env: missing, cacheHasLib: true,
			errHas: []string{"$HEADSTART_ORT_LIB = " + missing, "scripts/setup.sh runtime"}},
		{name: "cache", cacheHasLib: true, want: cached},
		{name: "nothing", errHas: []string{"$HEADSTART_ORT_LIB (not set)", "cache " + cached, "scripts/setup.sh runtime", "make setup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(cacheDir)
			if tt.cacheHasLib {
				if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cached, []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("HEADSTART_CACHE", cacheDir)
			t.Setenv(EnvLibrary, tt.env)
			got, err := FindLibrary(tt.explicit)
			if tt.errHas == nil {
				if err != nil || got != tt.want {
					t.Fatalf("FindLibrary(%q) = %q, %v; want %q", tt.explicit, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrNoRuntime) {
				t.Fatalf("FindLibrary(%q) = %q, %v; want an error wrapping ErrNoRuntime", tt.explicit, got, err)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestInit(t *testing.T) {
	requireRuntime(t)
	lib := cache.RuntimeLib()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Init(lib)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Init %d: %v", i, err)
		}
	}
	if err := Init(""); err != nil {
		t.Errorf(`Init("") after Init: %v`, err)
	}
	if v := Version(); v != cache.RuntimeVersion {
		t.Errorf("Version() = %q, want %q", v, cache.RuntimeVersion)
	}
	other := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Init(other)
	if err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("Init(other library) = %v; want an error saying a runtime is already loaded", err)
	}
}

func TestParseProvider(t *testing.T) {
	tests := []struct {
		in   string
		want Provider
		str  string
		ok   bool
	}{
		{"cpu", Provider{Kind: ProviderCPU}, "cpu", true},
		{" CPU ", Provider{Kind: ProviderCPU}, "cpu", true},
		{"cuda", Provider{Kind: ProviderCUDA}, "cuda:0", true},
		{"cuda:0", Provider{Kind: ProviderCUDA}, "cuda:0", true},
		{"CUDA:3", Provider{Kind: ProviderCUDA, Device: 3}, "cuda:3", true},
		{"auto", Provider{Kind: ProviderAuto}, "auto", true},
		{"auto:0", Provider{Kind: ProviderAuto}, "auto", true},
		{"auto:2", Provider{Kind: ProviderAuto, Device: 2}, "auto:2", true},
		{"", Provider{}, "", false},
		{"gpu", Provider{}, "", false},
		{"cuda:", Provider{}, "", false},
		{"cuda:-1", Provider{}, "", false},
		{"cuda:x", Provider{}, "", false},
		{"cpu:0", Provider{}, "", false},
	}
	for _, tt := range tests {
		got, err := ParseProvider(tt.in)
		if !tt.ok {
			if err == nil || !strings.Contains(err.Error(), "want one of cpu, cuda, cuda:N, auto, auto:N") || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseProvider(%q) = %v, %v; want an error naming the input and listing the choices", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseProvider(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if got.String() != tt.str {
			t.Errorf("ParseProvider(%q).String() = %q, want %q", tt.in, got.String(), tt.str)
		}
		if back, err := ParseProvider(got.String()); err != nil || back != got {
			t.Errorf("ParseProvider(%q) = %v, %v; want %v", got.String(), back, err, got)
		}
	}
	var zero SessionOptions
	if zero.Provider.Kind != ProviderCPU || zero.OptLevel != OptAll {
		t.Errorf("zero SessionOptions = %+v; want CPU and OptAll", zero)
	}
}

func TestParseOptLevel(t *testing.T) {
	for _, l := range []OptLevel{OptAll, OptExtended, OptBasic, OptDisabled} {
		got, err := ParseOptLevel(strings.ToUpper(l.String()))
		if err != nil || got != l {
			t.Errorf("ParseOptLevel(%q) = %v, %v; want %v", l.String(), got, err, l)
		}
	}
	if _, err := ParseOptLevel("max"); err == nil || !strings.Contains(err.Error(), "want one of all, extended, basic, disabled") {
		t.Errorf(`ParseOptLevel("max") error = %v; want the list of levels`, err)
	}
}

func TestDTypeString(t *testing.T) {
	tests := []struct {
		d    DType
		want string
	}{
		{DTypeFloat32, "float32"}, {DTypeFloat16, "float16"}, {DTypeInt64, "int64"}, {DTypeInt32, "int32"},
		{DTypeBFloat16, "bfloat16"}, {DTypeUndefined, "undefined"}, {DType(17), "dtype(17)"}, {DType(-1), "dtype(-1)"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("DType(%d).String() = %q, want %q", int32(tt.d), got, tt.want)
		}
	}
}

// TestSessionSynthetic runs the synthetic encoder and checks every output
// value exactly (the model's arithmetic is exact in float32).
func TestSessionSynthetic(t *testing.T) {
	requireRuntime(t)
	s := synth{layers: 2, hidden: 4, vocab: 10, fixedHidden: true}
	for _, opts := range []SessionOptions{
		{},
		{IntraOpThreads: 1, InterOpThreads: 1, OptLevel: OptDisabled},
		{OptLevel: OptBasic},
		{OptLevel: OptExtended},
	} {
		t.Run(opts.OptLevel.String(), func(t *testing.T) {
			sess, err := NewSessionFromBytes(s.bytes(t), nil, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := sess.Close(); err != nil {
					t.Error(err)
				}
			}()
			if got := names(sess.Inputs()); !slices.Equal(got, []string{"input_ids", "attention_mask"}) {
				t.Errorf("Inputs() = %v", got)
			}
			out := sess.Outputs()
			if len(out) != 1 || out[0].String() != "last_hidden_state float32 [-1 -1 4]" {
				t.Errorf("Outputs() = %v", out)
			}
			if sess.Provider() != (Provider{Kind: ProviderCPU}) || sess.Fallback() != nil {
				t.Errorf("Provider() = %v, Fallback() = %v; want cpu, nil", sess.Provider(), sess.Fallback())
			}

			var dst []Float32Tensor
			for _, bt := range [][2]int{{2, 3}, {1, 5}, {3, 2}} {
				ids, mask := synthBatch(s, bt[0], bt[1])
				idsCopy := slices.Clone(ids.Data)
				dst, err = sess.Run(dst, []Int64Tensor{ids, mask})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids.Data, idsCopy) {
					t.Error("Run modified its input")
				}
				want := s.want(ids.Data, mask.Data)
				if len(dst) != 1 || !slices.Equal(dst[0].Shape, []int64{int64(bt[0]), int64(bt[1]), 4}) {
					t.Fatalf("batch %v: got %d outputs, shape %v", bt, len(dst), dst[0].Shape)
				}
				if !slices.Equal(dst[0].Data, want[len(want)-1]) {
					t.Errorf("batch %v: last_hidden_state = %v, want %v", bt, dst[0].Data, want[len(want)-1])
				}
			}
		})
	}
}

// TestRunReusesDst checks that Run writes into the caller's buffers when
// they are large enough, both when onnxruntime writes outputs in place
// (declared output shape known from the inputs) and when it allocates them
// (last dimension declared symbolic, "hidden").
func TestRunReusesDst(t *testing.T) {
	requireRuntime(t)
	for _, fixed := range []bool{true, false} {
		t.Run(fmt.Sprintf("fixedHidden=%v", fixed), func(t *testing.T) {
			s := synth{layers: 1, hidden: 4, vocab: 10, fixedHidden: fixed}
			sess, err := NewSessionFromBytes(s.bytes(t), nil, nil, SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			if sess.direct.Load() != fixed {
				t.Errorf("direct = %v, want %v", sess.direct.Load(), fixed)
			}
			ids, mask := synthBatch(s, 2, 3)
			buf := make([]float32, 0, 100)
			dst := make([]Float32Tensor, 1, 4)
			dst[0].Data = buf
			got, err := sess.Run(dst, []Int64Tensor{ids, mask})
			if err != nil {
				t.Fatal(err)
			}
			if &got[0] != &dst[0] || &got[0].Data[0] != &buf[:1][0] {
				t.Error("Run did not reuse dst and its Data")
			}
			want := s.want(ids.Data, mask.Data)
			if !slices.Equal(got[0].Shape, []int64{2, 3, 4}) || !slices.Equal(got[0].Data, want[1]) {
				t.Errorf("output %v %v, want [2 3 4] %v", got[0].Shape, got[0].Data, want[1])
			}
		})
	}
}

// TestRunWrongDeclaredShape: a model whose declared output shape is wrong
// still runs (through outputs onnxruntime allocates), and Run stops
// preallocating.
func TestRunWrongDeclaredShape(t *testing.T) {
	requireRuntime(t)
	s := synth{layers: 1, hidden: 4, vocab: 10, fixedHidden: true}
	p := s.build()
	p.Graph.Output[0] = valueInfo("last_hidden_state", onnxpb.TensorProto_FLOAT, "batch_size", "sequence_length", int64(5))
	data, err := (&Model{Proto: p}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := NewSessionFromBytes(data, nil, nil, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ids, mask := synthBatch(s, 2, 3)
	for range 2 {
		out, err := sess.Run(nil, []Int64Tensor{ids, mask})
		if err != nil {
			t.Fatal(err)
		}
		want := s.want(ids.Data, mask.Data)
		if !slices.Equal(out[0].Shape, []int64{2, 3, 4}) || !slices.Equal(out[0].Data, want[1]) {
			t.Errorf("output %v %v, want [2 3 4] %v", out[0].Shape, out[0].Data, want[1])
		}
		if sess.direct.Load() {
			t.Error("Run still preallocates after the declared shape proved wrong")
		}
	}
}

// TestRunAllocations: with outputs written in place, the bytes a Run
// allocates do not grow with the batch.
func TestRunAllocations(t *testing.T) {
	requireRuntime(t)
	s := synth{layers: 2, hidden: 64, vocab: 10, fixedHidden: true}
	m, err := ParseModel(s.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := m.HiddenStates()
	if err := m.ExposeOutputs(hs...); err != nil {
		t.Fatal(err)
	}
	data, _ := m.Marshal()
	sess, err := NewSessionFromBytes(data, nil, hs, SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ids, mask := synthBatch(s, 8, 64)
	in := []Int64Tensor{ids, mask}
	dst, err := sess.Run(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	outBytes := 3 * 8 * 64 * 64 * 4
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if dst, err = sess.Run(dst, in); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	// A few hundred bytes of bookkeeping (tensor wrappers, C name arrays)
	// per run; the outputs alone are 393 KB.
	if perRun > 8<<10 {
		t.Errorf("Run allocates %d bytes per call (outputs are %d bytes); want < 8 KiB", perRun, outBytes)
	}
	t.Logf("%d bytes allocated per Run, outputs %d bytes", perRun, outBytes)
}

func TestRunValidation(t *testing.T) {
	requireRuntime(t)
	s := synth{layers: 1, hidden: 4, vocab: 10}
	sess, err := NewSessionFromBytes(s.bytes(t), nil, nil, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ids, mask := synthBatch(s, 2, 3)
	tests := []struct {
		name   string
		inputs []Int64Tensor
		errHas string
	}{
		{"one input", []Int64Tensor{ids}, "got 1 inputs, want 2 (input_ids, attention_mask)"},
		{"rank", []Int64Tensor{{Shape: []int64{6}, Data: ids.Data}, mask}, `input "input_ids": shape [6] has rank 1, model wants rank 2`},
		{"length", []Int64Tensor{{Shape: []int64{2, 3}, Data: ids.Data[:5]}, mask}, `input "input_ids": 5 values for shape [2 3], want 6`},
		{"zero dim", []Int64Tensor{{Shape: []int64{0, 3}}, mask}, `input "input_ids": shape [0 3]: dimension 0 is 0, want > 0`},
		{"empty shape", []Int64Tensor{{}, mask}, `input "input_ids": empty shape`},
		{"batch mismatch", []Int64Tensor{ids, {Shape: []int64{3, 2}, Data: mask.Data}},
			`input "attention_mask": shape [3 2]: dimension 0 (batch_size) is 3, but input "input_ids" has batch_size = 2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sess.Run(nil, tt.inputs)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("Run error = %v; want it to contain %q", err, tt.errHas)
			}
		})
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sess.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := sess.Run(nil, []Int64Tensor{ids, mask}); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestNewSessionErrors(t *testing.T) {
	requireRuntime(t)
	data := synth{layers: 1, hidden: 4, vocab: 10}.bytes(t)

	// A model with an int64 output, which Session cannot return.
	m := synth{layers: 1, hidden: 4, vocab: 10}.build()
	m.Graph.Node = append(m.Graph.Node, node("Identity", "/id", []string{"input_ids"}, "ids_out"))
	m.Graph.Output = append(m.Graph.Output, valueInfo("ids_out", 7, "batch_size", "sequence_length"))
	mod := &Model{Proto: m}
	intOut, err := mod.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		data    []byte
		in, out []string
		opts    SessionOptions
		errHas  string
	}{
		{"unknown input", data, []string{"input_ids", "token_type_ids"}, nil, SessionOptions{},
			`no input "token_type_ids"; the model's inputs are input_ids, attention_mask`},
		{"repeated output", data, nil, []string{"last_hidden_state", "last_hidden_state"}, SessionOptions{},
			`output "last_hidden_state" named twice`},
		{"empty selection", data, []string{}, nil, SessionOptions{}, "no inputs selected"},
		{"int64 output", intOut, nil, nil, SessionOptions{}, `output "ids_out" is int64; Session supports float32 outputs only`},
		{"negative threads", data, nil, nil, SessionOptions{IntraOpThreads: -1}, "thread counts must be >= 0"},
		{"bad opt level", data, nil, nil, SessionOptions{OptLevel: 9}, "optimisation level 9 unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess, err := NewSessionFromBytes(tt.data, tt.in, tt.out, tt.opts)
			if err == nil {
				sess.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error = %v; want it to contain %q", err, tt.errHas)
			}
		})
	}

	// Selecting a subset, in another order, works.
	sess, err := NewSessionFromBytes(intOut, []string{"input_ids", "attention_mask"}, []string{"last_hidden_state"}, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()
}

// TestCUDAUnavailable asks for CUDA from the CPU build of onnxruntime (the
// one the tests load): an error wrapping ErrCUDAUnavailable that names the
// missing provider library and says how to fetch the CUDA build, not a
// crash; and "auto" falls back to the CPU, saying why.
func TestCUDAUnavailable(t *testing.T) {
	requireRuntime(t)
	dir := filepath.Dir(LibraryPath())
	if _, err := os.Stat(filepath.Join(dir, "libonnxruntime_providers_cuda.so")); err == nil {
		t.Fatalf("%s holds the CUDA provider library: the CPU runtime directory must not (scripts/setup.sh gpu puts the CUDA build in %s)", dir, filepath.Dir(GPULibrary()))
	}

	// The message, with and without the CUDA build in the cache.
	tests := []struct {
		name     string
		gpuBuild bool
		errHas   []string
	}{
		{"not fetched", false, []string{"libonnxruntime_providers_cuda.so not found in " + dir, "not the CUDA build", "scripts/setup.sh gpu", "$HEADSTART_ORT_LIB"}},
		{"fetched, but the CPU build is loaded", true, []string{"libonnxruntime_providers_cuda.so not found in " + dir, "only once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HEADSTART_CACHE", t.TempDir())
			if tt.gpuBuild {
				if err := os.MkdirAll(filepath.Dir(GPULibrary()), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(GPULibrary(), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := loadCUDA(dir)
			if err == nil {
				t.Fatal("loadCUDA succeeded on the CPU build")
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}

	s := synth{layers: 1, hidden: 4, vocab: 10}
	data := s.bytes(t)
	for _, p := range []Provider{{Kind: ProviderCUDA}, {Kind: ProviderCUDA, Device: 1}} {
		sess, err := NewSessionFromBytes(data, nil, nil, SessionOptions{Provider: p})
		if err == nil {
			sess.Close()
			t.Fatalf("%v: session opened on the CPU build", p)
		}
		if !errors.Is(err, ErrCUDAUnavailable) || !strings.Contains(err.Error(), "libonnxruntime_providers_cuda.so") || !strings.Contains(err.Error(), p.String()) {
			t.Errorf("%v: error = %v; want ErrCUDAUnavailable naming %v and libonnxruntime_providers_cuda.so", p, err, p)
		}
		t.Logf("%v: %v", p, err)
	}

	sess, err := NewSessionFromBytes(data, nil, nil, SessionOptions{Provider: Provider{Kind: ProviderAuto}})
	if err != nil {
		t.Fatalf("auto: %v", err)
	}
	defer sess.Close()
	if sess.Provider() != (Provider{Kind: ProviderCPU}) || !errors.Is(sess.Fallback(), ErrCUDAUnavailable) ||
		!strings.Contains(sess.Fallback().Error(), "libonnxruntime_providers_cuda.so") {
		t.Errorf("auto: Provider() = %v, Fallback() = %v; want cpu and an ErrCUDAUnavailable naming the provider library", sess.Provider(), sess.Fallback())
	}
	ids, mask := synthBatch(s, 1, 2)
	out, err := sess.Run(nil, []Int64Tensor{ids, mask})
	if err != nil {
		t.Fatal(err)
	}
	want := s.want(ids.Data, mask.Data)
	if !slices.Equal(out[0].Data, want[len(want)-1]) {
		t.Errorf("auto: output %v, want %v", out[0].Data, want[len(want)-1])
	}
}

// notONNXCases returns files that are not ONNX models, by name. The
// truncated real model is included when the model is present (required
// unless -short).
func notONNXCases(t *testing.T) map[string][]byte {
	good := synth{layers: 1, hidden: 4, vocab: 10}.bytes(t)
	noNodes := synth{layers: 1, hidden: 4, vocab: 10}.build()
	noNodes.Graph.Node = nil
	noNodesData, err := (&Model{Proto: noNodes}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"text.onnx":      []byte("hello world\nthis is not a model\n"),
		"empty.onnx":     nil,
		"truncated.onnx": good[:len(good)*2/3],
		"cut-tag.onnx":   good[:len(good)-1],
		"json.onnx":      []byte(`{"ir_version": 8, "graph": {}}`),
		"nonodes.onnx":   noNodesData,
	}
	p := filepath.Join(cache.ModelDir(defaultModel), "model.onnx")
	if _, err := os.Stat(p); err == nil || !testing.Short() {
		f, err := os.Open(requireModel(t, defaultModel))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		head := make([]byte, 1<<20)
		if _, err := f.ReadAt(head, 0); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		cases["real-truncated.onnx"] = head
	}
	return cases
}

func checkNotONNX(t *testing.T, fn string, err error, want string) {
	t.Helper()
	if !errors.Is(err, ErrNotONNX) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error = %v; want ErrNotONNX naming %q", fn, err, want)
	}
}

// TestNotONNX feeds files that are not ONNX models to the entry points that
// do not need the runtime.
func TestNotONNX(t *testing.T) {
	dir := t.TempDir()
	for name, data := range notONNXCases(t) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			_, _, err := Describe(path)
			checkNotONNX(t, "Describe", err, path)
			t.Log(err)
			_, err = LoadModel(path)
			checkNotONNX(t, "LoadModel", err, path)
			_, _, err = DescribeBytes(data)
			checkNotONNX(t, "DescribeBytes", err, "model data")
			_, err = ParseModel(data)
			checkNotONNX(t, "ParseModel", err, "model data")
		})
	}
	_, _, err := Describe(dir)
	checkNotONNX(t, "Describe(directory)", err, dir)
	_, _, err = Describe(filepath.Join(dir, "absent.onnx"))
	if err == nil || errors.Is(err, ErrNotONNX) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Describe(absent) = %v; want a not-exist error", err)
	}
	// And a good model passes the same check.
	if _, _, err := DescribeBytes(synth{layers: 1, hidden: 4, vocab: 10}.bytes(t)); err != nil {
		t.Errorf("DescribeBytes(synthetic model) = %v", err)
	}
}

// TestNotONNXSession: sessions refuse the same files before onnxruntime
// sees them.
func TestNotONNXSession(t *testing.T) {
	requireRuntime(t)
	dir := t.TempDir()
	for name, data := range notONNXCases(t) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			sess, err := NewSessionFromFile(path, nil, nil, SessionOptions{})
			if err == nil {
				sess.Close()
			}
			checkNotONNX(t, "NewSessionFromFile", err, path)
			sess, err = NewSessionFromBytes(data, nil, nil, SessionOptions{})
			if err == nil {
				sess.Close()
			}
			checkNotONNX(t, "NewSessionFromBytes", err, "model data")
		})
	}
}

// TestRunConcurrent: goroutines sharing one Session, each with its own batch
// shape and dst, get what a lone Run gives, with outputs written in place
// (declared shapes known) and allocated by onnxruntime (a symbolic hidden
// size). Run with -race, it also checks that Run's scratch is not shared.
func TestRunConcurrent(t *testing.T) {
	requireRuntime(t)
	for _, fixed := range []bool{true, false} {
		t.Run(fmt.Sprintf("fixedHidden=%v", fixed), func(t *testing.T) {
			s := synth{layers: 2, hidden: 64, vocab: 10, fixedHidden: fixed} // runs long enough to overlap
			sess, err := NewSessionFromBytes(s.bytes(t), nil, nil, SessionOptions{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			const workers, runs = 4, 40
			errs := make(chan error, workers)
			for w := range workers {
				go func() {
					var dst []Float32Tensor
					for r := range runs {
						B, T := 1+(w+r)%8, 16+(w*7+r)%32 // shapes differ between goroutines and runs
						ids, mask := synthBatch(s, B, T)
						var err error
						if dst, err = sess.Run(dst, []Int64Tensor{ids, mask}); err != nil {
							errs <- err
							return
						}
						want := s.want(ids.Data, mask.Data)
						if !slices.Equal(dst[0].Shape, []int64{int64(B), int64(T), 64}) || !slices.Equal(dst[0].Data, want[len(want)-1]) {
							errs <- fmt.Errorf("goroutine %d run %d: output %v differs from the lone model's", w, r, dst[0].Shape)
							return
						}
					}
					errs <- nil
				}()
			}
			for range workers {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
		})
	}
}
