package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
	"github.com/headstart-ml/headstart/tokenize"
)

// exportTol bounds |p_graph − p_ref| for probabilities (and logits). The
// exported graph and the references pool the same float32 hidden states;
// they differ only in the order of float32 sums (pooling, norm, the D-long
// dot products of Gemm) and in float32 versus float64 head arithmetic, which
// moves logits of size O(1) by ~1e-6 at most and probabilities by less; 1e-5
// is also the bar issue 3 sets for `pipeline export` against `predict`.
const exportTol = 1e-5

// exportLogitTol bounds |z_graph − z_ref| for logits. They are not bounded
// like probabilities: the test heads give |z| up to ~10, where float32's
// relative rounding (6e-8) accumulated over D-long dot products and an MLP's
// layers reaches a few 1e-6; 5e-5 leaves a margin of ~10.
const exportLogitTol = 5e-5

// exportTexts is the test batch: different lengths, so that most rows are
// padded; row exportLeftPadded is padded on the left.
var exportTexts = []string{
	"hello world",
	"The movie was surprisingly good, with a clever script and warm performances.",
	"I lost my card yesterday; how do I block it before someone uses it?",
	"ok",
	"Terrible.",
}

const exportLeftPadded = 3

// exportFixture is the default model, a tokenized padded batch and every
// hidden state the plain backbone computes for it.
type exportFixture struct {
	path    string
	data    []byte   // model.onnx
	hidden  []string // HiddenStates()
	c       int      // hidden size
	b, t    int      // batch, sequence length
	inputs  []Int64Tensor
	mask    []int64
	states  [][]float32 // states[l] is hidden state l, (B,T,C)
	backErr error
}

var (
	exportOnce sync.Once
	exportFix  exportFixture
)

func loadExportFixture(t *testing.T) *exportFixture {
	t.Helper()
	requireRuntime(t)
	path := requireModel(t, defaultModel)
	tokPath := testutil.Artifact(t, filepath.Join(cache.ModelDir(defaultModel), "tokenizer.json"), "model "+defaultModel)
	exportOnce.Do(func() { exportFix.backErr = exportFix.load(path, tokPath) })
	if exportFix.backErr != nil {
		t.Fatal(exportFix.backErr)
	}
	return &exportFix
}

func (f *exportFixture) load(path, tokPath string) error {
	tok, err := tokenize.Load(tokPath, tokenize.Options{MaxLen: 128})
	if err != nil {
		return err
	}
	var encs []tokenize.Encoding
	for _, s := range exportTexts {
		e, err := tok.Encode(s)
		if err != nil {
			return err
		}
		encs = append(encs, e)
		f.t = max(f.t, len(e.IDs))
	}
	f.b = len(encs)
	shape := []int64{int64(f.b), int64(f.t)}
	ids := make([]int64, f.b*f.t)
	mask := make([]int64, f.b*f.t)
	types := make([]int64, f.b*f.t)
	for r, e := range encs {
		off := r * f.t
		if r == exportLeftPadded {
			off += f.t - len(e.IDs)
		}
		for i := range ids[r*f.t : (r+1)*f.t] {
			ids[r*f.t+i] = tok.PadID()
		}
		copy(ids[off:], e.IDs)
		copy(mask[off:], e.Mask)
		copy(types[off:], e.TypeIDs)
	}
	f.inputs = []Int64Tensor{{Shape: shape, Data: ids}, {Shape: shape, Data: mask}, {Shape: shape, Data: types}}
	f.mask = mask

	f.path = path
	if f.data, err = os.ReadFile(path); err != nil {
		return err
	}
	f.hidden, f.c, f.states, err = backboneStates(f.data, f.inputs)
	return err
}

// backboneStates runs an encoder with all its hidden states exposed and
// returns their names, the hidden size and their values, (B,T,C) each.
func backboneStates(model []byte, inputs []Int64Tensor) (hidden []string, c int, states [][]float32, err error) {
	m, err := ParseModel(model)
	if err != nil {
		return nil, 0, nil, err
	}
	if hidden, err = m.HiddenStates(); err != nil {
		return nil, 0, nil, err
	}
	if c, err = m.HiddenSize(); err != nil {
		return nil, 0, nil, err
	}
	if err := m.ExposeOutputs(hidden...); err != nil {
		return nil, 0, nil, err
	}
	data, err := m.Marshal()
	if err != nil {
		return nil, 0, nil, err
	}
	sess, err := NewSessionFromBytes(data, []string{"input_ids", "attention_mask", "token_type_ids"}, hidden, SessionOptions{})
	if err != nil {
		return nil, 0, nil, err
	}
	defer func() { err = errors.Join(err, sess.Close()) }()
	out, err := sess.Run(nil, inputs)
	if err != nil {
		return nil, 0, nil, err
	}
	for _, o := range out {
		states = append(states, o.Data)
	}
	return hidden, c, states, nil
}

