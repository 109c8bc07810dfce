package onnx

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/lora"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
	"github.com/headstart-ml/headstart/tokenize"
)

// blockWriteTol bounds |edited graph − lora.Block| on the output of an
// edited block: both compute the same float32 block on the same input and
// differ in the order of their sums and in erf/exp approximations, which on
// hidden states of magnitude up to ~10 is a few 1e-6 (lora's own parity test
// against the unedited graph uses the same bound).
const blockWriteTol = 1e-4

// blockWriteEffect is the least max |edited − original| the perturbation
// must cause in last_hidden_state, so that a write that does nothing fails.
// The perturbation moves every weight by up to 0.01, which moves the output
// by ~0.1.
const blockWriteEffect = 1e-3

// perturbBlock returns a copy of bw with every weight moved by
// 0.01·sin(k + seed), k the value's index in its slice.
func perturbBlock(bw BlockWeights, seed float64) BlockWeights {
	p := func(v []float32) []float32 {
		out := make([]float32, len(v))
		for k, x := range v {
			out[k] = x + float32(0.01*math.Sin(float64(k)+seed))
		}
		return out
	}
	for _, l := range []*LinearWeights{&bw.Query, &bw.Key, &bw.Value, &bw.AttentionOutput, &bw.Intermediate, &bw.Output} {
		l.W, l.B = p(l.W), p(l.B)
	}
	for _, n := range []*LayerNormWeights{&bw.AttentionNorm, &bw.OutputNorm} {
		n.Gamma, n.Beta = p(n.Gamma), p(n.Beta)
	}
	return bw
}

// weightsDiffer describes the first difference between the weights and
// geometry of a and b, compared exactly (NaN differs from itself); "" if
// there is none. Initialiser names are not compared.
func weightsDiffer(a, b BlockWeights) string {
	if a.Layer != b.Layer || a.Hidden != b.Hidden || a.IntermediateSize != b.IntermediateSize || a.Heads != b.Heads || a.HeadSize != b.HeadSize {
		return fmt.Sprintf("geometry %d %d %d %d %d vs %d %d %d %d %d", a.Layer, a.Hidden, a.IntermediateSize, a.Heads, a.HeadSize,
			b.Layer, b.Hidden, b.IntermediateSize, b.Heads, b.HeadSize)
	}
	vec := func(what string, x, y []float32) string {
		if len(x) != len(y) {
			return fmt.Sprintf("%s: %d vs %d values", what, len(x), len(y))
		}
		for k := range x {
			if x[k] != y[k] {
				return fmt.Sprintf("%s[%d]: %v vs %v", what, k, x[k], y[k])
			}
		}
		return ""
	}
	la := []LinearWeights{a.Query, a.Key, a.Value, a.AttentionOutput, a.Intermediate, a.Output}
	lb := []LinearWeights{b.Query, b.Key, b.Value, b.AttentionOutput, b.Intermediate, b.Output}
	for k, field := range []string{"Query", "Key", "Value", "AttentionOutput", "Intermediate", "Output"} {
		x, y := la[k], lb[k]
		if x.In != y.In || x.Out != y.Out || x.WeightTransposed != y.WeightTransposed {
			return fmt.Sprintf("%s: %d → %d (transposed %v) vs %d → %d (%v)", field, x.In, x.Out, x.WeightTransposed, y.In, y.Out, y.WeightTransposed)
		}
		if d := vec(field+".W", x.W, y.W) + vec(field+".B", x.B, y.B); d != "" {
			return d
		}
	}
	for _, n := range []struct {
		field string
		x, y  LayerNormWeights
	}{{"AttentionNorm", a.AttentionNorm, b.AttentionNorm}, {"OutputNorm", a.OutputNorm, b.OutputNorm}} {
		if n.x.Eps != n.y.Eps {
			return fmt.Sprintf("%s.Eps: %v vs %v", n.field, n.x.Eps, n.y.Eps)
		}
		if d := vec(n.field+".Gamma", n.x.Gamma, n.y.Gamma) + vec(n.field+".Beta", n.x.Beta, n.y.Beta); d != "" {
			return d
		}
	}
	return ""
}

