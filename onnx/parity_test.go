package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/testutil"
)

// parityTol bounds the difference between Go and Python outputs of the same
// model. Both drive onnxruntime 1.24.1 with the same optimisation level, so
// they differ only where thread scheduling changes the order of float32
// reductions; hidden states are O(1), and such differences are ~1e-7.
const parityTol = 1e-5

// helloWorld is "hello world" through the all-MiniLM-L6-v2 tokenizer:
// [CLS] hello world [SEP].
var helloWorld = []int64{101, 7592, 2088, 102}

// refRun holds what scripts/ref_onnx.py writes.
type refRun struct {
	Header         map[string]any `json:"header"`
	Outputs        []refTensor    `json:"outputs"`
	ExposedOutputs []refTensor    `json:"exposed_outputs"`
}

type refTensor struct {
	Name  string    `json:"name"`
	Shape []int64   `json:"shape"`
	Data  []float64 `json:"data"`
}

func (r refTensor) float32s() []float32 {
	out := make([]float32, len(r.Data))
	for i, v := range r.Data {
		out[i] = float32(v)
	}
	return out
}

func findRef(t *testing.T, ts []refTensor, name string) refTensor {
	t.Helper()
	for _, r := range ts {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("reference has no output %q", name)
	return refTensor{}
}

// pythonReference runs scripts/ref_onnx.py with the venv's onnxruntime.
func pythonReference(t *testing.T, model string, ids []int64, expose ...string) refRun {
	t.Helper()
	py := testutil.VenvPython(t)
	out := filepath.Join(t.TempDir(), "ref.json")
	idStr := make([]string, len(ids))
	for i, id := range ids {
		idStr[i] = fmt.Sprint(id)
	}
	args := []string{filepath.Join("..", "scripts", "ref_onnx.py"), "--model", model, "--ids", strings.Join(idStr, ","), "--out", out}
	for _, e := range expose {
		args = append(args, "--expose", e)
	}
	cmd := exec.Command(py, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", py, strings.Join(args, " "), err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var ref refRun
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	t.Logf("reference: %v", ref.Header)
	return ref
}

// bertInputs is one sequence with attention mask all ones and token type
// ids all zeros, as scripts/ref_onnx.py feeds.
func bertInputs(ids []int64) []Int64Tensor {
	shape := []int64{1, int64(len(ids))}
	mask := make([]int64, len(ids))
	for i := range mask {
		mask[i] = 1
	}
	return []Int64Tensor{
		{Shape: shape, Data: ids},
		{Shape: shape, Data: mask},
		{Shape: shape, Data: make([]int64, len(ids))},
	}
}

func TestDescribeRealModel(t *testing.T) {
	path := requireModel(t, defaultModel)
	in, out, err := Describe(path)
	if err != nil {
		t.Fatal(err)
	}
	wantIn := []string{"input_ids int64 [-1 -1]", "attention_mask int64 [-1 -1]", "token_type_ids int64 [-1 -1]"}
	wantOut := []string{"last_hidden_state float32 [-1 -1 384]"}
	if got := fmt.Sprint(in); got != fmt.Sprint(wantIn) {
		t.Errorf("inputs = %v, want %v", got, wantIn)
	}
	if got := fmt.Sprint(out); got != fmt.Sprint(wantOut) {
		t.Errorf("outputs = %v, want %v", got, wantOut)
	}

	// onnxruntime's own view of the model agrees.
	requireRuntime(t)
	ortIn, ortOut, err := ort.GetInputOutputInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ours   []TensorInfo
		theirs []ort.InputOutputInfo
	}{{in, ortIn}, {out, ortOut}} {
		if len(c.ours) != len(c.theirs) {
			t.Fatalf("Describe found %d, onnxruntime %d", len(c.ours), len(c.theirs))
		}
		for i, o := range c.ours {
			th := c.theirs[i]
			if o.Name != th.Name || int(o.DType) != int(th.DataType) || !slices.Equal(o.Shape, []int64(th.Dimensions)) {
				t.Errorf("Describe: %v; onnxruntime: %v", o, th.String())
			}
		}
	}
}

// TestRealModelParity runs all-MiniLM-L6-v2 on "hello world" and compares
// with Python onnxruntime: last_hidden_state from the file as it is, and
// the hidden states exposed by ExposeOutputs against the same tensors
// exposed with the Python onnx package.
func TestRealModelParity(t *testing.T) {
	requireRuntime(t)
	path := requireModel(t, defaultModel)

	m, err := LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := m.HiddenStates()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 7 || hs[0] != "/embeddings/LayerNorm/Add_1_output_0" || hs[6] != "last_hidden_state" {
		t.Fatalf("HiddenStates() = %q; want 7 names from the embeddings LayerNorm to last_hidden_state", hs)
	}
	for i := 1; i < 6; i++ {
		if want := fmt.Sprintf("/encoder/layer.%d/output/LayerNorm/Add_1_output_0", i-1); hs[i] != want {
			t.Errorf("HiddenStates()[%d] = %q, want %q", i, hs[i], want)
		}
	}
	if n, err := m.NumLayers(); n != 6 || err != nil {
		t.Errorf("NumLayers() = %d, %v; want 6", n, err)
	}
	if h, err := m.HiddenSize(); h != 384 || err != nil {
		t.Errorf("HiddenSize() = %d, %v; want 384", h, err)
	}

	const mid = 3 // output of block 2
	ref := pythonReference(t, path, helloWorld, hs[mid])
	if v := ref.Header["onnxruntime"]; v != Version() {
		t.Logf("note: reference made with onnxruntime %v, Go uses %s", v, Version())
	}

	// The model file as it is.
	sess, err := NewSessionFromFile(path, []string{"input_ids", "attention_mask", "token_type_ids"}, []string{"last_hidden_state"}, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	plain, err := sess.Run(nil, bertInputs(helloWorld))
	if err != nil {
		t.Fatal(err)
	}
	wantLast := findRef(t, ref.Outputs, "last_hidden_state")
	if !slices.Equal(plain[0].Shape, wantLast.Shape) || !slices.Equal(plain[0].Shape, []int64{1, 4, 384}) {
		t.Fatalf("last_hidden_state shape %v, reference %v", plain[0].Shape, wantLast.Shape)
	}
	checkClose(t, "CLS of last_hidden_state", plain[0].Data[:384], wantLast.float32s()[:384], parityTol)
	checkClose(t, "last_hidden_state", plain[0].Data, wantLast.float32s(), parityTol)

	// Every hidden state at once, from the edited model in memory.
	if err := m.ExposeOutputs(hs...); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	all, err := NewSessionFromBytes(data, nil, hs, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	if got := all.Outputs(); len(got) != 7 || got[mid].String() != hs[mid]+" float32 [-1 -1 384]" {
		t.Errorf("exposed session outputs = %v", got)
	}
	out, err := all.Run(nil, bertInputs(helloWorld))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 7 {
		t.Fatalf("%d outputs, want 7", len(out))
	}
	if !all.direct.Load() || !sess.direct.Load() {
		t.Errorf("outputs declared [batch_size, sequence_length, 384] not written in place (direct = %v, %v)", sess.direct.Load(), all.direct.Load())
	}
	for k, o := range out {
		if !slices.Equal(o.Shape, []int64{1, 4, 384}) {
			t.Errorf("hidden state %d: shape %v, want [1 4 384]", k, o.Shape)
		}
	}
	if !slices.Equal(out[6].Data, plain[0].Data) {
		checkClose(t, "last hidden state of the exposed model vs the plain model", out[6].Data, plain[0].Data, 0)
	}
	wantMid := findRef(t, ref.ExposedOutputs, hs[mid])
	checkClose(t, hs[mid], out[mid].Data, wantMid.float32s(), parityTol)
	// The layers really differ from each other (the check above can fail).
	if slices.Equal(out[mid].Data, out[mid+1].Data) {
		t.Error("hidden states 3 and 4 are identical")
	}
}

// TestQuantizedHiddenStates checks the layer detection on the dynamically
// quantised exports, which insert DynamicQuantizeLinear nodes named after
// the LayerNorm outputs. These models are optional artifacts
// (scripts/setup.sh model NAME); the test reports when they are absent.
func TestQuantizedHiddenStates(t *testing.T) {
	for _, c := range []struct {
		name   string
		layers int
	}{{"all-minilm-l6-v2-q", 6}, {"e5-small-v2-q", 12}} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(cache.ModelDir(c.name), "model.onnx")
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				t.Skipf("optional model %s not pulled (scripts/setup.sh model %s)", path, c.name)
			}
			m, err := LoadModel(path)
			if err != nil {
				t.Fatal(err)
			}
			hs, err := m.HiddenStates()
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) != c.layers+1 || hs[len(hs)-1] != "last_hidden_state" || hs[0] != "/embeddings/LayerNorm/Add_1_output_0" {
				t.Errorf("HiddenStates() = %q", hs)
			}
			for i, h := range hs[1 : len(hs)-1] {
				if want := fmt.Sprintf("/encoder/layer.%d/output/LayerNorm/Add_1_output_0", i); h != want {
					t.Errorf("HiddenStates()[%d] = %q, want %q", i+1, h, want)
				}
			}

			// The exposed graph runs, and its last hidden state is the
			// model's output.
			requireRuntime(t)
			if err := m.ExposeOutputs(hs...); err != nil {
				t.Fatal(err)
			}
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			sess, err := NewSessionFromBytes(data, nil, nil, SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			out, err := sess.Run(nil, bertInputs(helloWorld))
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(hs) {
				t.Fatalf("%d outputs, want %d", len(out), len(hs))
			}
			plain, err := NewSessionFromFile(path, nil, nil, SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			want, err := plain.Run(nil, bertInputs(helloWorld))
			if err != nil {
				t.Fatal(err)
			}
			// Outputs keep the model's order: last_hidden_state first.
			checkClose(t, "last_hidden_state", out[0].Data, want[0].Data, parityTol)
		})
	}
}