// features pools and normalises the hidden states as extraction does.
func (f *exportFixture) features(pooling string, layers []int, normalize bool) []float32 {
	return goFeatures(f.states, f.mask, f.b, f.t, f.c, pooling, layers, normalize)
}

func goFeatures(states [][]float32, mask []int64, b, t, c int, pooling string, layers []int, normalize bool) []float32 {
	p, err := features.ParsePooling(pooling)
	if err != nil {
		panic(err)
	}
	var sel [][]float32
	for _, l := range layers {
		sel = append(sel, states[l])
	}
	x := make([]float32, b*len(layers)*c)
	features.PoolLayers(x, sel, mask, b, t, c, p)
	if normalize {
		features.NormalizeRows(x, len(layers)*c)
	}
	return x
}

// exportCase is one head to export. Its weights are drawn so that the
// probabilities are far from 0 and 1 (see randomHead).
type exportCase struct {
	name        string
	pooling     string
	layers      []int
	normalize   bool
	standardize bool
	widths      []int // hidden widths of an MLP; nil for a linear head
	k           int   // outputs of the last layer
	output      string
}

var exportCases = []exportCase{
	{name: "mean", pooling: "mean", layers: []int{6}, standardize: true, k: 5, output: "softmax"},
	{name: "cls normalized", pooling: "cls", layers: []int{6}, normalize: true, k: 5, output: "softmax"},
	{name: "max", pooling: "max", layers: []int{6}, standardize: true, k: 5, output: "softmax"},
	{name: "last sigmoid", pooling: "last", layers: []int{6}, standardize: true, k: 5, output: "sigmoid"},
	{name: "mean 4 layers normalized", pooling: "mean", layers: []int{3, 4, 5, 6}, normalize: true, standardize: true, k: 5, output: "softmax"},
	{name: "max 2 layers binary", pooling: "max", layers: []int{6, 1}, normalize: true, k: 1, output: "binary"},
	{name: "mean early layers mlp", pooling: "mean", layers: []int{0, 2}, normalize: true, standardize: true, widths: []int{16}, k: 5, output: "softmax"},
	{name: "last 2 layers mlp2 sigmoid", pooling: "last", layers: []int{2, 6}, standardize: true, widths: []int{32, 8}, k: 4, output: "sigmoid"},
	{name: "cls mlp", pooling: "cls", layers: []int{5}, widths: []int{12}, k: 3, output: "softmax"},
}

// randomHead draws a head for features x, (n,D), seeded by seed: Mean and
// Std near the features' own (so standardised values are O(1)), weights
// scaled to their input (so logits are O(1) and probabilities informative).
func randomHead(c exportCase, x []float32, n int, seed uint64) HeadSpec {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := len(x) / n
	spec := HeadSpec{Spec: features.Spec{Pooling: c.pooling, Layers: c.layers, Normalize: c.normalize}, Output: c.output}
	var sum, sumSq float64
	for _, v := range x {
		sum += float64(v)
		sumSq += float64(v) * float64(v)
	}
	sigma := math.Sqrt(sumSq/float64(len(x)) - (sum/float64(len(x)))*(sum/float64(len(x))))
	scale := math.Sqrt(sumSq / float64(len(x))) // rms of the layer's input
	if c.standardize {
		spec.Mean, spec.Std = make([]float32, d), make([]float32, d)
		for j := range d {
			var col float64
			for r := range n {
				col += float64(x[r*d+j])
			}
			spec.Mean[j] = float32(col/float64(n) + 0.3*sigma*rng.NormFloat64())
			spec.Std[j] = float32(sigma * (0.5 + rng.Float64()))
		}
		scale = 1.2
	}
	in := d
	for i, out := range append(slices.Clone(c.widths), c.k) {
		l := DenseLayer{W: make([]float32, out*in), B: make([]float32, out)}
		gain := 2.0
		if i > 0 {
			scale = 0.6 // rms of GELU(N(0, σ²)) for σ ≈ 1.5
		}
		for j := range l.W {
			l.W[j] = float32(gain * rng.NormFloat64() / (scale * math.Sqrt(float64(in))))
		}
		for j := range l.B {
			l.B[j] = float32(0.5 * rng.NormFloat64())
		}
		if i < len(c.widths) {
			l.Activation = "gelu"
		}
		spec.Dense = append(spec.Dense, l)
		in = out
	}
	return spec
}