// mustBlock reads block i or fails the test.
func mustBlock(t *testing.T, m *Model, i int) BlockWeights {
	t.Helper()
	bw, err := m.BlockWeights(i)
	if err != nil {
		t.Fatalf("BlockWeights(%d): %v", i, err)
	}
	return bw
}

// reparse marshals m and parses the bytes again.
func reparse(t *testing.T, m *Model) *Model {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	return m2
}

// TestSetBlockWeightsSynthetic writes perturbed weights into every block of
// the synthetic graphs of block_test.go (MatMul, Transpose, Gemm, fused
// LayerNorm, Constant nodes) and reads them back exactly, twice, with the
// other block unchanged and no initialiser left behind.
func TestSetBlockWeightsSynthetic(t *testing.T) {
	base := blockSynth{layers: 2, hidden: 8, heads: 2, inter: 12}
	variants := map[string]func(*blockSynth){
		"torch.onnx": func(*blockSynth) {},
		"transposed": func(s *blockSynth) { s.transposed = true },
		"gemm":       func(s *blockSynth) { s.gemm = true },
		"fused norm": func(s *blockSynth) { s.fusedLN = true },
		"constants":  func(s *blockSynth) { s.constNodes, s.transposed = true, true },
	}
	for name, edit := range variants {
		t.Run(name, func(t *testing.T) {
			s := base
			edit(&s)
			for l := range s.layers {
				m := &Model{Proto: s.build()}
				other := mustBlock(t, m, 1-l)
				nInit, nNode := len(m.Proto.Graph.Initializer), len(m.Proto.Graph.Node)
				for round, seed := range []float64{1, 2} {
					want := perturbBlock(mustBlock(t, m, l), seed)
					if err := m.SetBlockWeights(want); err != nil {
						t.Fatalf("round %d: SetBlockWeights(%d): %v", round, l, err)
					}
					got := mustBlock(t, m, l)
					if d := weightsDiffer(got, want); d != "" {
						t.Errorf("round %d: block %d read back differs: %s", round, l, d)
					}
					if !strings.HasPrefix(got.Query.WeightName, "headstart/layer.") || !strings.HasPrefix(got.OutputNorm.BetaName, "headstart/layer.") {
						t.Errorf("round %d: block %d reads %q, %q; want new initialisers", round, l, got.Query.WeightName, got.OutputNorm.BetaName)
					}
					if d := weightsDiffer(mustBlock(t, reparse(t, m), l), want); d != "" {
						t.Errorf("round %d: block %d after Marshal and ParseModel differs: %s", round, l, d)
					}
					if d := weightsDiffer(mustBlock(t, m, 1-l), other); d != "" {
						t.Errorf("round %d: writing block %d changed block %d: %s", round, l, 1-l, d)
					}
				}
				// 16 new initialisers replace 16 old ones (Constant nodes
				// where the graph had them: those are removed instead).
				g := m.Proto.Graph
				if s.constNodes {
					if len(g.Node) != nNode-16 || len(g.Initializer) != nInit+16 {
						t.Errorf("%d nodes, %d initialisers; want %d, %d (16 Constant nodes replaced by initialisers)", len(g.Node), len(g.Initializer), nNode-16, nInit+16)
					}
				} else if len(g.Node) != nNode || len(g.Initializer) != nInit {
					t.Errorf("%d nodes, %d initialisers; want %d, %d as before", len(g.Node), len(g.Initializer), nNode, nInit)
				}
			}
		})
	}
}

