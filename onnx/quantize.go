package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// QuantizeSettings configure QuantizeDynamic. The zero value is valid: one scale per
// output column, every MatMul and Gemm with a constant 2-D weight.
type QuantizeSettings struct {
	// PerTensor quantises each weight matrix with one scale instead of one per output
	// column (onnxruntime.quantization.quantize_dynamic's per_channel=False).
	PerTensor bool
	// MinWeights leaves weights with fewer elements in float32. Default 0: all.
	MinWeights int
}

// QuantizeSummary says what QuantizeDynamic changed.
type QuantizeSummary struct {
	// Quantized counts the MatMul and Gemm nodes rewritten.
	Quantized int
	// Skipped names the MatMul and Gemm nodes left in float32, with the reason.
	Skipped []string
	// FloatBytes and Int8Bytes are the weights' size before and after (scales
	// included).
	FloatBytes, Int8Bytes int64
}

// QuantizeDynamic rewrites the model's matrix products with constant float32 weights
// to int8 with dynamic quantisation of the activations, in the pattern that
// onnxruntime.quantization.quantize_dynamic writes (and onnxruntime fuses into
// DynamicQuantizeMatMul):
//
//	(xq, xs, xz) = DynamicQuantizeLinear(x)                  x per tensor, uint8
//	y = Cast(MatMulInteger(xq, Wq, xz, Wz), float) · (xs · Ws)
//
// Each weight W (K, N) becomes Wq = round(W / Ws) clamped to [−127, 127] in int8 with
// zero point Wz = 0 and scale Ws = max_k |W_kj| / 127, one per output column j
// (per-channel; one for the whole matrix with PerTensor). A Gemm (transA = 0, alpha =
// beta = 1) becomes that product plus an Add of its bias; its weight is transposed
// first when transB = 1. Activations feeding several products (query, key and value)
// are quantised once. Products whose weight is not a 2-D float32 initialiser (the
// attention scores, which multiply two activations) are left as they are. A float
// weight that nothing else reads is removed.
//
// The weights of an OpenModel model are loaded first. The model must import the
// default opset 11 or later (DynamicQuantizeLinear); otherwise, and when no product can
// be quantised, the error wraps ErrUnsupportedGraph and the model is unchanged.
func (m *Model) QuantizeDynamic(s QuantizeSettings) (QuantizeSummary, error) {
	var sum QuantizeSummary
	if _, err := m.defaultOpset(); err != nil {
		return sum, err
	}
	if err := m.loadStubs(); err != nil {
		return sum, err
	}
	g := m.Proto.GetGraph()
	inits := m.initializers()
	uses := make(map[string]int)
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			uses[in]++
		}
	}
	for _, o := range g.GetOutput() {
		uses[o.GetName()]++
	}
	b := newGraphBuilder(g, 0)
	fresh := func(base string) string {
		name := base
		for i := 1; b.used[name]; i++ {
			name = fmt.Sprintf("%s_%d", base, i)
		}
		b.used[name] = true
		return name
	}
	type quantAct struct{ q, scale, zero string }
	acts := make(map[string]quantAct) // activation -> its DynamicQuantizeLinear outputs
	var out []*onnxpb.NodeProto
	var newInits []*onnxpb.TensorProto
	removed := make(map[string]bool)
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if (op != "MatMul" && op != "Gemm") || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
			out = append(out, n)
			continue
		}
		w, transB, bias, why := quantizable(n, inits)
		if why == "" && s.MinWeights > 0 && weightCount(w) < s.MinWeights {
			why = fmt.Sprintf("weight has fewer than %d elements", s.MinWeights)
		}
		if why != "" {
			if w != nil || op == "Gemm" {
				sum.Skipped = append(sum.Skipped, fmt.Sprintf("%s %q: %s", op, n.GetName(), why))
			}
			out = append(out, n)
			continue
		}
		vals, dims, err := floatsOf(w)
		if err != nil {
			return QuantizeSummary{}, fmt.Errorf("%w: weight %q of %s %q: %v", ErrUnsupportedGraph, w.GetName(), op, n.GetName(), err)
		}
		K, N := dims[0], dims[1]
		if transB {
			vals, K, N = transpose(vals, dims[0], dims[1]), dims[1], dims[0]
		}
		q, scales := quantizeColumns(vals, K, N, s.PerTensor)
		sum.FloatBytes += int64(4 * len(vals))
		sum.Int8Bytes += int64(len(q) + 4*len(scales) + len(scales))

		base := w.GetName()
		wq, ws, wz := fresh(base+"_quantized"), fresh(base+"_scale"), fresh(base+"_zero_point")
		scaleDims := []int64{int64(len(scales))}
		if s.PerTensor {
			scaleDims = []int64{}
		}
		newInits = append(newInits,
			&onnxpb.TensorProto{Name: proto.String(wq), Dims: []int64{int64(K), int64(N)}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT8)), RawData: int8Bytes(q)},
			&onnxpb.TensorProto{Name: proto.String(ws), Dims: scaleDims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: float32Bytes(scales)},
			&onnxpb.TensorProto{Name: proto.String(wz), Dims: scaleDims, DataType: proto.Int32(int32(onnxpb.TensorProto_INT8)), RawData: make([]byte, len(scales))},
		)
		uses[w.GetName()]--
		if uses[w.GetName()] == 0 {
			removed[w.GetName()] = true
		}

		x := n.GetInput()[0]
		a, ok := acts[x]
		if !ok {
			a = quantAct{fresh(x + "_quantized"), fresh(x + "_scale"), fresh(x + "_zero_point")}
			acts[x] = a
			out = append(out, &onnxpb.NodeProto{OpType: proto.String("DynamicQuantizeLinear"), Name: proto.String(fresh(x + "_QuantizeLinear")),
				Input: []string{x}, Output: []string{a.q, a.scale, a.zero}})
		}
		y := n.GetOutput()[0]
		name := n.GetName()
		if name == "" {
			name = y
		}
		prod, cast, scale := fresh(y+"_MatMulInteger"), fresh(y+"_cast"), fresh(y+"_scales_mul")
		mulOut := y
		if bias != "" {
			mulOut = fresh(y + "_before_bias")
		}
		out = append(out,
			&onnxpb.NodeProto{OpType: proto.String("MatMulInteger"), Name: proto.String(fresh(name + "_quant")), Input: []string{a.q, wq, a.zero, wz}, Output: []string{prod}},
			&onnxpb.NodeProto{OpType: proto.String("Cast"), Name: proto.String(fresh(name + "_cast")), Input: []string{prod}, Output: []string{cast},
				Attribute: []*onnxpb.AttributeProto{intAttr("to", int64(onnxpb.TensorProto_FLOAT))}},
			&onnxpb.NodeProto{OpType: proto.String("Mul"), Name: proto.String(fresh(name + "_scales_mul")), Input: []string{a.scale, ws}, Output: []string{scale}},
			&onnxpb.NodeProto{OpType: proto.String("Mul"), Name: proto.String(fresh(name + "_output_mul")), Input: []string{cast, scale}, Output: []string{mulOut}},
		)
		if bias != "" {
			out = append(out, &onnxpb.NodeProto{OpType: proto.String("Add"), Name: proto.String(fresh(name + "_bias_add")), Input: []string{mulOut, bias}, Output: []string{y}})
		}
		sum.Quantized++
	}
	if sum.Quantized == 0 {
		return sum, fmt.Errorf("%w: no MatMul or Gemm with a constant 2-D float32 weight to quantise (%d skipped)", ErrUnsupportedGraph, len(sum.Skipped))
	}
	g.Node = out
	kept := g.Initializer[:0]
	for _, t := range g.Initializer {
		if !removed[t.GetName()] {
			kept = append(kept, t)
		}
	}
	g.Initializer = append(kept, newInits...)
	// Graph inputs that listed a removed weight (IR < 4) go too.
	ins := g.Input[:0]
	for _, vi := range g.Input {
		if !removed[vi.GetName()] {
			ins = append(ins, vi)
		}
	}
	g.Input = ins
	return sum, nil
}