// headForward computes spec's head on features x, (n,D), in float64, as
// head.Head.Predict does: standardise, dense layers with exact GELU, then
// softmax, sigmoid or binary.
func headForward(spec HeadSpec, x []float32, n int) (probs, logits []float64) {
	d := len(x) / n
	for r := range n {
		a := make([]float64, d)
		for j := range a {
			a[j] = float64(x[r*d+j])
			if spec.Mean != nil {
				a[j] = (a[j] - float64(spec.Mean[j])) / float64(spec.Std[j])
			}
		}
		for _, l := range spec.Dense {
			out := len(l.B)
			z := make([]float64, out)
			for o := range out {
				s := float64(l.B[o])
				for i, v := range a {
					s += float64(l.W[o*len(a)+i]) * v
				}
				if l.Activation == "gelu" {
					s = 0.5 * s * (1 + math.Erf(s/math.Sqrt2))
				}
				z[o] = s
			}
			a = z
		}
		logits = append(logits, a...)
		switch spec.Output {
		case "sigmoid":
			for _, v := range a {
				probs = append(probs, 1/(1+math.Exp(-v)))
			}
		case "binary":
			q := 1 / (1 + math.Exp(-a[0]))
			probs = append(probs, 1-q, q)
		default:
			mx := slices.Max(a)
			var s float64
			for _, v := range a {
				s += math.Exp(v - mx)
			}
			for _, v := range a {
				probs = append(probs, math.Exp(v-mx)/s)
			}
		}
	}
	return probs, logits
}

// checkClose64 is checkClose against a float64 reference; it returns the
// largest difference.
func checkClose64(t *testing.T, what string, got []float32, want []float64, tol float64) float64 {
	t.Helper()
	w := make([]float32, len(want))
	worst := 0.0
	for i, v := range want {
		w[i] = float32(v)
		if i < len(got) {
			worst = max(worst, math.Abs(float64(got[i])-v))
		}
	}
	checkClose(t, what, got, w, tol)
	return worst
}

// requireInformative fails when the probabilities are so close to 0 or 1
// that a wrong graph could pass: at least one per row must lie in
// [0.02, 0.98].
func requireInformative(t *testing.T, probs []float64, rows int) {
	t.Helper()
	mid := 0
	for _, p := range probs {
		if p >= 0.02 && p <= 0.98 {
			mid++
		}
	}
	if mid < rows {
		t.Fatalf("only %d of %d probabilities in [0.02, 0.98]; the test head is saturated: %v", mid, len(probs), probs)
	}
}

// exportCaseModel exports case c and returns the model, its bytes and the
// spec.
func (f *exportFixture) export(t *testing.T, c exportCase, seed uint64) (*Model, []byte, HeadSpec) {
	t.Helper()
	x := f.features(c.pooling, c.layers, c.normalize)
	spec := randomHead(c, x, f.b, seed)
	m, err := ParseModel(f.data)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AppendHead(spec); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return m, data, spec
}

