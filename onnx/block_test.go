package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// blockSynth builds a BERT-shaped graph whose encoder blocks have the node
// names and wiring torch.onnx gives HuggingFace's BertLayer, in the
// variants other exporters use. The graph is for BlockWeights to read, not
// to run: the attention core is reduced to the nodes BlockWeights looks at.
// Weights are small dyadic rationals of their position, so reads can be
// checked exactly.
type blockSynth struct {
	layers, hidden, heads, inter int

	transposed  bool // weights stored [out, in] behind a Transpose
	gemm        bool // Gemm(x, W, b, transB=1) instead of MatMul + Add
	fusedLN     bool // one LayerNormalization node per LayerNorm
	staticShape bool // Reshape shape as one constant [0, 0, heads, size]
	constNodes  bool // weights as Constant nodes instead of initialisers
}

// weight is W[o][i] (torch layout) of linear k of layer l; bias b[o].
func (s blockSynth) weight(l, k, o, i int) float32 {
	return float32((l*7+k*13+o*5+i*3)%17-8) / 16
}
func (s blockSynth) bias(l, k, o int) float32  { return float32((l*3+k*5+o)%9-4) / 8 }
func (s blockSynth) gamma(l, k, j int) float32 { return 1 + float32((l+k+j)%5)/8 }
func (s blockSynth) beta(l, k, j int) float32  { return float32((l*2+k+j)%7-3) / 32 }
func (s blockSynth) eps(k int) float32         { return []float32{1e-12, 1e-5}[k] }
func (s blockSynth) hiddenName(l int) string {
	return fmt.Sprintf("/encoder/layer.%d/output/LayerNorm/Add_1_output_0", l)
}
func (s blockSynth) scopes() []string {
	return []string{"attention/self/query", "attention/self/key", "attention/self/value", "attention/output/dense", "intermediate/dense", "output/dense"}
}
func (s blockSynth) dims(k int) (in, out int) {
	switch k {
	case 4:
		return s.hidden, s.inter
	case 5:
		return s.inter, s.hidden
	}
	return s.hidden, s.hidden
}

