package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// ErrBadHead means a HeadSpec cannot be appended: an unknown pooling,
// activation or output, a layer out of range, or weights whose shapes do not
// fit the features. The wrapping error names the field and lists the valid
// choices.
var ErrBadHead = errors.New("onnx: bad head")

// Names of the graph outputs that AppendHead leaves, in this order.
const (
	// OutputProbabilities is float32 [batch, K]: the class probabilities
	// (K = 2 for Output "binary").
	OutputProbabilities = "probabilities"
	// OutputLogits is float32 [batch, K']: the last dense layer's values
	// (K' = 1 for Output "binary").
	OutputLogits = "logits"
)

// Metadata keys that AppendHead writes to the model's metadata_props
// (onnxruntime's custom metadata map).
const (
	// MetadataLabels holds HeadSpec.Labels as a JSON array of strings:
	// column k of probabilities is label k. Absent when Labels is empty.
	MetadataLabels = "labels"
	// MetadataHead holds a JSON object describing the appended head:
	// pooling, layers, normalize, standardize, dense layer shapes and
	// activations, output, hidden size.
	MetadataHead = "headstart.head"
)

// headPrefix starts the name of every node, tensor and initialiser that
// AppendHead adds.
const headPrefix = "headstart/head/"

// HeadSpec describes the classifier that AppendHead puts on top of an
// encoder. It uses plain slices so that callers need no other package; its
// fields mirror a trained head (package head) and the feature settings it
// was trained on. The zero value is not a head (Dense is empty); every other
// field's zero value is valid and its default is written beside it.
//
// The appended graph computes, for each row of the batch (m the attention
// mask, any nonzero value counting as 1; h^l the hidden state l):
//
//	x   = [pool(h^Layers[0]), ..., pool(h^Layers[L-1])]   (D = L·hidden)
//	x   = x / max(‖x‖₂, 1e-12)                            if Normalize
//	x   = (x − Mean) / Std                                if Mean != nil
//	x   = act_i(x·W_iᵀ + B_i)                             for each Dense layer i
//	p   = softmax(x) | σ(x) | [1−σ(x), σ(x)]              by Output
//
// with pool as features.Pool (sentence-transformers' Pooling):
//
//	mean:  Σ_t m_t·h_t / max(Σ_t m_t, 1e-9)
//	cls:   h_0
//	max:   max_t (m_t ? h_t : −1e9), element-wise
//	last:  h_k, k the last position with m_k ≠ 0 (0 if none)
//
// and GELU the exact one, 0.5·x·(1 + erf(x/√2)) (PyTorch's
// nn.GELU(approximate="none")).
type HeadSpec struct {
	// Spec is the features the head was trained on. Pooling is "mean", "cls",
	// "max" or "last" (default "": mean). Layers are hidden-state indices as
	// HiddenStates orders them (0 the embeddings output, i the output of block
	// i-1), already resolved (see ResolveLayers); each is pooled separately and
	// the results are concatenated in this order (default nil: the last hidden
	// state). Normalize scales the concatenated vector to unit L2 norm. MaxLen
	// and Prefix act before the graph (on the token ids) and are not part of
	// it; a caller records them in Metadata.
	features.Spec
	// Mean and Std standardise the (normalised) features, x' = (x−Mean)/Std.
	// Both nil (default) for no standardisation; otherwise both have length
	// D and every Std is positive.
	Mean, Std []float32
	// Dense are the head's layers, applied in order; the first takes D
	// inputs, each next one the previous one's outputs. At least one.
	Dense []DenseLayer
	// Output turns the last layer's values into probabilities: "softmax"
	// (multi-class), "sigmoid" (independent per-label probabilities,
	// multi-label one-vs-rest) or "binary" (one logit z for two classes,
	// p = [1−σ(z), σ(z)], scikit-learn's binary logistic regression).
	// Default ("") softmax. The names are those of head.Output.
	Output string
	// Labels name the probability columns; when set, there must be one per
	// column, and they are stored in the model's metadata (MetadataLabels).
	// Default nil: no labels.
	Labels []string
	// Metadata are extra metadata_props entries (a fingerprint, a version);
	// they override entries of the same key already in the model. The keys
	// MetadataLabels and MetadataHead are reserved. Default nil.
	Metadata map[string]string
}