// quantizable returns the weight initialiser of a MatMul or Gemm node that
// QuantizeDynamic can rewrite, whether it is stored transposed (Gemm transB), and the
// Gemm's bias input (empty for none); or the reason it cannot.
func quantizable(n *onnxpb.NodeProto, inits map[string]*onnxpb.TensorProto) (w *onnxpb.TensorProto, transB bool, bias, why string) {
	in := n.GetInput()
	if len(in) < 2 || len(n.GetOutput()) != 1 {
		return nil, false, "", "unexpected inputs or outputs"
	}
	w = inits[in[1]]
	if w == nil {
		return nil, false, "", "second input is not a constant" // attention scores: no message
	}
	if onnxpb.TensorProto_DataType(w.GetDataType()) != onnxpb.TensorProto_FLOAT || len(w.GetDims()) != 2 {
		return w, false, "", fmt.Sprintf("weight %q is not a 2-D float32 tensor", w.GetName())
	}
	if n.GetOpType() == "Gemm" {
		for _, a := range n.GetAttribute() {
			switch a.GetName() {
			case "transA":
				if a.GetI() != 0 {
					return w, false, "", "transA = 1"
				}
			case "transB":
				transB = a.GetI() != 0
			case "alpha", "beta":
				if a.GetF() != 1 {
					return w, false, "", fmt.Sprintf("%s = %v (want 1)", a.GetName(), a.GetF())
				}
			}
		}
		if len(in) > 2 {
			bias = in[2]
		}
	}
	return w, transB, bias, ""
}

func weightCount(t *onnxpb.TensorProto) int {
	n := 1
	for _, d := range t.GetDims() {
		n *= int(d)
	}
	return n
}

// transpose returns the (c, r) transpose of the row-major (r, c) matrix v.
func transpose(v []float32, r, c int) []float32 {
	t := make([]float32, len(v))
	for i := range r {
		for j := range c {
			t[j*r+i] = v[i*c+j]
		}
	}
	return t
}

// quantizeColumns quantises the row-major (K, N) matrix w symmetrically to int8: per
// column j, scale_j = max_k |w_kj| / 127 and q_kj = round(w_kj / scale_j) (ties away
// from zero), within [−127, 127]; a column of zeros gets scale 1. With perTensor one
// scale covers the matrix.
func quantizeColumns(w []float32, K, N int, perTensor bool) (q []int8, scales []float32) {
	amax := make([]float32, N)
	for k := range K {
		for j, v := range w[k*N : (k+1)*N] {
			amax[j] = max(amax[j], float32(math.Abs(float64(v))))
		}
	}
	if perTensor {
		var m float32
		for _, a := range amax {
			m = max(m, a)
		}
		amax = []float32{m}
	}
	scales = make([]float32, len(amax))
	for j, a := range amax {
		scales[j] = a / 127
		if a == 0 {
			scales[j] = 1
		}
	}
	q = make([]int8, K*N)
	for k := range K {
		for j, v := range w[k*N : (k+1)*N] {
			s := scales[0]
			if !perTensor {
				s = scales[j]
			}
			r := math.Round(float64(v) / float64(s))
			q[k*N+j] = int8(max(-127, min(127, r)))
		}
	}
	return q, scales
}

func int8Bytes(q []int8) []byte {
	b := make([]byte, len(q))
	for i, v := range q {
		b[i] = byte(v)
	}
	return b
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}