func (s blockSynth) build() *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{Name: proto.String("block synth")}
	g.Input = []*onnxpb.ValueInfoProto{
		valueInfo("input_ids", onnxpb.TensorProto_INT64, "batch_size", "sequence_length"),
		valueInfo("attention_mask", onnxpb.TensorProto_INT64, "batch_size", "sequence_length"),
	}
	g.Output = []*onnxpb.ValueInfoProto{
		valueInfo("last_hidden_state", onnxpb.TensorProto_FLOAT, "batch_size", "sequence_length", int64(s.hidden)),
	}
	h := int64(s.hidden)
	ones := make([]float32, s.hidden)
	for j := range ones {
		ones[j] = 1
	}
	g.Initializer = []*onnxpb.TensorProto{
		floatInit("embeddings.word_embeddings.weight", []int64{10, h}, make([]float32, 10*s.hidden)),
		floatInit("embeddings.LayerNorm.weight", []int64{h}, ones),
		floatInit("embeddings.LayerNorm.bias", []int64{h}, make([]float32, s.hidden)),
	}
	g.Node = []*onnxpb.NodeProto{
		node("Gather", "/embeddings/word_embeddings/Gather", []string{"embeddings.word_embeddings.weight", "input_ids"}, "/embeddings/word_embeddings/Gather_output_0"),
		node("Mul", "/embeddings/LayerNorm/Mul", []string{"/embeddings/word_embeddings/Gather_output_0", "embeddings.LayerNorm.weight"}, "/embeddings/LayerNorm/Mul_output_0"),
		node("Add", "/embeddings/LayerNorm/Add_1", []string{"/embeddings/LayerNorm/Mul_output_0", "embeddings.LayerNorm.bias"}, "/embeddings/LayerNorm/Add_1_output_0"),
	}
	add := func(n *onnxpb.NodeProto) string { g.Node = append(g.Node, n); return n.GetOutput()[0] }
	constant := func(name string, t *onnxpb.TensorProto) string {
		if s.constNodes {
			return add(&onnxpb.NodeProto{OpType: proto.String("Constant"), Name: proto.String(name), Output: []string{name + "_output_0"},
				Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}}})
		}
		t.Name = proto.String(name)
		g.Initializer = append(g.Initializer, t)
		return name
	}
	ints := func(v ...int64) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v}
	}
	scalar := func(v float32) *onnxpb.TensorProto {
		return &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{v}}
	}
	cnode := func(name string, t *onnxpb.TensorProto) string { // always a Constant node, as torch.onnx writes scalars
		return add(&onnxpb.NodeProto{OpType: proto.String("Constant"), Name: proto.String(name), Output: []string{name + "_output_0"},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}}})
	}

	prev := "/embeddings/LayerNorm/Add_1_output_0"
	for l := range s.layers {
		p := fmt.Sprintf("/encoder/layer.%d/", l)
		mod := fmt.Sprintf("encoder.layer.%d.", l)
		linear := func(k int, x string) string {
			scope := s.scopes()[k]
			in, out := s.dims(k)
			w := make([]float32, in*out)
			b := make([]float32, out)
			for o := range out {
				b[o] = s.bias(l, k, o)
				for i := range in {
					if s.transposed || s.gemm {
						w[o*in+i] = s.weight(l, k, o, i)
					} else {
						w[i*out+o] = s.weight(l, k, o, i)
					}
				}
			}
			dims := []int64{int64(in), int64(out)}
			if s.transposed || s.gemm {
				dims = []int64{int64(out), int64(in)}
			}
			wName := constant(fmt.Sprintf("onnx::MatMul_%d", 100*l+k), &onnxpb.TensorProto{Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: w})
			bName := constant(mod+strings.ReplaceAll(scope, "/", ".")+".bias", &onnxpb.TensorProto{Dims: []int64{int64(out)}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: b})
			if s.gemm {
				return add(&onnxpb.NodeProto{OpType: proto.String("Gemm"), Name: proto.String(p + scope + "/Gemm"),
					Input: []string{x, wName, bName}, Output: []string{p + scope + "/Gemm_output_0"},
					Attribute: []*onnxpb.AttributeProto{intAttr("transB", 1)}})
			}
			if s.transposed {
				wName = add(node("Transpose", p+scope+"/Transpose", []string{wName}, p+scope+"/Transpose_output_0"))
			}
			mm := add(node("MatMul", p+scope+"/MatMul", []string{x, wName}, p+scope+"/MatMul_output_0"))
			return add(node("Add", p+scope+"/Add", []string{bName, mm}, p+scope+"/Add_output_0"))
		}
		layerNorm := func(k int, scope, x, out string) string {
			gamma, beta := make([]float32, s.hidden), make([]float32, s.hidden)
			for j := range gamma {
				gamma[j], beta[j] = s.gamma(l, k, j), s.beta(l, k, j)
			}
			gName := constant(mod+strings.ReplaceAll(scope, "/", ".")+".weight", &onnxpb.TensorProto{Dims: []int64{h}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: gamma})
			bName := constant(mod+strings.ReplaceAll(scope, "/", ".")+".bias", &onnxpb.TensorProto{Dims: []int64{h}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: beta})
			q := p + scope + "/"
			if s.fusedLN {
				return add(&onnxpb.NodeProto{OpType: proto.String("LayerNormalization"), Name: proto.String(q + "LayerNormalization"),
					Input: []string{x, gName, bName}, Output: []string{out},
					Attribute: []*onnxpb.AttributeProto{intAttr("axis", -1), {Name: proto.String("epsilon"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(s.eps(k))}}})
			}
			mean := add(node("ReduceMean", q+"ReduceMean", []string{x}, q+"ReduceMean_output_0"))
			sub := add(node("Sub", q+"Sub", []string{x, mean}, q+"Sub_output_0"))
			pow := add(node("Pow", q+"Pow", []string{sub, cnode(q+"Constant", scalar(2))}, q+"Pow_output_0"))
			v := add(node("ReduceMean", q+"ReduceMean_1", []string{pow}, q+"ReduceMean_1_output_0"))
			v = add(node("Add", q+"Add", []string{v, cnode(q+"Constant_1", scalar(s.eps(k)))}, q+"Add_output_0"))
			sd := add(node("Sqrt", q+"Sqrt", []string{v}, q+"Sqrt_output_0"))
			d := add(node("Div", q+"Div", []string{sub, sd}, q+"Div_output_0"))
			m := add(node("Mul", q+"Mul", []string{d, gName}, q+"Mul_output_0"))
			return add(node("Add", q+"Add_1", []string{m, bName}, out))
		}

		x := prev
		qy, ky, vy := linear(0, x), linear(1, x), linear(2, x)
		a := p + "attention/self/"
		size := int64(s.hidden / s.heads)
		var shape string
		if s.staticShape {
			shape = cnode(a+"Constant_shape", ints(0, 0, int64(s.heads), size))
		} else {
			dyn := add(node("Unsqueeze", a+"Unsqueeze", []string{x}, a+"Unsqueeze_output_0"))
			shape = add(node("Concat", a+"Concat", []string{dyn, dyn, cnode(a+"Constant_2", ints(int64(s.heads))), cnode(a+"Constant_3", ints(size))}, a+"Concat_output_0"))
		}
		qh := add(node("Reshape", a+"Reshape_2", []string{qy, shape}, a+"Reshape_2_output_0"))
		kh := add(node("Reshape", a+"Reshape", []string{ky, shape}, a+"Reshape_output_0"))
		vh := add(node("Reshape", a+"Reshape_1", []string{vy, shape}, a+"Reshape_1_output_0"))
		sc := add(node("MatMul", a+"MatMul", []string{qh, kh}, a+"MatMul_output_0"))
		sc = add(node("Div", a+"Div", []string{sc, cnode(a+"Constant_12", scalar(float32(math.Sqrt(float64(size)))))}, a+"Div_output_0"))
		sc = add(node("Softmax", a+"Softmax", []string{sc}, a+"Softmax_output_0"))
		ctx := add(node("MatMul", a+"MatMul_1", []string{sc, vh}, a+"MatMul_1_output_0"))
		ctx = add(node("Reshape", a+"Reshape_3", []string{ctx, shape}, a+"Reshape_3_output_0"))
		ao := linear(3, ctx)
		ao = add(node("Add", p+"attention/output/Add", []string{ao, x}, p+"attention/output/Add_output_0"))
		hh := layerNorm(0, "attention/output/LayerNorm", ao, p+"attention/output/LayerNorm/Add_1_output_0")
		u := linear(4, hh)
		f := p + "intermediate/intermediate_act_fn/"
		e := add(node("Div", f+"Div", []string{u, cnode(f+"Constant", scalar(math.Sqrt2))}, f+"Div_output_0"))
		e = add(node("Erf", f+"Erf", []string{e}, f+"Erf_output_0"))
		e = add(node("Add", f+"Add", []string{e, cnode(f+"Constant_1", scalar(1))}, f+"Add_output_0"))
		e = add(node("Mul", f+"Mul", []string{u, e}, f+"Mul_output_0"))
		e = add(node("Mul", f+"Mul_1", []string{e, cnode(f+"Constant_2", scalar(0.5))}, f+"Mul_1_output_0"))
		d := linear(5, e)
		d = add(node("Add", p+"output/Add", []string{d, hh}, p+"output/Add_output_0"))
		out := s.hiddenName(l)
		if l == s.layers-1 {
			out = "last_hidden_state"
		}
		prev = layerNorm(1, "output/LayerNorm", d, out)
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       g,
	}
}