// runExported runs an exported classifier on the fixture's batch.
func (f *exportFixture) runExported(t *testing.T, data []byte) (probs, logits Float32Tensor) {
	t.Helper()
	sess, err := NewSessionFromBytes(data, nil, nil, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if got := names(sess.Inputs()); !slices.Equal(got, []string{"input_ids", "attention_mask", "token_type_ids"}) {
		t.Errorf("inputs = %v", got)
	}
	if got := names(sess.Outputs()); !slices.Equal(got, []string{OutputProbabilities, OutputLogits}) {
		t.Errorf("outputs = %v", got)
	}
	out, err := sess.Run(nil, f.inputs)
	if err != nil {
		t.Fatal(err)
	}
	return out[0], out[1]
}

// TestAppendHeadParity exports heads of every pooling, layer mix, output and
// depth on the default model and checks the graph's probabilities against
// the Go pipeline: the plain backbone's hidden states, features.PoolLayers
// and NormalizeRows, and the head computed in float64.
func TestAppendHeadParity(t *testing.T) {
	f := loadExportFixture(t)
	orig, err := ParseModel(f.data)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range exportCases {
		t.Run(c.name, func(t *testing.T) {
			m, data, spec := f.export(t, c, uint64(i))
			x := f.features(c.pooling, c.layers, c.normalize)
			wantP, wantZ := headForward(spec, x, f.b)
			requireInformative(t, wantP, f.b)
			probs, logits := f.runExported(t, data)
			cols := c.k
			if c.output == "binary" {
				cols = 2
			}
			if !slices.Equal(probs.Shape, []int64{int64(f.b), int64(cols)}) || !slices.Equal(logits.Shape, []int64{int64(f.b), int64(c.k)}) {
				t.Fatalf("shapes: probabilities %v, logits %v; want [%d %d], [%d %d]", probs.Shape, logits.Shape, f.b, cols, f.b, c.k)
			}
			dp := checkClose64(t, "probabilities", probs.Data, wantP, exportTol)
			dz := checkClose64(t, "logits", logits.Data, wantZ, exportLogitTol)
			t.Logf("%s: max |Δp| %.2g, max |Δlogit| %.2g (p range %.3f..%.3f)", c.name, dp, dz, slices.Min(wantP), slices.Max(wantP))

			// The opset and the backbone's nodes are the original's; the
			// blocks after the last pooled layer are gone.
			if got, want := m.Proto.GetOpsetImport()[0].GetVersion(), orig.Proto.GetOpsetImport()[0].GetVersion(); got != want {
				t.Errorf("opset %d, want the original %d", got, want)
			}
			last := slices.Max(c.layers) // hidden state l is block l-1's output
			for _, n := range m.Proto.Graph.Node {
				if strings.Contains(n.GetName(), fmt.Sprintf("/encoder/layer.%d/", last)) {
					t.Errorf("node %s survived; hidden state %d is the last one pooled", n.GetName(), last)
					break
				}
			}
			origByName := make(map[string]*onnxpb.NodeProto)
			for _, n := range orig.Proto.Graph.Node {
				origByName[n.GetName()] = n
			}
			for _, n := range m.Proto.Graph.Node {
				if o := origByName[n.GetName()]; o != nil && !proto.Equal(o, n) {
					t.Errorf("backbone node %s changed", n.GetName())
				}
			}
		})
	}
}

// TestAppendHeadLabels checks the metadata and declared outputs.
func TestAppendHeadLabels(t *testing.T) {
	p := synth{layers: 2, hidden: 4, vocab: 10, fixedHidden: true}.build()
	p.MetadataProps = []*onnxpb.StringStringEntryProto{{Key: proto.String("fingerprint"), Value: proto.String("old")}}
	m := &Model{Proto: p}
	spec := HeadSpec{
		Spec: features.Spec{Layers: []int{2}}, Output: "binary", Labels: []string{"negative", "positive"},
		Dense:    []DenseLayer{{W: []float32{1, 2, 3, 4}, B: []float32{0}}},
		Metadata: map[string]string{"fingerprint": "new", "version": "1"},
	}
	if err := m.AppendHead(spec); err != nil {
		t.Fatal(err)
	}
	meta := make(map[string]string)
	var keys []string
	for _, e := range m.Proto.MetadataProps {
		meta[e.GetKey()] = e.GetValue()
		keys = append(keys, e.GetKey())
	}
	if want := []string{"fingerprint", MetadataHead, MetadataLabels, "version"}; !slices.Equal(keys, want) {
		t.Errorf("metadata keys %q, want %q", keys, want)
	}
	if meta["fingerprint"] != "new" || meta["version"] != "1" || meta[MetadataLabels] != `["negative","positive"]` {
		t.Errorf("metadata %q", meta)
	}
	wantHead := `{"pooling":"mean","layers":[2],"hidden_size":4,"normalize":false,"standardize":false,"dense":[{"in":4,"out":1,"activation":"identity"}],"output":"binary"}`
	if meta[MetadataHead] != wantHead {
		t.Errorf("%s = %s\nwant %s", MetadataHead, meta[MetadataHead], wantHead)
	}
	var got []string
	for _, o := range m.Outputs() {
		got = append(got, o.String())
	}
	if want := []string{"probabilities float32 [-1 2]", "logits float32 [-1 1]"}; !slices.Equal(got, want) {
		t.Errorf("outputs %q, want %q", got, want)
	}
	if d := m.Proto.Graph.Output[0].GetType().GetTensorType().GetShape().GetDim()[0]; d.GetDimParam() != "batch_size" {
		t.Errorf("batch dimension %v, want batch_size from the inputs", d)
	}
	if got := names(m.Inputs()); !slices.Equal(got, []string{"input_ids", "attention_mask"}) {
		t.Errorf("inputs %v", got)
	}
}

// TestAppendHeadSynthetic appends heads to the synthetic encoder at opsets
// 13 and 18, where Unsqueeze and ReduceSum (13) and the other reductions
// (18) take their axes as inputs, and checks them against the Go pipeline,
// with a batch that has right, left and complete padding.
func TestAppendHeadSynthetic(t *testing.T) {
	requireRuntime(t)
	s := synth{layers: 3, hidden: 4, vocab: 10, fixedHidden: true}
	const b, tl = 4, 4
	shape := []int64{b, tl}
	ids := Int64Tensor{Shape: shape, Data: make([]int64, b*tl)}
	mask := Int64Tensor{Shape: shape, Data: []int64{
		1, 1, 1, 1,
		1, 1, 1, 0,
		0, 0, 1, 1,
		0, 0, 0, 0,
	}}
	for i := range ids.Data {
		ids.Data[i] = int64((i*7 + 3) % s.vocab)
	}
	states := s.want(ids.Data, mask.Data)
	for _, opset := range []int64{13, 18} {
		for i, pooling := range poolingChoices {
			t.Run(fmt.Sprintf("opset %d %s", opset, pooling), func(t *testing.T) {
				p := s.build()
				p.IrVersion = proto.Int64(9)
				p.OpsetImport[0].Version = proto.Int64(opset)
				m := &Model{Proto: p}
				// Max pooling puts −1e9 in the all-padding row; normalisation
				// keeps that row's features O(1).
				c := exportCase{pooling: pooling, layers: []int{3, 0}, normalize: pooling == "max", standardize: true, widths: []int{6}, k: 3, output: "softmax"}
				x := goFeatures(states, mask.Data, b, tl, s.hidden, pooling, c.layers, c.normalize)
				spec := randomHead(c, x, b, uint64(100+i))
				if err := m.AppendHead(spec); err != nil {
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
				out, err := sess.Run(nil, []Int64Tensor{ids, mask})
				if err != nil {
					t.Fatal(err)
				}
				wantP, wantZ := headForward(spec, x, b)
				checkClose64(t, "probabilities", out[0].Data, wantP, exportTol)
				checkClose64(t, "logits", out[1].Data, wantZ, exportLogitTol)
			})
		}
	}
}

// TestAppendHeadQuantized appends a head to the dynamically quantised
// exports (DynamicQuantizeLinear after each LayerNorm, 12 layers for e5).
// These models are optional artifacts (scripts/setup.sh model NAME); the
// test reports when they are absent.
func TestAppendHeadQuantized(t *testing.T) {
	f := loadExportFixture(t) // for its batch; both models use BERT's uncased vocabulary
	for _, name := range []string{"all-minilm-l6-v2-q", "e5-small-v2-q"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(cache.ModelDir(name), "model.onnx")
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				t.Skipf("optional model %s not pulled (scripts/setup.sh model %s)", path, name)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			hidden, c, states, err := backboneStates(data, f.inputs)
			if err != nil {
				t.Fatal(err)
			}
			n := len(hidden)
			ec := exportCase{pooling: "mean", layers: []int{n - 3, n - 2, n - 1}, normalize: true, standardize: true, widths: []int{8}, k: 5, output: "softmax"}
			x := goFeatures(states, f.mask, f.b, f.t, c, ec.pooling, ec.layers, ec.normalize)
			spec := randomHead(ec, x, f.b, 7)
			m, err := ParseModel(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.AppendHead(spec); err != nil {
				t.Fatal(err)
			}
			exported, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			probs, logits := f.runExported(t, exported)
			wantP, wantZ := headForward(spec, x, f.b)
			requireInformative(t, wantP, f.b)
			checkClose64(t, "probabilities", probs.Data, wantP, exportTol)
			checkClose64(t, "logits", logits.Data, wantZ, exportLogitTol)
		})
	}
}

// refExport is what scripts/ref_export.py writes.
type refExport struct {
	Header map[string]any `json:"header"`
	Models []struct {
		Path     string            `json:"path"`
		Checker  string            `json:"checker"`
		Inputs   []string          `json:"inputs"`
		Metadata map[string]string `json:"metadata"`
		Outputs  []refTensor       `json:"outputs"`
		Numpy    struct {
			Probabilities []float64 `json:"probabilities"`
			Logits        []float64 `json:"logits"`
		} `json:"numpy"`
	} `json:"models"`
}

// TestAppendHeadPython writes exported classifiers to files and runs them in
// Python onnxruntime (scripts/ref_export.py), which also validates them with
// onnx.checker (full_check) and computes each head independently in numpy
// from the original backbone's hidden states. Go's session, Python's session
// and numpy agree to exportTol (logits to exportLogitTol).
func TestAppendHeadPython(t *testing.T) {
	f := loadExportFixture(t)
	py := testutil.VenvPython(t)
	dir := t.TempDir()
	picks := []int{0, 4, 7} // mean; 4-layer concat with normalisation; 2-layer MLP on "last" with sigmoid
	labels := []string{"a", "b", "c", "d", "e"}
	feeds := map[string]refTensor{}
	for i, name := range []string{"input_ids", "attention_mask", "token_type_ids"} {
		in := f.inputs[i]
		r := refTensor{Name: name, Shape: in.Shape}
		for _, v := range in.Data {
			r.Data = append(r.Data, float64(v))
		}
		feeds[name] = r
	}
	feedsPath := filepath.Join(dir, "feeds.json")
	writeJSON(t, feedsPath, feeds)
	args := []string{filepath.Join("..", "scripts", "ref_export.py"), "--feeds", feedsPath, "--out", filepath.Join(dir, "out.json"), "--backbone", f.path}
	var models []string
	var goOut [][2]Float32Tensor
	for _, i := range picks {
		c := exportCases[i]
		x := f.features(c.pooling, c.layers, c.normalize)
		spec := randomHead(c, x, f.b, uint64(i))
		if c.k == len(labels) {
			spec.Labels = labels
		}
		m, err := ParseModel(f.data)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AppendHead(spec); err != nil {
			t.Fatal(err)
		}
		data, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("classifier%d.onnx", i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, z := f.runExported(t, data)
		goOut = append(goOut, [2]Float32Tensor{p, z})
		models = append(models, path)

		var hidden []string
		for _, l := range c.layers {
			hidden = append(hidden, f.hidden[l])
		}
		type dense struct {
			W          []float32 `json:"w"`
			B          []float32 `json:"b"`
			Activation string    `json:"activation"`
		}
		js := map[string]any{
			"pooling": c.pooling, "hidden": hidden, "normalize": c.normalize,
			"mean": spec.Mean, "std": spec.Std, "output": c.output,
		}
		var ds []dense
		for _, d := range spec.Dense {
			act := d.Activation
			if act == "" {
				act = "identity"
			}
			ds = append(ds, dense{d.W, d.B, act})
		}
		js["dense"] = ds
		specPath := filepath.Join(dir, fmt.Sprintf("spec%d.json", i))
		writeJSON(t, specPath, js)
		args = append(args, "--spec", specPath)
	}
	args = append(args, models...)
	cmd := exec.Command(py, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", py, strings.Join(args, " "), err, msg)
	}
	var ref refExport
	readJSON(t, filepath.Join(dir, "out.json"), &ref)
	t.Logf("reference: %v", ref.Header)
	if len(ref.Models) != len(picks) {
		t.Fatalf("reference has %d models, want %d", len(ref.Models), len(picks))
	}
	for j, i := range picks {
		c, r := exportCases[i], ref.Models[j]
		t.Run(c.name, func(t *testing.T) {
			if r.Checker != "ok" {
				t.Errorf("onnx.checker: %q", r.Checker)
			}
			if !slices.Equal(r.Inputs, []string{"input_ids", "attention_mask", "token_type_ids"}) {
				t.Errorf("Python sees inputs %v", r.Inputs)
			}
			if c.k == len(labels) && r.Metadata[MetadataLabels] != `["a","b","c","d","e"]` {
				t.Errorf("Python sees metadata %q", r.Metadata)
			}
			if len(r.Outputs) != 2 || r.Outputs[0].Name != OutputProbabilities || r.Outputs[1].Name != OutputLogits {
				t.Fatalf("Python outputs %v", r.Outputs)
			}
			p, z := goOut[j][0], goOut[j][1]
			if !slices.Equal(r.Outputs[0].Shape, p.Shape) {
				t.Errorf("Python probabilities shape %v, Go %v", r.Outputs[0].Shape, p.Shape)
			}
			dp := checkClose64(t, "probabilities (Go session vs Python session)", p.Data, r.Outputs[0].Data, exportTol)
			dz := checkClose64(t, "logits (Go session vs Python session)", z.Data, r.Outputs[1].Data, exportLogitTol)
			np := checkClose64(t, "probabilities (Go session vs numpy head on Python hidden states)", p.Data, r.Numpy.Probabilities, exportTol)
			nz := checkClose64(t, "logits (Go session vs numpy head on Python hidden states)", z.Data, r.Numpy.Logits, exportLogitTol)
			t.Logf("%s: vs Python ORT |Δp| %.2g |Δz| %.2g; vs numpy |Δp| %.2g |Δz| %.2g", c.name, dp, dz, np, nz)
		})
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAppendHeadErrors: specs that do not fit the model give clear errors
// and leave the model unchanged.
func TestAppendHeadErrors(t *testing.T) {
	const h = 4 // synth hidden size; 3 layers, so hidden states 0..3
	w := func(out, in int) []float32 { return make([]float32, out*in) }
	ok := func() HeadSpec {
		return HeadSpec{Spec: features.Spec{Layers: []int{3}}, Dense: []DenseLayer{{W: w(2, h), B: make([]float32, 2)}}}
	}
	with := func(edit func(*HeadSpec)) HeadSpec { s := ok(); edit(&s); return s }
	tests := []struct {
		name   string
		spec   HeadSpec
		edit   func(*onnxpb.ModelProto)
		target error
		errHas string
	}{
		{"unknown pooling", with(func(s *HeadSpec) { s.Pooling = "avg" }), nil, ErrBadHead, `pooling "avg" unknown; want one of mean, cls, max, last`},
		{"unknown output", with(func(s *HeadSpec) { s.Output = "argmax" }), nil, ErrBadHead, `output "argmax" unknown; want one of softmax, sigmoid, binary`},
		{"unknown activation", with(func(s *HeadSpec) { s.Dense[0].Activation = "relu" }), nil, ErrBadHead, `dense layer 0: activation "relu" unknown; want one of identity, gelu`},
		{"layer out of range", with(func(s *HeadSpec) { s.Layers = []int{4} }), nil, ErrBadHead, "layer 4 out of range; model has 4 hidden states: 0..3"},
		{"negative layer", with(func(s *HeadSpec) { s.Layers = []int{-1} }), nil, ErrBadHead, "layer -1 out of range"},
		{"empty layers", with(func(s *HeadSpec) { s.Layers = []int{} }), nil, ErrBadHead, "no layers given"},
		{"repeated layer", with(func(s *HeadSpec) { s.Layers = []int{1, 1} }), nil, ErrBadHead, "layer 1 given twice"},
		{"empty head", with(func(s *HeadSpec) { s.Dense = nil }), nil, ErrBadHead, "no dense layers"},
		{"W shape vs D", with(func(s *HeadSpec) { s.Layers = []int{0, 3} }), nil, ErrBadHead,
			"dense layer 0: W has 8 values; want 2 outputs (len B) × 8 inputs (D = 2 layers × hidden size 4) = 16"},
		{"W shape vs previous layer", with(func(s *HeadSpec) {
			s.Dense[0].Activation = "gelu"
			s.Dense = append(s.Dense, DenseLayer{W: w(3, 3), B: make([]float32, 3)})
		}), nil, ErrBadHead, "dense layer 1: W has 9 values; want 3 outputs (len B) × 2 inputs (layer 0's outputs) = 6"},
		{"empty bias", with(func(s *HeadSpec) { s.Dense[0].B = nil }), nil, ErrBadHead, "dense layer 0: empty bias B"},
		{"NaN weight", with(func(s *HeadSpec) { s.Dense[0].W[5] = float32(math.NaN()) }), nil, ErrBadHead, "dense layer 0 W[5] = NaN; want a finite value"},
		{"mean without std", with(func(s *HeadSpec) { s.Mean = make([]float32, h) }), nil, ErrBadHead, "needs both Mean and Std"},
		{"mean length", with(func(s *HeadSpec) { s.Mean, s.Std = make([]float32, 3), make([]float32, 3) }), nil, ErrBadHead,
			"Mean has 3 values and Std 3; want D = 4 each"},
		{"zero std", with(func(s *HeadSpec) { s.Mean, s.Std = make([]float32, h), []float32{1, 1, 0, 1} }), nil, ErrBadHead,
			"Std[2] = 0; want a positive finite value"},
		{"binary with 2 logits", with(func(s *HeadSpec) { s.Output = "binary" }), nil, ErrBadHead, "output binary takes one logit; the last dense layer has 2 outputs"},
		{"labels count", with(func(s *HeadSpec) { s.Labels = []string{"a", "b", "c"} }), nil, ErrBadHead, "3 labels for 2 probability columns"},
		{"reserved metadata", with(func(s *HeadSpec) { s.Metadata = map[string]string{MetadataLabels: "x"} }), nil, ErrBadHead, `metadata key "labels" is reserved`},
		{"opset 10", ok(), func(p *onnxpb.ModelProto) { p.OpsetImport[0].Version = proto.Int64(10) }, ErrUnsupportedGraph, "opset 10; appending a head needs opset 11 or later"},
		{"no attention mask", ok(), func(p *onnxpb.ModelProto) { p.Graph.Input[1].Name = proto.String("mask") }, ErrUnsupportedGraph,
			"no input attention_mask, which pooling needs; the model's inputs are input_ids, mask"},
		{"not an encoder", ok(), func(p *onnxpb.ModelProto) {
			// Neither node names nor parameter names (which a dynamo export's
			// module names are rebuilt from) say LayerNorm.
			for _, n := range p.Graph.Node {
				n.Name = proto.String(strings.ReplaceAll(n.GetName(), "LayerNorm", "Norm"))
				for i, in := range n.Input {
					n.Input[i] = strings.ReplaceAll(in, "LayerNorm", "Norm")
				}
			}
			for _, t := range p.Graph.Initializer {
				t.Name = proto.String(strings.ReplaceAll(t.GetName(), "LayerNorm", "Norm"))
			}
		}, ErrUnsupportedGraph, "no nodes named */embeddings/LayerNorm/*"},
		{"name clash", ok(), func(p *onnxpb.ModelProto) {
			p.Graph.Initializer = append(p.Graph.Initializer, floatInit(headPrefix+"dense0/weight", []int64{1}, []float32{0}))
		}, ErrUnsupportedGraph, `already has tensors or nodes named ["headstart/head/dense0/weight"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := synth{layers: 3, hidden: h, vocab: 10, fixedHidden: true}.build()
			if tt.edit != nil {
				tt.edit(p)
			}
			before := proto.Clone(p)
			err := (&Model{Proto: p}).AppendHead(tt.spec)
			if !errors.Is(err, tt.target) || !strings.Contains(fmt.Sprint(err), tt.errHas) {
				t.Errorf("AppendHead error = %v; want %v containing %q", err, tt.target, tt.errHas)
			}
			if !proto.Equal(p, before) {
				t.Error("a failed AppendHead changed the model")
			}
		})
	}

	// Appending twice is refused: the second head's names clash.
	m := &Model{Proto: synth{layers: 3, hidden: h, vocab: 10, fixedHidden: true}.build()}
	if err := m.AppendHead(ok()); err != nil {
		t.Fatal(err)
	}
	if err := m.AppendHead(ok()); !errors.Is(err, ErrUnsupportedGraph) || !strings.Contains(err.Error(), "was a head appended already?") {
		t.Errorf("second AppendHead error = %v; want a name clash", err)
	}
}