// TestSetBlockWeightsIRv3: before IR version 4 every initialiser is also
// a graph input; the new ones must be declared, and the replaced ones' inputs
// removed.
func TestSetBlockWeightsIRv3(t *testing.T) {
	s := blockSynth{layers: 2, hidden: 8, heads: 2, inter: 12}
	p := s.build()
	p.IrVersion = proto.Int64(3)
	for _, init := range p.Graph.Initializer {
		dims := make([]any, len(init.Dims))
		for i, d := range init.Dims {
			dims[i] = d
		}
		p.Graph.Input = append(p.Graph.Input, valueInfo(init.GetName(), onnxpb.TensorProto_DataType(init.GetDataType()), dims...))
	}
	m := &Model{Proto: p}
	want := perturbBlock(mustBlock(t, m, 1), 5)
	if err := m.SetBlockWeights(want); err != nil {
		t.Fatal(err)
	}
	if d := weightsDiffer(mustBlock(t, m, 1), want); d != "" {
		t.Errorf("read back differs: %s", d)
	}
	inputs := make(map[string]bool)
	for _, vi := range p.Graph.Input {
		inputs[vi.GetName()] = true
	}
	for _, init := range p.Graph.Initializer {
		if !inputs[init.GetName()] {
			t.Errorf("initialiser %q is not a graph input", init.GetName())
		}
		delete(inputs, init.GetName())
	}
	delete(inputs, "input_ids")
	delete(inputs, "attention_mask")
	if len(inputs) > 0 {
		t.Errorf("graph inputs %v are neither initialisers nor the model's inputs", inputs)
	}
}

// TestSetBlockWeightsShared: exporters share constants between nodes and
// layers. Writing one block must not change another block, or another node
// of the same block, that reads the same tensor.
func TestSetBlockWeightsShared(t *testing.T) {
	s := blockSynth{layers: 2, hidden: 8, heads: 2, inter: 12, transposed: true}
	p := s.build()
	g := p.Graph
	byName := make(map[string]*onnxpb.NodeProto)
	for _, n := range g.Node {
		byName[n.GetName()] = n
	}
	// Layer 1's query reads layer 0's Transpose; layer 1's LayerNorms both
	// read layer 0's attention LayerNorm γ; layer 1's key bias is layer 0's.
	byName["/encoder/layer.1/attention/self/query/MatMul"].Input[1] = "/encoder/layer.0/attention/self/query/Transpose_output_0"
	byName["/encoder/layer.1/attention/output/LayerNorm/Mul"].Input[1] = "encoder.layer.0.attention.output.LayerNorm.weight"
	byName["/encoder/layer.1/output/LayerNorm/Mul"].Input[1] = "encoder.layer.0.attention.output.LayerNorm.weight"
	byName["/encoder/layer.1/attention/self/key/Add"].Input[0] = "encoder.layer.0.attention.self.key.bias"
	m := &Model{Proto: p}
	before := []BlockWeights{mustBlock(t, m, 0), mustBlock(t, m, 1)}
	if !slices.Equal(before[0].Query.W, before[1].Query.W) || !slices.Equal(before[0].Key.B, before[1].Key.B) ||
		!slices.Equal(before[1].AttentionNorm.Gamma, before[1].OutputNorm.Gamma) {
		t.Fatal("test setup: layer 1 does not read layer 0's tensors")
	}

	for round, seed := range []float64{3, 4} {
		want := perturbBlock(before[1], seed)
		if err := m.SetBlockWeights(want); err != nil {
			t.Fatal(err)
		}
		if d := weightsDiffer(mustBlock(t, m, 0), before[0]); d != "" {
			t.Errorf("round %d: writing block 1 changed block 0: %s", round, d)
		}
		got := mustBlock(t, m, 1)
		if d := weightsDiffer(got, want); d != "" {
			t.Errorf("round %d: block 1 read back differs: %s", round, d)
		}
		if got.AttentionNorm.GammaName == got.OutputNorm.GammaName {
			t.Errorf("round %d: both LayerNorms of block 1 read %q; want one initialiser each", round, got.AttentionNorm.GammaName)
		}
		if d := weightsDiffer(mustBlock(t, reparse(t, m), 1), want); d != "" {
			t.Errorf("round %d: block 1 after Marshal and ParseModel differs: %s", round, d)
		}
	}
	// Layer 1's query got its own Transpose (once, not once per call), and
	// layer 0's still reads the original weight.
	var added int
	for _, n := range m.Proto.Graph.Node {
		if strings.HasPrefix(n.GetName(), "headstart/") {
			added++
			if n.GetOpType() != "Transpose" || n.GetName() != "headstart/layer.1/attention.self.query.weight/Transpose" {
				t.Errorf("added node %s %q", n.GetOpType(), n.GetName())
			}
		}
	}
	if added != 1 {
		t.Errorf("%d nodes added; want 1 Transpose", added)
	}
	if q := mustBlock(t, m, 0).Query.WeightName; q != before[0].Query.WeightName {
		t.Errorf("block 0's query reads %q; want %q", q, before[0].Query.WeightName)
	}
}

