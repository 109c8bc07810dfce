package onnx

import (
	"fmt"
	"path/filepath"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// Artifacts. Tests find them through the cache that scripts/setup.sh fills
// ($HEADSTART_CACHE overrides). A missing artifact fails the test, naming the
// setup step, unless -short is given, which skips instead.

const defaultModel = "all-minilm-l6-v2"

// requireRuntime initialises the runtime from the cache.
func requireRuntime(t testing.TB) {
	t.Helper()
	lib := testutil.Runtime(t)
	if err := Init(lib); err != nil {
		t.Fatalf("Init(%s): %v", lib, err)
	}
}

// requireModel returns the path of a pulled model's model.onnx.
func requireModel(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(testutil.Model(t, name), "model.onnx")
}

// checkClose fails the test if got and want differ by more than tol in any
// element (NaN always differs), reporting the first few mismatches.
func checkClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	bad, worst := 0, 0.0
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if !scalar.EqualWithinAbs(g, w, tol) {
			if bad < 3 {
				t.Errorf("%s[%d] = %v, want %v (tolerance %g)", what, i, g, w, tol)
			}
			bad++
		}
		if d := g - w; d > worst || -d > worst {
			worst = max(d, -d)
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ by more than %g", what, bad, len(got), tol)
	}
	t.Logf("%s: max |diff| %.3g over %d values", what, worst, len(got))
}

// A synthetic BERT-shaped model, small enough to build in the test and to
// compute by hand. Its values are small dyadic rationals, so float32
// arithmetic is exact and outputs can be compared with ==.
//
//	h_0 = (E[input_ids] * attention_mask) * g_e + b_e      embeddings "LayerNorm"
//	a_i = h_i + c_i                                         attention decoy
//	h_{i+1} = a_i * g_i + b_i                               block i output "LayerNorm"
type synth struct {
	layers, hidden, vocab int
	quantDecoy            bool // add a DynamicQuantizeLinear named like the quantised exports
	fixedHidden           bool // declare last_hidden_state [batch_size, sequence_length, hidden] (else all symbolic)
}

// embLayer is the layer argument of gain and bias for the embeddings.
const embLayer = 7

func (s synth) emb(id, j int) float32  { return float32((id*7+j*3)%11-5) / 4 }
func (s synth) gain(l, j int) float32  { return []float32{0.5, 2, 1, 0.25}[(l+j)%4] }
func (s synth) bias(l, j int) float32  { return float32((l+2*j)%5-2) / 8 }
func (s synth) decoy(l, j int) float32 { return float32((l+j)%3) / 2 }
func (s synth) vec(f func(int, int) float32, l int) []float32 {
	v := make([]float32, s.hidden)
	for j := range v {
		v[j] = f(l, j)
	}
	return v
}

// hiddenNames are the names HiddenStates should return.
func (s synth) hiddenNames() []string {
	names := []string{"/embeddings/LayerNorm/Add_1_output_0"}
	for i := 0; i < s.layers-1; i++ {
		names = append(names, fmt.Sprintf("/encoder/layer.%d/output/LayerNorm/Add_1_output_0", i))
	}
	return append(names, "last_hidden_state")
}

// want computes the hidden states for one batch: want[k] is hidden state k,
// (B,T,H) flattened.
func (s synth) want(ids, mask []int64) [][]float32 {
	n := len(ids)
	h := make([]float32, n*s.hidden)
	for p := range n {
		for j := range s.hidden {
			x := s.emb(int(ids[p]), j) * float32(mask[p])
			h[p*s.hidden+j] = float32(x*s.gain(embLayer, j)) + s.bias(embLayer, j)
		}
	}
	out := [][]float32{h}
	for l := range s.layers {
		next := make([]float32, len(h))
		for p := range n {
			for j := range s.hidden {
				a := h[p*s.hidden+j] + s.decoy(l, j)
				next[p*s.hidden+j] = float32(a*s.gain(l, j)) + s.bias(l, j)
			}
		}
		out = append(out, next)
		h = next
	}
	return out
}