// DenseLayer is one fully connected layer, y = act(x·Wᵀ + B).
type DenseLayer struct {
	// W is the weight matrix, (len(B), in) row-major: row o holds the
	// weights of output o.
	W []float32
	// B is the bias, one per output. It sets the layer's output count.
	B []float32
	// Activation is "" or "identity" (none) or "gelu" (exact, with erf).
	Activation string
}

var (
	poolingChoices    = []string{"mean", "cls", "max", "last"}
	outputChoices     = []string{"softmax", "sigmoid", "binary"}
	activationChoices = []string{"identity", "gelu"}
)

// maxPoolFill is what features.Pool and sentence-transformers put in padded
// positions before taking the maximum over tokens.
const maxPoolFill = -1e9

// normEps is the floor of the norm in L2 normalisation, as in
// features.Normalize and torch.nn.functional.normalize.
const normEps = 1e-12

// AppendHead turns an encoder into a classifier: it appends spec's pooling,
// normalisation, standardisation, dense layers and output function to the
// graph, after the hidden states that HiddenStates finds, and makes the
// graph's outputs exactly OutputProbabilities then OutputLogits (the
// encoder's own outputs, last_hidden_state among them, are no longer
// outputs). The inputs are kept as they are: the graph still takes the
// tokenizer's int64 [batch, sequence] tensors (input_ids, attention_mask,
// token_type_ids for BERT), and it must have an attention_mask input.
// Nodes and initialisers that no output needs any more (the blocks after
// the last pooled layer) are removed.
//
// Only standard ONNX operators of the model's own opset are used (Cast,
// Unsqueeze, ReduceSum, ReduceMax, ReduceSumSquare, Where, Range, Equal,
// Gather, Concat, Gemm, Erf, Softmax, Sigmoid and arithmetic), in the form
// that opset defines, so the encoder's nodes are untouched and any
// onnxruntime that runs the encoder runs the classifier. The opset must be
// 11 or later (Range).
//
// The probabilities equal the head's predictions on features that
// features.PoolLayers and features.NormalizeRows make from the same hidden
// states, up to float32 rounding (the graph computes in float32 throughout).
// spec's slices are copied; spec is not retained.
//
// A spec that does not fit the model gives an error wrapping ErrBadHead
// that names the field (an unknown pooling lists the valid ones; a weight
// matrix of the wrong size gives the expected shape); a graph that
// HiddenStates does not understand gives ErrUnsupportedGraph. On error, the
// model is not changed.
func (m *Model) AppendHead(spec HeadSpec) error {
	g := m.Proto.GetGraph()
	if g == nil {
		return fmt.Errorf("%w: model has no graph", ErrNotONNX)
	}
	opset, err := m.defaultOpset()
	if err != nil {
		return err
	}
	l, err := m.encoderLayout()
	if err != nil {
		return err
	}
	hidden, err := m.hiddenSize(l)
	if err != nil {
		return err
	}
	ps, err := checkHeadSpec(spec, len(l.hidden), hidden)
	if err != nil {
		return err
	}
	var mask *onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if in.GetName() == "attention_mask" {
			mask = in
		}
	}
	if mask == nil {
		return fmt.Errorf("%w: no input attention_mask, which pooling needs; the model's inputs are %s",
			ErrUnsupportedGraph, namesOf(m.Inputs()))
	}
	batchDim := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch_size"}}
	if d := mask.GetType().GetTensorType().GetShape().GetDim(); len(d) == 2 {
		batchDim = d[0]
	}

	b := newGraphBuilder(g, opset)
	pooled := make([]string, len(ps.layers))
	pool := b.pooler(ps.pooling, mask.GetName())
	for i, layer := range ps.layers {
		pooled[i] = pool(l.hidden[layer], fmt.Sprintf("layer%d", layer))
	}
	x := pooled[0]
	if len(pooled) > 1 {
		x = b.op("Concat", "features", pooled, intAttr("axis", 1))
	}
	if spec.Normalize {
		ss := b.reduce("ReduceSumSquare", "norm/sumsq", x, []int64{1}, true)
		n := b.op("Sqrt", "norm/norm", []string{ss})
		n = b.op("Max", "norm/clip", []string{n, b.scalar("norm/eps", normEps)})
		x = b.op("Div", "normalized", []string{x, n})
	}
	if spec.Mean != nil {
		x = b.op("Sub", "standardize/centered", []string{x, b.floats("standardize/mean", []int64{int64(len(spec.Mean))}, spec.Mean)})
		x = b.op("Div", "standardized", []string{x, b.floats("standardize/std", []int64{int64(len(spec.Std))}, spec.Std)})
	}
	for i, d := range spec.Dense {
		p := fmt.Sprintf("dense%d/", i)
		out := int64(len(d.B))
		w := b.floats(p+"weight", []int64{out, int64(len(d.W)) / out}, d.W)
		bias := b.floats(p+"bias", []int64{out}, d.B)
		name := p + "gemm"
		if i == len(spec.Dense)-1 && ps.acts[i] == "identity" {
			name = OutputLogits
		}
		x = b.op("Gemm", name, []string{x, w, bias}, intAttr("transB", 1))
		if ps.acts[i] == "gelu" {
			// 0.5·x·(1 + erf(x/√2)), as torch.onnx exports nn.GELU before opset 20.
			e := b.op("Div", p+"gelu/scaled", []string{x, b.scalar(p+"gelu/sqrt2", math.Sqrt2)})
			e = b.op("Erf", p+"gelu/erf", []string{e})
			e = b.op("Add", p+"gelu/erf_plus_1", []string{e, b.scalar(p+"gelu/one", 1)})
			e = b.op("Mul", p+"gelu/x_times", []string{x, e})
			name := p + "gelu"
			if i == len(spec.Dense)-1 {
				name = OutputLogits
			}
			x = b.op("Mul", name, []string{e, b.scalar(p+"gelu/half", 0.5)})
		}
	}
	logits := x
	var probs string
	switch ps.output {
	case "softmax":
		probs = b.op("Softmax", OutputProbabilities, []string{logits}, intAttr("axis", 1))
	case "sigmoid":
		probs = b.op("Sigmoid", OutputProbabilities, []string{logits})
	case "binary":
		q := b.op("Sigmoid", "binary/positive", []string{logits})
		neg := b.op("Sub", "binary/negative", []string{b.scalar("binary/one", 1), q})
		probs = b.op("Concat", OutputProbabilities, []string{neg, q}, intAttr("axis", 1))
	}
	if err := b.err(); err != nil {
		return err
	}

	meta, err := headMetadata(spec, ps, hidden)
	if err != nil {
		return err
	}

	// Commit: nothing above changed the model.
	g.Node = append(g.Node, b.nodes...)
	g.Initializer = append(g.Initializer, b.inits...)
	kdim := func(k int) *onnxpb.TensorShapeProto_Dimension {
		return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(k)}}
	}
	g.Output = []*onnxpb.ValueInfoProto{
		{Name: proto.String(probs), Type: tensorType(onnxpb.TensorProto_FLOAT, []*onnxpb.TensorShapeProto_Dimension{batchDim, kdim(ps.probCols)})},
		{Name: proto.String(logits), Type: tensorType(onnxpb.TensorProto_FLOAT, []*onnxpb.TensorShapeProto_Dimension{batchDim, kdim(ps.logitCols)})},
	}
	pruneGraph(g)
	m.setMetadata(meta)
	return nil
}