// blockWriteFixture is all-MiniLM-L6-v2, a padded batch of real sentences
// and the hidden states the unedited graph computes for it.
type blockWriteFixture struct {
	data   []byte   // model.onnx
	hidden []string // HiddenStates()
	c      int
	b, t   int
	lens   []int
	inputs []Int64Tensor
	states [][]float32 // states[l] is hidden state l, (B,T,C)
	err    error
}

var (
	blockWriteOnce sync.Once
	blockWriteFix  blockWriteFixture
)

// blockWriteSentences have different lengths, so that the batch is padded
// (on the right, as lora.Padded has it).
var blockWriteSentences = []string{
	"hello world",
	"The film is a charming, funny and ultimately moving portrait of a family that refuses to give up.",
	"Terrible.",
	"I lost my card yesterday; how do I block it before someone uses it?",
}

func loadBlockWriteFixture(t *testing.T) *blockWriteFixture {
	t.Helper()
	requireRuntime(t)
	path := requireModel(t, defaultModel)
	tokPath := testutil.Artifact(t, filepath.Join(cache.ModelDir(defaultModel), "tokenizer.json"), "model "+defaultModel)
	blockWriteOnce.Do(func() { blockWriteFix.err = blockWriteFix.load(path, tokPath) })
	if blockWriteFix.err != nil {
		t.Fatal(blockWriteFix.err)
	}
	return &blockWriteFix
}

func (f *blockWriteFixture) load(path, tokPath string) error {
	m, err := LoadModel(path)
	if err != nil {
		return err
	}
	if f.data, err = m.Marshal(); err != nil {
		return err
	}
	tok, err := tokenize.Load(tokPath, tokenize.Options{MaxLen: 128})
	if err != nil {
		return err
	}
	encs, err := tok.EncodeAll(blockWriteSentences, 1)
	if err != nil {
		return err
	}
	for _, e := range encs {
		f.lens = append(f.lens, len(e.IDs))
		f.t = max(f.t, len(e.IDs))
	}
	f.b = len(encs)
	shape := []int64{int64(f.b), int64(f.t)}
	ids, mask, types := make([]int64, f.b*f.t), make([]int64, f.b*f.t), make([]int64, f.b*f.t)
	for r, e := range encs {
		for j := range f.t {
			ids[r*f.t+j] = tok.PadID()
		}
		copy(ids[r*f.t:], e.IDs)
		copy(mask[r*f.t:], e.Mask)
		copy(types[r*f.t:], e.TypeIDs)
	}
	f.inputs = []Int64Tensor{{Shape: shape, Data: ids}, {Shape: shape, Data: mask}, {Shape: shape, Data: types}}
	f.hidden, f.c, f.states, err = backboneStates(f.data, f.inputs)
	return err
}