// check compares what BlockWeights read for layer l with the generator's
// values, exactly.
func (s blockSynth) check(t *testing.T, bw BlockWeights, l int) {
	t.Helper()
	if bw.Layer != l || bw.Hidden != s.hidden || bw.IntermediateSize != s.inter || bw.Heads != s.heads || bw.HeadSize != s.hidden/s.heads {
		t.Errorf("layer %d: Layer %d, Hidden %d, IntermediateSize %d, Heads %d, HeadSize %d; want %d, %d, %d, %d, %d",
			l, bw.Layer, bw.Hidden, bw.IntermediateSize, bw.Heads, bw.HeadSize, l, s.hidden, s.inter, s.heads, s.hidden/s.heads)
	}
	for k, lw := range []LinearWeights{bw.Query, bw.Key, bw.Value, bw.AttentionOutput, bw.Intermediate, bw.Output} {
		in, out := s.dims(k)
		if lw.In != in || lw.Out != out || len(lw.W) != in*out || len(lw.B) != out {
			t.Errorf("layer %d %s: %d → %d with %d weights, %d biases; want %d → %d", l, s.scopes()[k], lw.In, lw.Out, len(lw.W), len(lw.B), in, out)
			continue
		}
		if lw.WeightTransposed != (s.transposed || s.gemm) {
			t.Errorf("layer %d %s: WeightTransposed = %v", l, s.scopes()[k], lw.WeightTransposed)
		}
	loop:
		for o := range out {
			if lw.B[o] != s.bias(l, k, o) {
				t.Errorf("layer %d %s: B[%d] = %v; want %v", l, s.scopes()[k], o, lw.B[o], s.bias(l, k, o))
				break
			}
			for i := range in {
				if got, want := lw.W[o*in+i], s.weight(l, k, o, i); got != want {
					t.Errorf("layer %d %s: W[%d][%d] = %v; want %v", l, s.scopes()[k], o, i, got, want)
					break loop
				}
			}
		}
	}
	for k, n := range []LayerNormWeights{bw.AttentionNorm, bw.OutputNorm} {
		if n.Eps != s.eps(k) {
			t.Errorf("layer %d norm %d: Eps = %v; want %v", l, k, n.Eps, s.eps(k))
		}
		for j := range s.hidden {
			if n.Gamma[j] != s.gamma(l, k, j) || n.Beta[j] != s.beta(l, k, j) {
				t.Errorf("layer %d norm %d: γ[%d], β[%d] = %v, %v; want %v, %v", l, k, j, j, n.Gamma[j], n.Beta[j], s.gamma(l, k, j), s.beta(l, k, j))
				break
			}
		}
	}
}