func (s synth) build() *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{Name: proto.String("synth")}
	dyn := func(n string) any { return n }
	g.Input = []*onnxpb.ValueInfoProto{
		valueInfo("input_ids", onnxpb.TensorProto_INT64, dyn("batch_size"), dyn("sequence_length")),
		valueInfo("attention_mask", onnxpb.TensorProto_INT64, dyn("batch_size"), dyn("sequence_length")),
	}
	var hiddenDim any = int64(s.hidden)
	if !s.fixedHidden {
		hiddenDim = "hidden"
	}
	g.Output = []*onnxpb.ValueInfoProto{
		valueInfo("last_hidden_state", onnxpb.TensorProto_FLOAT, dyn("batch_size"), dyn("sequence_length"), hiddenDim),
	}
	table := make([]float32, s.vocab*s.hidden)
	for id := range s.vocab {
		for j := range s.hidden {
			table[id*s.hidden+j] = s.emb(id, j)
		}
	}
	h := int64(s.hidden)
	g.Initializer = []*onnxpb.TensorProto{
		floatInit("embeddings.word_embeddings.weight", []int64{int64(s.vocab), h}, table),
		floatInit("embeddings.LayerNorm.weight", []int64{h}, s.vec(s.gain, embLayer)),
		floatInit("embeddings.LayerNorm.bias", []int64{h}, s.vec(s.bias, embLayer)),
		{Name: proto.String("/embeddings/axes"), Dims: []int64{1}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{2}},
	}
	g.Node = []*onnxpb.NodeProto{
		node("Gather", "/embeddings/word_embeddings/Gather", []string{"embeddings.word_embeddings.weight", "input_ids"}, "/embeddings/word_embeddings/Gather_output_0"),
		node("Cast", "/embeddings/Cast", []string{"attention_mask"}, "/embeddings/Cast_output_0",
			&onnxpb.AttributeProto{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(onnxpb.TensorProto_FLOAT))}),
		node("Unsqueeze", "/embeddings/Unsqueeze", []string{"/embeddings/Cast_output_0", "/embeddings/axes"}, "/embeddings/Unsqueeze_output_0"),
		node("Mul", "/embeddings/Mul", []string{"/embeddings/word_embeddings/Gather_output_0", "/embeddings/Unsqueeze_output_0"}, "/embeddings/Mul_output_0"),
		node("Mul", "/embeddings/LayerNorm/Mul", []string{"/embeddings/Mul_output_0", "embeddings.LayerNorm.weight"}, "/embeddings/LayerNorm/Mul_output_0"),
		node("Add", "/embeddings/LayerNorm/Add_1", []string{"/embeddings/LayerNorm/Mul_output_0", "embeddings.LayerNorm.bias"}, "/embeddings/LayerNorm/Add_1_output_0"),
	}
	prev := "/embeddings/LayerNorm/Add_1_output_0"
	for l := range s.layers {
		p := fmt.Sprintf("/encoder/layer.%d/", l)
		w := fmt.Sprintf("encoder.layer.%d.", l)
		g.Initializer = append(g.Initializer,
			floatInit(w+"attention.output.LayerNorm.bias", []int64{h}, s.vec(s.decoy, l)),
			floatInit(w+"output.LayerNorm.weight", []int64{h}, s.vec(s.gain, l)),
			floatInit(w+"output.LayerNorm.bias", []int64{h}, s.vec(s.bias, l)),
		)
		out := p + "output/LayerNorm/Add_1_output_0"
		if l == s.layers-1 {
			out = "last_hidden_state"
		}
		g.Node = append(g.Node,
			node("Add", p+"attention/output/LayerNorm/Add_1", []string{prev, w + "attention.output.LayerNorm.bias"}, p+"attention/output/LayerNorm/Add_1_output_0"),
			node("Mul", p+"output/LayerNorm/Mul", []string{p + "attention/output/LayerNorm/Add_1_output_0", w + "output.LayerNorm.weight"}, p+"output/LayerNorm/Mul_output_0"),
			node("Add", p+"output/LayerNorm/Add_1", []string{p + "output/LayerNorm/Mul_output_0", w + "output.LayerNorm.bias"}, out),
		)
		if s.quantDecoy && l < s.layers-1 {
			n := node("DynamicQuantizeLinear", p+"output/LayerNorm/Add_1_output_0_QuantizeLinear", []string{out}, out+"_quantized")
			n.Output = append(n.Output, out+"_scale", out+"_zero_point")
			g.Node = append(g.Node, n)
		}
		prev = out
	}
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("headstart onnx tests"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph:        g,
	}
}

func (s synth) bytes(t testing.TB) []byte {
	t.Helper()
	b, err := proto.Marshal(s.build())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// valueInfo declares a tensor; dims are int64 sizes or string symbols.
func valueInfo(name string, elem onnxpb.TensorProto_DataType, dims ...any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		switch d := d.(type) {
		case int64:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		case string:
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		default:
			panic("valueInfo: dims are int64 or string")
		}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(elem)),
			Shape:    shape,
		}}},
	}
}

func floatInit(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{
		Name:      proto.String(name),
		Dims:      dims,
		DataType:  proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		FloatData: data,
	}
}

func node(op, name string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{
		OpType:    proto.String(op),
		Name:      proto.String(name),
		Input:     in,
		Output:    []string{out},
		Attribute: attrs,
	}
}

// batch returns inputs for the synthetic model: B sequences of length T,
// the last position of the second sequence masked out.
func synthBatch(s synth, b, tlen int) (ids, mask Int64Tensor) {
	shape := []int64{int64(b), int64(tlen)}
	ids = Int64Tensor{Shape: shape, Data: make([]int64, b*tlen)}
	mask = Int64Tensor{Shape: shape, Data: make([]int64, b*tlen)}
	for i := range ids.Data {
		ids.Data[i] = int64((i*5 + 1) % s.vocab)
		mask.Data[i] = 1
	}
	if b > 1 {
		mask.Data[2*tlen-1] = 0
	}
	return ids, mask
}