// model parses a fresh copy of the unedited model.
func (f *blockWriteFixture) model(t *testing.T) *Model {
	t.Helper()
	m, err := ParseModel(f.data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run runs m on the fixture's batch and returns the named outputs.
func (f *blockWriteFixture) run(t *testing.T, m *Model, outputs ...string) [][]float32 {
	t.Helper()
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := NewSessionFromBytes(data, []string{"input_ids", "attention_mask", "token_type_ids"}, outputs, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sess.Close(); err != nil {
			t.Error(err)
		}
	}()
	out, err := sess.Run(nil, f.inputs)
	if err != nil {
		t.Fatal(err)
	}
	vals := make([][]float32, len(out))
	for i, o := range out {
		if want := []int64{int64(f.b), int64(f.t), int64(f.c)}; !slices.Equal(o.Shape, want) {
			t.Fatalf("output %q has shape %v; want %v", outputs[i], o.Shape, want)
		}
		vals[i] = o.Data
	}
	return vals
}

// maxRealDiff returns max |a − b| over the real tokens of the batch, +Inf if
// any difference is NaN.
func (f *blockWriteFixture) maxRealDiff(a, b []float32) float64 {
	var d float64
	for r, l := range f.lens {
		for k := r * f.t * f.c; k < (r*f.t+l)*f.c; k++ {
			x := math.Abs(float64(a[k]) - float64(b[k]))
			if math.IsNaN(x) {
				return math.Inf(1)
			}
			d = max(d, x)
		}
	}
	return d
}

// loraWeights converts BlockWeights to lora's (same layouts), as
// lora/parity_test.go does.
func loraWeights(bw BlockWeights) lora.Weights[float32] {
	lin := func(l LinearWeights) lora.Linear[float32] {
		return lora.Linear[float32]{In: l.In, Out: l.Out, W: slices.Clone(l.W), B: slices.Clone(l.B)}
	}
	norm := func(n LayerNormWeights) lora.LayerNorm[float32] {
		return lora.LayerNorm[float32]{Gamma: slices.Clone(n.Gamma), Beta: slices.Clone(n.Beta), Eps: float64(n.Eps)}
	}
	return lora.Weights[float32]{
		Query: lin(bw.Query), Key: lin(bw.Key), Value: lin(bw.Value),
		AttentionOutput: lin(bw.AttentionOutput), Intermediate: lin(bw.Intermediate), Output: lin(bw.Output),
		AttentionNorm: norm(bw.AttentionNorm), OutputNorm: norm(bw.OutputNorm),
	}
}

// TestSetBlockWeightsRoundTrip writes perturbed weights into blocks 5 and 0
// of all-MiniLM-L6-v2 and reads them back exactly, from the model and from
// a marshalled and parsed copy; the neighbouring block is unchanged, and a
// second write replaces the first's initialisers.
func TestSetBlockWeightsRoundTrip(t *testing.T) {
	f := loadBlockWriteFixture(t)
	for _, c := range []struct{ block, other int }{{5, 4}, {0, 1}} {
		t.Run(fmt.Sprint("block ", c.block), func(t *testing.T) {
			m := f.model(t)
			nInit, nNode := len(m.Proto.Graph.Initializer), len(m.Proto.Graph.Node)
			orig, other := mustBlock(t, m, c.block), mustBlock(t, m, c.other)
			for round, seed := range []float64{0, 1} {
				want := perturbBlock(orig, seed)
				if d := weightsDiffer(want, orig); d == "" {
					t.Fatal("perturbation changed nothing")
				}
				if err := m.SetBlockWeights(want); err != nil {
					t.Fatal(err)
				}
				if d := weightsDiffer(mustBlock(t, m, c.block), want); d != "" {
					t.Errorf("round %d: read back differs: %s", round, d)
				}
				if d := weightsDiffer(mustBlock(t, reparse(t, m), c.block), want); d != "" {
					t.Errorf("round %d: after Marshal and ParseModel: %s", round, d)
				}
				if d := weightsDiffer(mustBlock(t, m, c.other), other); d != "" {
					t.Errorf("round %d: block %d changed: %s", round, c.other, d)
				}
			}
			// all-MiniLM-L6-v2 shares no weight: 16 initialisers replace 16.
			g := m.Proto.Graph
			if len(g.Initializer) != nInit || len(g.Node) != nNode {
				t.Errorf("%d initialisers, %d nodes; want %d, %d as before", len(g.Initializer), len(g.Node), nInit, nNode)
			}
			for _, name := range []string{orig.Query.WeightName, orig.Output.BiasName, orig.OutputNorm.GammaName} {
				if slices.ContainsFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return t.GetName() == name }) {
					t.Errorf("initialiser %q is still in the graph", name)
				}
			}
		})
	}
}