func TestBlockWeightsSynthetic(t *testing.T) {
	base := blockSynth{layers: 2, hidden: 8, heads: 2, inter: 12}
	variants := map[string]func(*blockSynth){
		"torch.onnx":   func(*blockSynth) {},
		"transposed":   func(s *blockSynth) { s.transposed = true },
		"gemm":         func(s *blockSynth) { s.gemm = true },
		"fused norm":   func(s *blockSynth) { s.fusedLN = true },
		"static shape": func(s *blockSynth) { s.staticShape = true },
		"constants":    func(s *blockSynth) { s.constNodes, s.transposed = true, true },
	}
	for name, edit := range variants {
		t.Run(name, func(t *testing.T) {
			s := base
			edit(&s)
			m := &Model{Proto: s.build()}
			for l := range s.layers {
				bw, err := m.BlockWeights(l)
				if err != nil {
					t.Fatalf("BlockWeights(%d): %v", l, err)
				}
				s.check(t, bw, l)
				enter, err := m.HiddenStateEntering(l)
				want := "/embeddings/LayerNorm/Add_1_output_0"
				if l > 0 {
					want = s.hiddenName(l - 1)
				}
				if err != nil || enter != want {
					t.Errorf("HiddenStateEntering(%d) = %q, %v; want %q", l, enter, err, want)
				}
			}
		})
	}
}