// parsedHead is a checked HeadSpec with its defaults filled in.
type parsedHead struct {
	pooling   string
	layers    []int
	acts      []string
	output    string
	logitCols int
	probCols  int
}

// checkHeadSpec validates spec against an encoder with numHidden hidden
// states of width hidden.
func checkHeadSpec(spec HeadSpec, numHidden, hidden int) (*parsedHead, error) {
	ps := &parsedHead{
		pooling: strings.ToLower(strings.TrimSpace(spec.Pooling)),
		output:  strings.ToLower(strings.TrimSpace(spec.Output)),
		layers:  slices.Clone(spec.Layers),
	}
	if ps.pooling == "" {
		ps.pooling = "mean"
	}
	if !slices.Contains(poolingChoices, ps.pooling) {
		return nil, fmt.Errorf("%w: pooling %q unknown; want one of %s", ErrBadHead, spec.Pooling, strings.Join(poolingChoices, ", "))
	}
	if ps.output == "" {
		ps.output = "softmax"
	}
	if !slices.Contains(outputChoices, ps.output) {
		return nil, fmt.Errorf("%w: output %q unknown; want one of %s", ErrBadHead, spec.Output, strings.Join(outputChoices, ", "))
	}
	if ps.layers == nil {
		ps.layers = []int{numHidden - 1}
	}
	if len(ps.layers) == 0 {
		return nil, fmt.Errorf("%w: no layers given; model has %d hidden states: 0..%d", ErrBadHead, numHidden, numHidden-1)
	}
	seen := make(map[int]bool)
	for _, l := range ps.layers {
		if l < 0 || l >= numHidden {
			return nil, fmt.Errorf("%w: layer %d out of range; model has %d hidden states: 0..%d (resolve negative indices with ResolveLayers)",
				ErrBadHead, l, numHidden, numHidden-1)
		}
		if seen[l] {
			return nil, fmt.Errorf("%w: layer %d given twice in %v", ErrBadHead, l, ps.layers)
		}
		seen[l] = true
	}
	d := len(ps.layers) * hidden
	if (spec.Mean == nil) != (spec.Std == nil) {
		return nil, fmt.Errorf("%w: standardisation needs both Mean and Std (got %d and %d values)", ErrBadHead, len(spec.Mean), len(spec.Std))
	}
	if spec.Mean != nil {
		if len(spec.Mean) != d || len(spec.Std) != d {
			return nil, fmt.Errorf("%w: Mean has %d values and Std %d; want D = %d each (%d layers × hidden size %d)",
				ErrBadHead, len(spec.Mean), len(spec.Std), d, len(ps.layers), hidden)
		}
		if err := checkFinite("Mean", spec.Mean); err != nil {
			return nil, err
		}
		for j, s := range spec.Std {
			if !(s > 0) || math.IsInf(float64(s), 1) {
				return nil, fmt.Errorf("%w: Std[%d] = %v; want a positive finite value", ErrBadHead, j, s)
			}
		}
	}
	if len(spec.Dense) == 0 {
		return nil, fmt.Errorf("%w: no dense layers; a head needs at least one", ErrBadHead)
	}
	in := d
	for i, l := range spec.Dense {
		what := fmt.Sprintf("dense layer %d", i)
		out := len(l.B)
		if out == 0 {
			return nil, fmt.Errorf("%w: %s: empty bias B; it sets the number of outputs", ErrBadHead, what)
		}
		if len(l.W) != out*in {
			from := fmt.Sprintf("layer %d's outputs", i-1)
			if i == 0 {
				from = fmt.Sprintf("D = %d layers × hidden size %d", len(ps.layers), hidden)
			}
			return nil, fmt.Errorf("%w: %s: W has %d values; want %d outputs (len B) × %d inputs (%s) = %d",
				ErrBadHead, what, len(l.W), out, in, from, out*in)
		}
		if err := checkFinite(what+" W", l.W); err != nil {
			return nil, err
		}
		if err := checkFinite(what+" B", l.B); err != nil {
			return nil, err
		}
		act := strings.ToLower(strings.TrimSpace(l.Activation))
		if act == "" {
			act = "identity"
		}
		if !slices.Contains(activationChoices, act) {
			return nil, fmt.Errorf("%w: %s: activation %q unknown; want one of %s", ErrBadHead, what, l.Activation, strings.Join(activationChoices, ", "))
		}
		ps.acts = append(ps.acts, act)
		in = out
	}
	ps.logitCols, ps.probCols = in, in
	if ps.output == "binary" {
		if in != 1 {
			return nil, fmt.Errorf("%w: output binary takes one logit; the last dense layer has %d outputs (use softmax or sigmoid)", ErrBadHead, in)
		}
		ps.probCols = 2
	}
	if spec.Labels != nil && len(spec.Labels) != ps.probCols {
		return nil, fmt.Errorf("%w: %d labels for %d probability columns", ErrBadHead, len(spec.Labels), ps.probCols)
	}
	for _, k := range []string{MetadataLabels, MetadataHead} {
		if _, ok := spec.Metadata[k]; ok {
			return nil, fmt.Errorf("%w: metadata key %q is reserved (AppendHead writes it)", ErrBadHead, k)
		}
	}
	return ps, nil
}