// TestSetBlockWeightsParity runs the edited all-MiniLM-L6-v2 in onnxruntime
// and compares the output of the edited block with lora.Block's forward on
// the same weights, from the hidden state entering the block that the
// unedited graph computes.
func TestSetBlockWeightsParity(t *testing.T) {
	f := loadBlockWriteFixture(t)
	for _, block := range []int{5, 0} {
		m := f.model(t)
		bw := perturbBlock(mustBlock(t, m, block), 0.5)
		if err := m.SetBlockWeights(bw); err != nil {
			t.Fatal(err)
		}
		leaving := f.hidden[block+1]
		if err := m.ExposeOutputs(leaving); err != nil {
			t.Fatal(err)
		}
		got := f.run(t, m, leaving)[0]

		blk, err := lora.NewBlock(loraWeights(bw), lora.Settings{Heads: bw.Heads})
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(got))
		blk.Forward(want, f.states[block], lora.Padded(f.t, f.lens))
		diff := f.maxRealDiff(got, want)
		effect := f.maxRealDiff(got, f.states[block+1])
		t.Logf("block %d, %d sentences of %v tokens: max |edited graph − lora.Block| = %.3g; max |edited − original| = %.3g",
			block, f.b, f.lens, diff, effect)
		if !(diff <= blockWriteTol) {
			t.Errorf("block %d: edited graph differs from lora.Block by %.3g; want ≤ %g", block, diff, blockWriteTol)
		}
		if !(effect > blockWriteEffect) {
			t.Errorf("block %d: edited graph differs from the original by %.3g only; want > %g (was the write a no-op?)", block, effect, blockWriteEffect)
		}
	}
}

// TestKeepOutputs cuts all-MiniLM-L6-v2 before block 5 and after the
// embeddings: the cut graphs compute the same tensors as the full one,
// without the nodes after them, and take the same inputs (after the
// embeddings, attention_mask is declared but unused).
func TestKeepOutputs(t *testing.T) {
	f := loadBlockWriteFixture(t)
	for _, c := range []struct {
		block    int
		gone     string
		unusedIn string
	}{{5, "/encoder/layer.5/", ""}, {0, "/encoder/", "attention_mask"}} {
		t.Run(fmt.Sprint("before block ", c.block), func(t *testing.T) {
			m := f.model(t)
			hs, err := m.HiddenStateEntering(c.block)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.KeepOutputs(hs); err != nil {
				t.Fatal(err)
			}
			g := m.Proto.Graph
			if len(g.Output) != 1 || g.Output[0].GetName() != hs {
				t.Fatalf("outputs %v; want [%s]", namesOf(m.Outputs()), hs)
			}
			if info := m.Outputs()[0]; info.DType.String() != "float32" || !slices.Equal(info.Shape, []int64{-1, -1, int64(f.c)}) {
				t.Errorf("output declared %s %v; want float32 [-1 -1 %d]", info.DType, info.Shape, f.c)
			}
			if in := namesOf(m.Inputs()); in != "input_ids, attention_mask, token_type_ids" {
				t.Errorf("inputs %s; want input_ids, attention_mask, token_type_ids", in)
			}
			for _, n := range g.Node {
				if strings.Contains(n.GetName(), c.gone) {
					t.Fatalf("node %q is still in the graph", n.GetName())
				}
				if c.unusedIn != "" && slices.Contains(n.GetInput(), c.unusedIn) {
					t.Fatalf("test setup: node %q reads %s", n.GetName(), c.unusedIn)
				}
			}
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(data) >= len(f.data) {
				t.Errorf("cut graph has %d bytes; the full one %d", len(data), len(f.data))
			}
			got := f.run(t, m, hs)[0]
			want := f.states[c.block]
			bad := 0
			for k := range want {
				if got[k] != want[k] {
					bad++
				}
			}
			t.Logf("cut before block %d: %d nodes, %d bytes (full graph %d); %d of %d values differ from the full graph's",
				c.block, len(g.Node), len(data), len(f.data), bad, len(want))
			if bad > 0 {
				t.Errorf("%d of %d values differ from the full graph's %s", bad, len(want), hs)
			}
		})
	}
}