func TestBlockWeightsUnsupported(t *testing.T) {
	const p = "/encoder/layer.1/"
	findNode := func(g *onnxpb.GraphProto, name string) *onnxpb.NodeProto {
		for _, n := range g.Node {
			if n.GetName() == name {
				return n
			}
		}
		panic("no node " + name)
	}
	tests := []struct {
		name   string
		edit   func(g *onnxpb.GraphProto)
		layer  int
		errHas string
	}{
		{"layer out of range", func(*onnxpb.GraphProto) {}, 2, "block 2 out of range; the model has 2 blocks: 0..1"},
		{"negative layer out of range", func(*onnxpb.GraphProto) {}, -1, "block -1 out of range"},
		{"no key", func(g *onnxpb.GraphProto) {
			findNode(g, p+"attention/self/key/MatMul").Name = proto.String(p + "attention/self/key/MatMulX")
		}, 1,
			"no node named */encoder/layer.1/attention/self/key/MatMul or */encoder/layer.1/attention/self/key/Gemm"},
		{"quantised", func(g *onnxpb.GraphProto) {
			findNode(g, p+"output/dense/MatMul").OpType = proto.String("MatMulInteger")
		}, 1,
			"encoder block 1 is quantised (MatMulInteger /encoder/layer.1/output/dense/MatMul)"},
		{"fused attention", func(g *onnxpb.GraphProto) {
			n := findNode(g, p+"attention/self/Softmax")
			n.OpType, n.Domain = proto.String("Attention"), proto.String("com.microsoft")
		}, 1, "uses fused operators (com.microsoft.Attention /encoder/layer.1/attention/self/Softmax)"},
		{"tanh gelu", func(g *onnxpb.GraphProto) {
			findNode(g, p+"intermediate/intermediate_act_fn/Erf").OpType = proto.String("Tanh")
		}, 1,
			"no Erf node under */encoder/layer.1/intermediate/ (the exact GELU"},
		{"no bias", func(g *onnxpb.GraphProto) {
			findNode(g, p+"attention/self/value/Add").Input[0] = p + "attention/self/value/MatMul_output_0"
		}, 1,
			"no bias for */encoder/layer.1/attention/self/value"},
		{"computed weight", func(g *onnxpb.GraphProto) {
			findNode(g, p+"attention/self/query/MatMul").Input[1] = p + "attention/self/key/Add_output_0"
		}, 1,
			"is computed by Add \"/encoder/layer.1/attention/self/key/Add\", not a constant"},
		{"pre-LN", func(g *onnxpb.GraphProto) {
			findNode(g, p+"attention/self/query/MatMul").Input[0] = "/encoder/layer.0/attention/output/LayerNorm/Add_1_output_0"
		}, 1, "reads \"/encoder/layer.0/attention/output/LayerNorm/Add_1_output_0\", not the hidden state entering the block"},
		{"heads", func(g *onnxpb.GraphProto) {
			for _, n := range g.Node {
				if n.GetName() == p+"attention/self/Constant_2" {
					n.Attribute[0].T.Int64Data = []int64{3}
				}
			}
		}, 1, "splits the hidden size 8 into 3 heads of 4"},
		{"no reshape", func(g *onnxpb.GraphProto) {
			findNode(g, p+"attention/self/Reshape_2").OpType = proto.String("Identity")
		}, 0, ""}, // key/value still give the heads
		{"scale", func(g *onnxpb.GraphProto) {
			findNode(g, p+"attention/self/Constant_12").Attribute[0].T.FloatData = []float32{3}
		}, 1,
			"divides the attention scores by 3; want √4 = 2"},
		{"no norm gamma", func(g *onnxpb.GraphProto) { findNode(g, p+"output/LayerNorm/Mul").OpType = proto.String("Div") }, 1,
			"no Mul by a [8] constant (γ) under */encoder/layer.1/output/LayerNorm/"},
		{"no encoder", func(g *onnxpb.GraphProto) {
			for _, n := range g.Node {
				n.Name = proto.String(strings.ReplaceAll(n.GetName(), "/output/LayerNorm/", "/output/Norm/"))
			}
		}, 0, "no nodes named */encoder/layer.N/output/LayerNorm/*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := blockSynth{layers: 2, hidden: 8, heads: 2, inter: 12}.build()
			tt.edit(p.Graph)
			_, err := (&Model{Proto: p}).BlockWeights(tt.layer)
			if tt.errHas == "" {
				if err != nil {
					t.Errorf("BlockWeights(%d): %v; want no error", tt.layer, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("BlockWeights(%d) error = %v; want one containing %q", tt.layer, err, tt.errHas)
			}
			if !strings.Contains(tt.name, "range") && !errors.Is(err, ErrUnsupportedGraph) {
				t.Errorf("error %v does not wrap ErrUnsupportedGraph", err)
			}
		})
	}
}

// refBlock is what scripts/ref_block_weights.py writes.
type refBlock struct {
	Header   map[string]any `json:"header"`
	Heads    int            `json:"heads"`
	HeadSize int            `json:"head_size"`
	Linear   map[string]struct {
		In         int          `json:"in"`
		Out        int          `json:"out"`
		WeightName string       `json:"weight_name"`
		BiasName   string       `json:"bias_name"`
		WSum       float64      `json:"w_sum"`
		WWSum      float64      `json:"w_wsum"`
		WSamples   [][2]float64 `json:"w_samples"`
		BSum       float64      `json:"b_sum"`
		BSamples   [][2]float64 `json:"b_samples"`
	} `json:"linear"`
	Norm map[string]struct {
		GammaName string  `json:"gamma_name"`
		BetaName  string  `json:"beta_name"`
		Eps       float64 `json:"eps"`
		GammaSum  float64 `json:"gamma_sum"`
		BetaSum   float64 `json:"beta_sum"`
	} `json:"norm"`
}

// sumTol bounds the relative difference of float64 sums of float32 weights
// taken in another order (numpy's pairwise summation): about n·ε₆₄ ≈ 1e-10
// for 590k terms.
const sumTol = 1e-9

// TestBlockWeightsReference reads block 5 of all-MiniLM-L6-v2 and compares it
// with what the Python onnx package reads (scripts/ref_block_weights.py):
// shapes, initialiser names, LayerNorm ε, heads, and the weights' checksums
// and sampled values in torch's (out, in) layout.
func TestBlockWeightsReference(t *testing.T) {
	const layer = 5
	path := requireModel(t, defaultModel)
	py := testutil.VenvPython(t)
	out := filepath.Join(t.TempDir(), "ref.json")
	cmd := exec.Command(py, filepath.Join("..", "scripts", "ref_block_weights.py"), "--model", path, "--layer", fmt.Sprint(layer), "--out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var ref refBlock
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("reference: %v", ref.Header)

	m, err := LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	bw, err := m.BlockWeights(layer)
	if err != nil {
		t.Fatal(err)
	}
	if bw.Heads != ref.Heads || bw.HeadSize != ref.HeadSize || bw.Heads != 12 || bw.HeadSize != 32 {
		t.Errorf("heads %d of %d; reference %d of %d (want 12 of 32)", bw.Heads, bw.HeadSize, ref.Heads, ref.HeadSize)
	}
	if bw.Hidden != 384 || bw.IntermediateSize != 1536 {
		t.Errorf("Hidden %d, IntermediateSize %d; want 384, 1536", bw.Hidden, bw.IntermediateSize)
	}
	for key, lw := range map[string]LinearWeights{
		"query": bw.Query, "key": bw.Key, "value": bw.Value,
		"attention_output": bw.AttentionOutput, "intermediate": bw.Intermediate, "output": bw.Output,
	} {
		r, ok := ref.Linear[key]
		if !ok {
			t.Fatalf("reference has no linear %q", key)
		}
		if lw.In != r.In || lw.Out != r.Out || lw.WeightName != r.WeightName || lw.BiasName != r.BiasName || lw.WeightTransposed {
			t.Errorf("%s: %d → %d from %q, %q (transposed %v); reference %d → %d from %q, %q",
				key, lw.In, lw.Out, lw.WeightName, lw.BiasName, lw.WeightTransposed, r.In, r.Out, r.WeightName, r.BiasName)
			continue
		}
		var sum, wsum, bsum float64
		for k, v := range lw.W {
			sum += float64(v)
			wsum += float64(v) * float64(k%7-3)
		}
		for _, v := range lw.B {
			bsum += float64(v)
		}
		for _, c := range []struct {
			what      string
			got, want float64
		}{{"Σ W", sum, r.WSum}, {"Σ W·(k mod 7 − 3)", wsum, r.WWSum}, {"Σ B", bsum, r.BSum}} {
			if !(math.Abs(c.got-c.want) <= sumTol*max(1, math.Abs(c.want))) {
				t.Errorf("%s: %s = %.12g; reference %.12g", key, c.what, c.got, c.want)
			}
		}
		for _, s := range r.WSamples {
			if got := lw.W[int(s[0])]; float64(got) != s[1] {
				t.Errorf("%s: W flat[%d] = %v; reference %v", key, int(s[0]), got, s[1])
			}
		}
		for _, s := range r.BSamples {
			if got := lw.B[int(s[0])]; float64(got) != s[1] {
				t.Errorf("%s: B[%d] = %v; reference %v", key, int(s[0]), got, s[1])
			}
		}
	}
	for key, n := range map[string]LayerNormWeights{"attention": bw.AttentionNorm, "output": bw.OutputNorm} {
		r := ref.Norm[key]
		var gs, bs float64
		for j := range n.Gamma {
			gs += float64(n.Gamma[j])
			bs += float64(n.Beta[j])
		}
		if n.GammaName != r.GammaName || n.BetaName != r.BetaName || float64(n.Eps) != r.Eps ||
			!(math.Abs(gs-r.GammaSum) <= sumTol*math.Abs(r.GammaSum)) || !(math.Abs(bs-r.BetaSum) <= sumTol*max(1, math.Abs(r.BetaSum))) {
			t.Errorf("%s norm: %q %q ε %v Σγ %.12g Σβ %.12g; reference %q %q ε %v Σγ %.12g Σβ %.12g",
				key, n.GammaName, n.BetaName, n.Eps, gs, bs, r.GammaName, r.BetaName, r.Eps, r.GammaSum, r.BetaSum)
		}
	}

	// Every block of the model reads, with the same geometry.
	n, err := m.NumLayers()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		bw, err := m.BlockWeights(i)
		if err != nil {
			t.Fatalf("BlockWeights(%d): %v", i, err)
		}
		if bw.Heads != 12 || bw.IntermediateSize != 1536 || bw.AttentionNorm.Eps != 1e-12 || bw.Query.BiasName != fmt.Sprintf("encoder.layer.%d.attention.self.query.bias", i) {
			t.Errorf("block %d: heads %d, I %d, ε %v, query bias %q", i, bw.Heads, bw.IntermediateSize, bw.AttentionNorm.Eps, bw.Query.BiasName)
		}
	}
}

// TestBlockWeightsQuantized: the dynamically quantised exports are refused
// with an error that says why.
func TestBlockWeightsQuantized(t *testing.T) {
	for _, name := range []string{"all-minilm-l6-v2-q", "e5-small-v2-q"} {
		t.Run(name, func(t *testing.T) {
			m, err := LoadModel(requireModel(t, name))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.BlockWeights(0)
			if !errors.Is(err, ErrUnsupportedGraph) || !strings.Contains(err.Error(), "encoder block 0 is quantised (MatMulInteger /encoder/layer.0/attention/self/query/MatMul_quant") {
				t.Errorf("BlockWeights(0) = %v; want ErrUnsupportedGraph naming the quantised MatMul", err)
			}
		})
	}
}