func checkFinite(what string, v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: %s[%d] = %v; want a finite value", ErrBadHead, what, i, x)
		}
	}
	return nil
}

// headMetadata returns the metadata_props entries AppendHead writes.
func headMetadata(spec HeadSpec, ps *parsedHead, hidden int) (map[string]string, error) {
	type dense struct {
		In         int    `json:"in"`
		Out        int    `json:"out"`
		Activation string `json:"activation"`
	}
	desc := struct {
		Pooling     string  `json:"pooling"`
		Layers      []int   `json:"layers"`
		HiddenSize  int     `json:"hidden_size"`
		Normalize   bool    `json:"normalize"`
		Standardize bool    `json:"standardize"`
		Dense       []dense `json:"dense"`
		Output      string  `json:"output"`
	}{ps.pooling, ps.layers, hidden, spec.Normalize, spec.Mean != nil, nil, ps.output}
	for i, l := range spec.Dense {
		desc.Dense = append(desc.Dense, dense{len(l.W) / len(l.B), len(l.B), ps.acts[i]})
	}
	meta := make(map[string]string, len(spec.Metadata)+2)
	for k, v := range spec.Metadata {
		meta[k] = v
	}
	js, err := json.Marshal(desc)
	if err != nil {
		return nil, fmt.Errorf("onnx: encoding head metadata: %w", err)
	}
	meta[MetadataHead] = string(js)
	if len(spec.Labels) > 0 {
		js, err := json.Marshal(spec.Labels)
		if err != nil {
			return nil, fmt.Errorf("onnx: encoding labels: %w", err)
		}
		meta[MetadataLabels] = string(js)
	}
	return meta, nil
}