// TestSetBlockWeightsErrors: bad weights and graphs are refused with an
// error that names the field, and the model is not changed.
func TestSetBlockWeightsErrors(t *testing.T) {
	f := loadBlockWriteFixture(t)
	m := f.model(t)
	good := mustBlock(t, m, 5)
	before := proto.Clone(m.Proto)
	tests := []struct {
		name   string
		edit   func(bw *BlockWeights)
		target error
		errHas string
	}{
		{"short W", func(bw *BlockWeights) { bw.Query.W = bw.Query.W[:10] }, ErrBadWeights,
			"block 5 Query.W has 10 values; want (Out 384, In 384) = 147456 as in the graph"},
		{"In", func(bw *BlockWeights) { bw.Intermediate.In = 100 }, ErrBadWeights,
			"block 5 Intermediate is (Out 1536, In 100); the graph's is (Out 1536, In 384)"},
		{"long B", func(bw *BlockWeights) { bw.Output.B = append(bw.Output.B, 0) }, ErrBadWeights,
			"block 5 Output.B has 385 values; want (Out 384)"},
		{"gamma", func(bw *BlockWeights) { bw.OutputNorm.Gamma = nil }, ErrBadWeights,
			"block 5 OutputNorm.Gamma has 0 values; the graph's has 384"},
		{"NaN", func(bw *BlockWeights) { bw.Value.B[7] = float32(math.NaN()) }, ErrBadWeights,
			"block 5 Value.B[7] = NaN; want a finite value"},
		{"Inf", func(bw *BlockWeights) { bw.AttentionNorm.Beta[3] = float32(math.Inf(-1)) }, ErrBadWeights,
			"block 5 AttentionNorm.Beta[3] = -Inf"},
		{"layer", func(bw *BlockWeights) { bw.Layer = 6 }, nil,
			"block 6 out of range; the model has 6 blocks: 0..5"},
		{"negative layer", func(bw *BlockWeights) { bw.Layer = -1 }, nil, "block -1 out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bw := good
			for _, l := range []*LinearWeights{&bw.Query, &bw.Value, &bw.Output} {
				l.W, l.B = slices.Clone(l.W), slices.Clone(l.B)
			}
			bw.AttentionNorm.Beta = slices.Clone(bw.AttentionNorm.Beta)
			tt.edit(&bw)
			err := m.SetBlockWeights(bw)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || (tt.target != nil && !errors.Is(err, tt.target)) {
				t.Errorf("SetBlockWeights = %v; want an error containing %q (wrapping %v)", err, tt.errHas, tt.target)
			}
			if !proto.Equal(m.Proto, before) {
				t.Error("the model changed")
			}
		})
	}

	t.Run("KeepOutputs", func(t *testing.T) {
		err := m.KeepOutputs("last_hidden_state", "no/such/tensor", "input_ids")
		if err == nil || !strings.Contains(err.Error(), `cannot keep "no/such/tensor", "input_ids" as outputs: not a tensor of the graph`) {
			t.Errorf("KeepOutputs = %v; want an error naming the unknown tensors", err)
		}
		if err := m.KeepOutputs(); err == nil {
			t.Error("KeepOutputs() = nil; want an error")
		}
		if !proto.Equal(m.Proto, before) {
			t.Error("the model changed")
		}
	})

	t.Run("quantised", func(t *testing.T) {
		q, err := LoadModel(requireModel(t, "all-minilm-l6-v2-q"))
		if err != nil {
			t.Fatal(err)
		}
		qBefore := proto.Clone(q.Proto)
		err = q.SetBlockWeights(good)
		if !errors.Is(err, ErrUnsupportedGraph) || !strings.Contains(err.Error(), "is quantised") {
			t.Errorf("SetBlockWeights on the int8 model = %v; want ErrUnsupportedGraph (quantised)", err)
		}
		if !proto.Equal(q.Proto, qBefore) {
			t.Error("the model changed")
		}
	})
}