// setMetadata sets the model's metadata_props entries, replacing those with
// the same keys; new keys are appended in sorted order.
func (m *Model) setMetadata(meta map[string]string) {
	for _, e := range m.Proto.MetadataProps {
		if v, ok := meta[e.GetKey()]; ok {
			e.Value = proto.String(v)
			delete(meta, e.GetKey())
		}
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		m.Proto.MetadataProps = append(m.Proto.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(meta[k])})
	}
}

// defaultOpset returns the version of the default ONNX domain the model
// imports.
func (m *Model) defaultOpset() (int64, error) {
	for _, o := range m.Proto.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			v := o.GetVersion()
			if v < 11 {
				return 0, fmt.Errorf("%w: opset %d; appending a head needs opset 11 or later", ErrUnsupportedGraph, v)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: the model imports no default-domain (ai.onnx) opset", ErrUnsupportedGraph)
}

// graphBuilder collects the nodes and initialisers of an appended subgraph,
// writing each operator in the form the model's opset defines. Names get
// headPrefix; a name the graph already uses is an error, reported by err.
type graphBuilder struct {
	opset int64
	nodes []*onnxpb.NodeProto
	inits []*onnxpb.TensorProto
	used  map[string]bool // tensor and node names of the graph and of what was added
	dup   []string
}

func newGraphBuilder(g *onnxpb.GraphProto, opset int64) *graphBuilder {
	b := &graphBuilder{opset: opset, used: make(map[string]bool)}
	for _, vi := range g.GetInput() {
		b.used[vi.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		b.used[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		b.used[n.GetName()] = true
		for _, t := range n.GetOutput() {
			b.used[t] = true
		}
	}
	return b
}

// name returns the full name of a new tensor (and of the node or
// initialiser that makes it). The graph outputs keep their bare names.
func (b *graphBuilder) name(s string) string {
	if s != OutputProbabilities && s != OutputLogits {
		s = headPrefix + s
	}
	if b.used[s] {
		b.dup = append(b.dup, s)
	}
	b.used[s] = true
	return s
}

func (b *graphBuilder) err() error {
	if len(b.dup) > 0 {
		return fmt.Errorf("%w: the graph already has tensors or nodes named %q (was a head appended already?)", ErrUnsupportedGraph, b.dup)
	}
	return nil
}

// op appends a node with one output, named after it, and returns the output.
func (b *graphBuilder) op(opType, name string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	name = b.name(name)
	b.nodes = append(b.nodes, &onnxpb.NodeProto{
		OpType:    proto.String(opType),
		Name:      proto.String(name),
		Input:     inputs,
		Output:    []string{name},
		Attribute: attrs,
	})
	return name
}

// floats adds a float32 initialiser (the data is copied).
func (b *graphBuilder) floats(name string, dims []int64, data []float32) string {
	name = b.name(name)
	b.inits = append(b.inits, &onnxpb.TensorProto{
		Name:      proto.String(name),
		Dims:      dims,
		DataType:  proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		FloatData: slices.Clone(data),
	})
	return name
}

// scalar adds a float32 scalar initialiser.
func (b *graphBuilder) scalar(name string, v float64) string {
	return b.floats(name, []int64{}, []float32{float32(v)})
}

// ints adds an int64 initialiser; nil dims means a scalar.
func (b *graphBuilder) ints(name string, dims []int64, data ...int64) string {
	if dims == nil {
		dims = []int64{}
	}
	name = b.name(name)
	b.inits = append(b.inits, &onnxpb.TensorProto{
		Name:      proto.String(name),
		Dims:      dims,
		DataType:  proto.Int32(int32(onnxpb.TensorProto_INT64)),
		Int64Data: slices.Clone(data),
	})
	return name
}

func (b *graphBuilder) cast(name, x string, to onnxpb.TensorProto_DataType) string {
	return b.op("Cast", name, []string{x}, intAttr("to", int64(to)))
}

// unsqueeze inserts axes: an attribute before opset 13, an input from 13.
func (b *graphBuilder) unsqueeze(name, x string, axes []int64) string {
	if b.opset < 13 {
		return b.op("Unsqueeze", name, []string{x}, intsAttr("axes", axes))
	}
	return b.op("Unsqueeze", name, []string{x, b.ints(name+"/axes", []int64{int64(len(axes))}, axes...)})
}

// reduce appends a Reduce* node. Its axes are an attribute until the opset
// that made them an input: 13 for ReduceSum, 18 for the others.
func (b *graphBuilder) reduce(opType, name, x string, axes []int64, keepdims bool) string {
	inputAxes := int64(18)
	if opType == "ReduceSum" {
		inputAxes = 13
	}
	keep := intAttr("keepdims", 0)
	if keepdims {
		keep = intAttr("keepdims", 1)
	}
	if b.opset < inputAxes {
		return b.op(opType, name, []string{x}, intsAttr("axes", axes), keep)
	}
	return b.op(opType, name, []string{x, b.ints(name+"/axes", []int64{int64(len(axes))}, axes...)}, keep)
}

// pooler builds what pooling shares across layers (the mask in the forms it
// needs) and returns the function that pools one hidden state, (B,T,C), into
// (B,C).
func (b *graphBuilder) pooler(pooling, mask string) func(hidden, tag string) string {
	switch pooling {
	case "cls":
		zero := b.ints("cls/index", nil, 0)
		return func(h, tag string) string {
			return b.op("Gather", "pool/"+tag+"/cls", []string{h, zero}, intAttr("axis", 1))
		}
	case "max":
		maskB := b.maskBool(mask)
		mask3 := b.unsqueeze("mask/bool3", maskB, []int64{2}) // (B,T,1)
		fill := b.scalar("max/fill", maxPoolFill)
		return func(h, tag string) string {
			filled := b.op("Where", "pool/"+tag+"/filled", []string{mask3, h, fill})
			return b.reduce("ReduceMax", "pool/"+tag+"/max", filled, []int64{1}, false)
		}
	case "last":
		// k = max(max_t m_t·(t+1) − 1, 0) is the last unmasked position, 0
		// if there is none; the weighted sum with its one-hot row selects
		// h_k exactly (one term, the others are 0).
		maskF := b.cast("mask/float", b.maskBool(mask), onnxpb.TensorProto_FLOAT) // (B,T)
		shape := b.op("Shape", "mask/shape", []string{mask})
		seqLen := b.op("Gather", "mask/seq_len", []string{shape, b.ints("mask/seq_axis", nil, 1)}, intAttr("axis", 0))
		pos := b.op("Range", "last/positions", []string{b.ints("last/start", nil, 0), seqLen, b.ints("last/delta", nil, 1)})
		posF := b.cast("last/positions_float", pos, onnxpb.TensorProto_FLOAT) // (T)
		one := b.scalar("last/one", 1)
		ranks := b.op("Add", "last/ranks", []string{posF, one})
		scores := b.op("Mul", "last/scores", []string{maskF, ranks})
		k := b.reduce("ReduceMax", "last/max_rank", scores, []int64{1}, true) // (B,1)
		k = b.op("Sub", "last/index_unclipped", []string{k, one})
		k = b.op("Max", "last/index", []string{k, b.scalar("last/zero", 0)})
		isLast := b.op("Equal", "last/is_last", []string{posF, k}) // (B,T)
		sel := b.unsqueeze("last/onehot3", b.cast("last/onehot", isLast, onnxpb.TensorProto_FLOAT), []int64{2})
		return func(h, tag string) string {
			w := b.op("Mul", "pool/"+tag+"/selected", []string{h, sel})
			return b.reduce("ReduceSum", "pool/"+tag+"/last", w, []int64{1}, false)
		}
	default: // mean
		maskF := b.cast("mask/float", b.maskBool(mask), onnxpb.TensorProto_FLOAT)
		mask3 := b.unsqueeze("mask/float3", maskF, []int64{2})
		count := b.reduce("ReduceSum", "mean/count", maskF, []int64{1}, true) // (B,1)
		count = b.op("Max", "mean/count_clipped", []string{count, b.scalar("mean/eps", 1e-9)})
		return func(h, tag string) string {
			w := b.op("Mul", "pool/"+tag+"/masked", []string{h, mask3})
			s := b.reduce("ReduceSum", "pool/"+tag+"/sum", w, []int64{1}, false) // (B,C)
			return b.op("Div", "pool/"+tag+"/mean", []string{s, count})
		}
	}
}

// maskBool casts the attention mask to bool: any nonzero value counts as 1,
// as in features.Pool.
func (b *graphBuilder) maskBool(mask string) string {
	return b.cast("mask/bool", mask, onnxpb.TensorProto_BOOL)
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func intsAttr(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: slices.Clone(v)}
}

// pruneGraph removes the nodes that no graph output needs, then the
// initialisers, value_info entries and initialiser-inputs that nothing uses
// any more. The graph's real inputs stay, used or not, so callers feed what
// they fed before. Nodes are in topological order (as ONNX requires), so one
// backward pass finds what is needed. Names used inside a node's subgraphs
// (If, Loop) count as used by the node.
func pruneGraph(g *onnxpb.GraphProto) {
	needed := make(map[string]bool)
	for _, o := range g.GetOutput() {
		needed[o.GetName()] = true
	}
	keep := make([]bool, len(g.Node))
	for i := len(g.Node) - 1; i >= 0; i-- {
		n := g.Node[i]
		if !slices.ContainsFunc(n.GetOutput(), func(t string) bool { return needed[t] }) {
			continue
		}
		keep[i] = true
		for _, in := range n.GetInput() {
			needed[in] = true
		}
		for _, a := range n.GetAttribute() {
			subgraphRefs(a, needed)
		}
	}
	nodes := g.Node[:0]
	for i, n := range g.Node {
		if keep[i] {
			nodes = append(nodes, n)
		}
	}
	clear(g.Node[len(nodes):])
	g.Node = nodes

	dropped := make(map[string]bool)
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool {
		if needed[t.GetName()] {
			return false
		}
		dropped[t.GetName()] = true
		return true
	})
	g.Input = slices.DeleteFunc(g.Input, func(vi *onnxpb.ValueInfoProto) bool { return dropped[vi.GetName()] })
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(vi *onnxpb.ValueInfoProto) bool { return !needed[vi.GetName()] })
}

// subgraphRefs marks every name a subgraph attribute's nodes read.
func subgraphRefs(a *onnxpb.AttributeProto, needed map[string]bool) {
	graphs := slices.Clone(a.GetGraphs())
	if a.GetG() != nil {
		graphs = append(graphs, a.GetG())
	}
	for _, sg := range graphs {
		for _, n := range sg.GetNode() {
			for _, in := range n.GetInput() {
				needed[in] = true
			}
			for _, sa := range n.GetAttribute() {
				subgraphRefs(sa, needed)
			}
		}
	}
}
