package onnx

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// Model is a decoded ONNX model, for reading and editing its graph. Its
// methods edit Proto in place; callers may read and edit Proto directly as
// well. A Model is not safe for concurrent use.
type Model struct {
	// Proto is the whole model, weights included, except in a model from OpenModel:
	// there its large initialisers are stubs (name, type and dims, no values) until
	// a method that reads weights loads them (see OpenModel).
	Proto *onnxpb.ModelProto

	// lazy is set by OpenModel: the file and where each stub's values are.
	lazy *lazyData
}

// LoadModel reads and decodes the ONNX model at path. A file that is not an
// ONNX model gives an error wrapping ErrNotONNX that names path.
func LoadModel(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return parseModel(data, path)
}

// ParseModel decodes an ONNX model held in memory. Data that is not an ONNX
// model gives an error wrapping ErrNotONNX. The Model does not retain data.
func ParseModel(data []byte) (*Model, error) {
	return parseModel(data, "model data")
}

func parseModel(data []byte, what string) (*Model, error) {
	if _, err := summarizeBytes(data, what); err != nil {
		return nil, err
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotONNX, what, err)
	}
	return &Model{Proto: &mp}, nil
}

// Marshal encodes the model, for NewSessionFromBytes or for writing to a
// file.
func (m *Model) Marshal() ([]byte, error) {
	if m.hasStubs() {
		var buf bytes.Buffer
		if err := m.writeLazy(&buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	b, err := proto.Marshal(m.Proto)
	if err != nil {
		return nil, fmt.Errorf("onnx: encoding model: %w", err)
	}
	return b, nil
}

// Inputs describes the graph's inputs that are not initialisers, as
// Describe does.
func (m *Model) Inputs() []TensorInfo {
	g := m.Proto.GetGraph()
	inits := m.initializers()
	var out []TensorInfo
	for _, vi := range g.GetInput() {
		if inits[vi.GetName()] != nil {
			continue
		}
		info, _ := tensorInfo(vi)
		out = append(out, info)
	}
	return out
}

// Outputs describes the graph's outputs.
func (m *Model) Outputs() []TensorInfo {
	var out []TensorInfo
	for _, vi := range m.Proto.GetGraph().GetOutput() {
		info, _ := tensorInfo(vi)
		out = append(out, info)
	}
	return out
}

func (m *Model) initializers() map[string]*onnxpb.TensorProto {
	g := m.Proto.GetGraph()
	inits := make(map[string]*onnxpb.TensorProto, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	return inits
}

// Node-name patterns of HuggingFace BERT-family encoders exported by
// torch.onnx (optimum, sentence-transformers): the exporter names each node
// after the module path, so the LayerNorm that closes the embeddings is
// "/embeddings/LayerNorm/..." and the one that closes encoder block i is
// "/encoder/layer.i/output/LayerNorm/..." (possibly under a prefix such as
// "/bert"); other families name the block's closing LayerNorm differently
// (blockLayouts). Dynamic quantisation keeps these names.
var (
	embeddingsLNPattern = regexp.MustCompile(`(?:^|/)embeddings/LayerNorm/`)
	layerLNPatterns     = func() []*regexp.Regexp {
		p := make([]*regexp.Regexp, len(blockLayouts))
		for i, l := range blockLayouts {
			p[i] = l.outputNormPattern()
		}
		return p
	}()
)

const embeddingsLNName = "*/embeddings/LayerNorm/*"

// quantizationOps are nodes that quantisation tools insert after a tensor
// and name after it; they are not part of the LayerNorm they follow.
var quantizationOps = map[string]bool{
	"DynamicQuantizeLinear": true,
	"QuantizeLinear":        true,
	"DequantizeLinear":      true,
}

// encoderLayout is what HiddenStates finds in a BERT-family graph.
type encoderLayout struct {
	hidden       []string // hidden-state tensors, embeddings first
	embeddingsLN []*onnxpb.NodeProto
	blocks       *blockLayout // the module names of the blocks
	// names are moduleNames of the graph the layout was found in, for the readers
	// of the same unchanged graph (readBlock, readEmbeddings).
	names map[*onnxpb.NodeProto]string
}

func (m *Model) encoderLayout() (*encoderLayout, error) {
	g := m.Proto.GetGraph()
	names := moduleNames(g)
	var emb []*onnxpb.NodeProto
	for _, n := range g.GetNode() {
		if !quantizationOps[n.GetOpType()] && embeddingsLNPattern.MatchString(names[n]) {
			emb = append(emb, n)
		}
	}
	// The first layout whose closing LayerNorms are there and whose block 0
	// has the layout's query projection; failing that, the first whose
	// closing LayerNorms are there (BlockWeights then says what is missing).
	var blocks *blockLayout
	var layers map[int][]*onnxpb.NodeProto
	for i, l := range blockLayouts {
		found, err := layerNorms(g, names, layerLNPatterns[i])
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			continue
		}
		query := l.blockPattern(0)
		hasQuery := slices.ContainsFunc(g.GetNode(), func(n *onnxpb.NodeProto) bool {
			sm := query.FindStringSubmatch(names[n])
			return sm != nil && strings.HasPrefix(sm[1], l.query+"/")
		})
		if blocks == nil || hasQuery {
			blocks, layers = l, found
		}
		if hasQuery {
			break
		}
	}
	if len(emb) == 0 || len(layers) == 0 {
		if f := fusedOps(g); f != "" {
			return nil, fmt.Errorf("%w: the graph was fused by onnxruntime's transformer optimizer (%s), which removes the encoder block boundaries (%s): only the last hidden state (--layers -1) can be read from it; --layers, --cut-top and fit-head --mode need the graph torch.onnx exported",
				ErrUnsupportedGraph, f, bertBlocks.outputNormName())
		}
	}
	if len(emb) == 0 {
		return nil, fmt.Errorf("%w: no nodes named %s (the embeddings LayerNorm of a BERT-family encoder exported by torch.onnx); the graph has %s",
			ErrUnsupportedGraph, embeddingsLNName, foundScopes(names))
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("%w: no encoder blocks of a supported family: no nodes named %s; the graph has %s",
			ErrUnsupportedGraph, supportedBlocks(), foundScopes(names))
	}
	idx := make([]int, 0, len(layers))
	for i := range layers {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for want, got := range idx {
		if got != want {
			return nil, fmt.Errorf("%w: no nodes named */%s.%d/%s/*; found layers %s",
				ErrUnsupportedGraph, blocks.block, want, blocks.outputNorm, joinInts(idx))
		}
	}

	consumers := make(map[string][]*onnxpb.NodeProto)
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			if in != "" {
				consumers[in] = append(consumers[in], n)
			}
		}
	}
	graphOut := make(map[string]bool)
	for _, o := range g.GetOutput() {
		graphOut[o.GetName()] = true
	}
	l := &encoderLayout{embeddingsLN: emb, blocks: blocks, names: names}
	t, err := subgraphOutput(emb, consumers, graphOut, "embeddings LayerNorm")
	if err != nil {
		return nil, err
	}
	l.hidden = append(l.hidden, t)
	for _, i := range idx {
		t, err := subgraphOutput(layers[i], consumers, graphOut, fmt.Sprintf("encoder layer %d output LayerNorm", i))
		if err != nil {
			return nil, err
		}
		l.hidden = append(l.hidden, t)
	}
	return l, nil
}

// layerNorms returns the nodes of each block's closing LayerNorm, those
// whose names match pat (a layout's outputNormPattern), by block index.
func layerNorms(g *onnxpb.GraphProto, names map[*onnxpb.NodeProto]string, pat *regexp.Regexp) (map[int][]*onnxpb.NodeProto, error) {
	layers := make(map[int][]*onnxpb.NodeProto)
	for _, n := range g.GetNode() {
		if quantizationOps[n.GetOpType()] {
			continue
		}
		if sm := pat.FindStringSubmatch(names[n]); sm != nil {
			i, err := strconv.Atoi(sm[1])
			if err != nil {
				return nil, fmt.Errorf("%w: node %q: layer index %q", ErrUnsupportedGraph, names[n], sm[1])
			}
			layers[i] = append(layers[i], n)
		}
	}
	return layers, nil
}

// fusedOperators are the com.microsoft operators onnxruntime's transformer
// optimizer puts in place of a BERT block's subgraphs.
var fusedOperators = []string{"EmbedLayerNormalization", "Attention", "MultiHeadAttention", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "BiasAdd"}

// fusedOps lists the fused operators in g with their counts, in the order
// of fusedOperators ("com.microsoft.Attention ×2, ..."), or "" if it has
// none.
func fusedOps(g *onnxpb.GraphProto) string {
	count := make(map[string]int)
	for _, n := range g.GetNode() {
		if n.GetDomain() == "com.microsoft" && slices.Contains(fusedOperators, n.GetOpType()) {
			count[n.GetOpType()]++
		}
	}
	var parts []string
	for _, op := range fusedOperators {
		if count[op] > 0 {
			parts = append(parts, fmt.Sprintf("com.microsoft.%s ×%d", op, count[op]))
		}
	}
	return strings.Join(parts, ", ")
}

// LastHiddenState returns the graph output that carries the encoder's last
// hidden state, float32 [batch, sequence, hidden], and its width: the
// output named last_hidden_state, else token_embeddings (a
// sentence-transformers export), else the one float32 output of rank 3. It
// needs no block boundaries, so it reads graphs HiddenStates does not
// understand, such as one fused by onnxruntime's transformer optimizer. A
// graph without such an output, or whose width is not a fixed last
// dimension and cannot be read from the block boundaries, gives an error
// wrapping ErrUnsupportedGraph that lists the outputs.
func (m *Model) LastHiddenState() (name string, hidden int, err error) {
	outs := m.Outputs()
	var rank3 []TensorInfo
	for _, o := range outs {
		if o.DType == DTypeFloat32 && len(o.Shape) == 3 {
			rank3 = append(rank3, o)
		}
	}
	var pick *TensorInfo
	for _, want := range []string{"last_hidden_state", "token_embeddings"} {
		for i := range rank3 {
			if pick == nil && rank3[i].Name == want {
				pick = &rank3[i]
			}
		}
	}
	if pick == nil && len(rank3) == 1 {
		pick = &rank3[0]
	}
	if pick == nil {
		return "", 0, fmt.Errorf("%w: no graph output holds the last hidden state: want last_hidden_state, token_embeddings or a single float32 [batch, sequence, hidden] output; the graph outputs %s",
			ErrUnsupportedGraph, describeAll(outs))
	}
	if h := pick.Shape[2]; h > 0 {
		return pick.Name, int(h), nil
	}
	if h, err := m.HiddenSize(); err == nil {
		return pick.Name, h, nil
	}
	return "", 0, fmt.Errorf("%w: the width of output %s is not fixed (%s), and the graph has no block boundaries to read it from",
		ErrUnsupportedGraph, pick.Name, pick)
}

// CheckEncoder refuses a graph that is not a text encoder: one whose
// outputs are all float32 of rank 2 or less with a fixed last dimension
// other than the hidden size, such as a classifier's logits [batch, 2].
// A graph that outputs the hidden states (rank 3) or a sentence embedding
// [batch, hidden] passes, as does one whose output widths are not declared.
// The error wraps ErrNotEncoder and lists the outputs.
func (m *Model) CheckEncoder(hidden int) error {
	outs := m.Outputs()
	for _, o := range outs {
		n := len(o.Shape)
		if o.DType != DTypeFloat32 || n == 0 || n >= 3 || o.Shape[n-1] <= 0 || int(o.Shape[n-1]) == hidden {
			return nil
		}
	}
	return fmt.Errorf("%w: it outputs only %s, and no hidden states [batch, sequence, %d] or sentence embedding [batch, %d]: export the base model (AutoModel, task feature-extraction), not a task head",
		ErrNotEncoder, describeAll(outs), hidden, hidden)
}

func describeAll(ts []TensorInfo) string {
	if len(ts) == 0 {
		return "nothing"
	}
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, ", ")
}

// subgraphOutput returns the one tensor that the nodes compute for the rest
// of the graph: produced by one of them, not consumed by any of them, and
// consumed by another node or a graph output.
func subgraphOutput(nodes []*onnxpb.NodeProto, consumers map[string][]*onnxpb.NodeProto, graphOut map[string]bool, what string) (string, error) {
	inside := make(map[*onnxpb.NodeProto]bool, len(nodes))
	for _, n := range nodes {
		inside[n] = true
	}
	var outs []string
	for _, n := range nodes {
		for _, t := range n.GetOutput() {
			if t == "" {
				continue
			}
			usedInside, usedOutside := false, graphOut[t]
			for _, c := range consumers[t] {
				if inside[c] {
					usedInside = true
				} else {
					usedOutside = true
				}
			}
			if usedOutside && !usedInside {
				outs = append(outs, t)
			}
		}
	}
	if len(outs) != 1 {
		return "", fmt.Errorf("%w: %s (nodes %s...) has %d output tensors %q, want exactly 1",
			ErrUnsupportedGraph, what, nodes[0].GetName(), len(outs), outs)
	}
	return outs[0], nil
}

// HiddenStates returns the names of the tensors that hold the hidden states
// of a BERT-family encoder, in the order of HuggingFace's
// output_hidden_states: index 0 is the embeddings output (after the
// embeddings LayerNorm), index i the output of encoder block i-1, and the
// last the output of the last block (usually the graph output
// last_hidden_state). Each is float32 [batch, sequence, hidden].
//
// The tensors are found by the node names torch.onnx gives HuggingFace
// modules (see the patterns */embeddings/LayerNorm/* and
// */encoder/layer.N/output/LayerNorm/*), in float and dynamically quantised
// exports. A graph without them, with a gap in the layer numbers, or whose
// LayerNorm does not end in one tensor, gives an error wrapping
// ErrUnsupportedGraph that names what was not found.
func (m *Model) HiddenStates() ([]string, error) {
	l, err := m.encoderLayout()
	if err != nil {
		return nil, err
	}
	return slices.Clone(l.hidden), nil
}

// NumLayers returns the number of encoder blocks: len(HiddenStates())-1.
func (m *Model) NumLayers() (int, error) {
	l, err := m.encoderLayout()
	if err != nil {
		return 0, err
	}
	return len(l.hidden) - 1, nil
}

// HiddenSize returns the width of the hidden states: the last dimension of
// the last hidden state when it is a graph output with a fixed size, else
// the length of the embeddings LayerNorm weight (a Mul's or a
// LayerNormalization's scale).
func (m *Model) HiddenSize() (int, error) {
	l, err := m.encoderLayout()
	if err != nil {
		return 0, err
	}
	return m.hiddenSize(l)
}

func (m *Model) hiddenSize(l *encoderLayout) (int, error) {
	last := l.hidden[len(l.hidden)-1]
	for _, o := range m.Proto.GetGraph().GetOutput() {
		if o.GetName() != last {
			continue
		}
		info, _ := tensorInfo(o)
		if n := len(info.Shape); n > 0 && info.Shape[n-1] > 0 {
			return int(info.Shape[n-1]), nil
		}
	}
	inits := m.initializers()
	for _, n := range l.embeddingsLN {
		if n.GetOpType() == "LayerNormalization" && len(n.GetInput()) > 1 { // its scale
			if t := inits[n.GetInput()[1]]; t != nil && len(t.GetDims()) == 1 && t.GetDims()[0] > 0 {
				return int(t.GetDims()[0]), nil
			}
		}
		if n.GetOpType() != "Mul" {
			continue
		}
		for _, in := range n.GetInput() {
			if t := inits[in]; t != nil && len(t.GetDims()) == 1 && t.GetDims()[0] > 0 {
				return int(t.GetDims()[0]), nil
			}
		}
	}
	return 0, fmt.Errorf("%w: cannot tell the hidden size: %s is not a graph output with a fixed last dimension, and no embeddings LayerNorm Mul or LayerNormalization has a 1-D weight",
		ErrUnsupportedGraph, last)
}

// ExposeOutputs makes the named tensors graph outputs, appended after the
// existing outputs in the order given, so that a session can return them.
// Names that already are outputs, or repeat, are skipped: calling it again is
// harmless. Each name must be produced by a node; otherwise nothing is
// changed and the error lists the names not found.
//
// Hidden states (see HiddenStates) are declared float32 [batch, sequence,
// hidden], with the symbolic dimension names of the existing last hidden
// state output (or of the first 2-D input, or batch_size and
// sequence_length). Other tensors take their type from the graph's
// value_info, or are declared float32 of unknown shape.
func (m *Model) ExposeOutputs(names ...string) error {
	g := m.Proto.GetGraph()
	producer := producers(g)
	isOutput := make(map[string]bool)
	for _, o := range g.GetOutput() {
		isOutput[o.GetName()] = true
	}
	var missing, add []string
	for _, name := range names {
		switch {
		case producer[name] == nil:
			missing = append(missing, strconv.Quote(name))
		case !isOutput[name]:
			isOutput[name] = true
			add = append(add, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("onnx: cannot expose %s: not produced by any node of the graph", strings.Join(missing, ", "))
	}
	if len(add) == 0 {
		return nil
	}

	hiddenType := m.hiddenStateType()
	valueInfo := make(map[string]*onnxpb.ValueInfoProto)
	for _, vi := range g.GetValueInfo() {
		valueInfo[vi.GetName()] = vi
	}
	for _, name := range add {
		vi := &onnxpb.ValueInfoProto{Name: proto.String(name)}
		switch {
		case hiddenType[name] != nil:
			vi.Type = proto.Clone(hiddenType[name]).(*onnxpb.TypeProto)
		case valueInfo[name].GetType() != nil:
			vi.Type = proto.Clone(valueInfo[name].GetType()).(*onnxpb.TypeProto)
		default:
			vi.Type = tensorType(onnxpb.TensorProto_FLOAT, nil)
		}
		g.Output = append(g.Output, vi)
	}
	return nil
}

// hiddenStateType maps each hidden-state tensor to its declared type,
// float32 [batch, sequence, hidden]; it is empty if the graph is not a
// recognised encoder.
func (m *Model) hiddenStateType() map[string]*onnxpb.TypeProto {
	l, err := m.encoderLayout()
	if err != nil {
		return nil
	}
	hidden, err := m.hiddenSize(l)
	if err != nil {
		return nil
	}
	batch := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch_size"}}
	seq := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "sequence_length"}}
	g := m.Proto.GetGraph()
	last := l.hidden[len(l.hidden)-1]
	found := false
	for _, o := range g.GetOutput() {
		if d := o.GetType().GetTensorType().GetShape().GetDim(); o.GetName() == last && len(d) == 3 {
			batch, seq, found = d[0], d[1], true
			break
		}
	}
	if !found {
		for _, in := range g.GetInput() {
			if d := in.GetType().GetTensorType().GetShape().GetDim(); len(d) == 2 {
				batch, seq = d[0], d[1]
				break
			}
		}
	}
	size := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(hidden)}}
	types := make(map[string]*onnxpb.TypeProto, len(l.hidden))
	for _, name := range l.hidden {
		types[name] = tensorType(onnxpb.TensorProto_FLOAT, []*onnxpb.TensorShapeProto_Dimension{batch, seq, size})
	}
	return types
}

// tensorType returns a tensor TypeProto; nil dims means unknown shape. The
// dims are cloned.
func tensorType(elem onnxpb.TensorProto_DataType, dims []*onnxpb.TensorShapeProto_Dimension) *onnxpb.TypeProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem))}
	if dims != nil {
		tt.Shape = &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			tt.Shape.Dim = append(tt.Shape.Dim, proto.Clone(d).(*onnxpb.TensorShapeProto_Dimension))
		}
	}
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}
}

// ResolveLayers turns layer indices into hidden-state indices in
// [0, numHidden): a non-negative index is taken as it is, a negative one
// counts from the end (-1 is the last block's output, numHidden-1). Order is
// kept. An index out of range, or two indices naming the same hidden state,
// give an error that lists the valid range, for example
//
//	layer -9 out of range; model has 7 hidden states: 0..6 or -7..-1
func ResolveLayers(spec []int, numHidden int) ([]int, error) {
	if numHidden <= 0 {
		return nil, fmt.Errorf("onnx: model has %d hidden states", numHidden)
	}
	valid := fmt.Sprintf("model has %d hidden states: 0..%d or %d..-1", numHidden, numHidden-1, -numHidden)
	if len(spec) == 0 {
		return nil, fmt.Errorf("onnx: no layers given; %s", valid)
	}
	out := make([]int, len(spec))
	from := make(map[int]int, len(spec)) // resolved index -> position in spec
	for i, s := range spec {
		r := s
		if s < 0 {
			r = numHidden + s
		}
		if r < 0 || r >= numHidden {
			return nil, fmt.Errorf("onnx: layer %d out of range; %s", s, valid)
		}
		if j, dup := from[r]; dup {
			return nil, fmt.Errorf("onnx: layers %d and %d both name hidden state %d; %s", spec[j], s, r, valid)
		}
		from[r] = i
		out[i] = r
	}
	return out, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// producers maps each tensor that a node of g computes to that node (the last
// one, should two name the same output).
func producers(g *onnxpb.GraphProto) map[string]*onnxpb.NodeProto {
	producer := make(map[string]*onnxpb.NodeProto)
	for _, n := range g.GetNode() {
		for _, t := range n.GetOutput() {
			producer[t] = n
		}
	}
	return producer
}

// nameScopesKey is the metadata_props key under which torch.onnx's dynamo
// exporter records the module path of a node.
const nameScopesKey = "pkg.torch.onnx.name_scopes"

// moduleNames returns the name each node is read by in this package: the
// module path name that torch.onnx's TorchScript exporter (dynamo=False, and
// optimum through it) gives a node, such as
// /encoder/layer.0/attention/self/query/MatMul. Graphs named that way keep
// their names. The dynamo exporter (dynamo=True) names nodes after the aten
// op instead (node_linear_3, node_layer_norm_1); for such a graph the module
// names are rebuilt, "/" + module path + "/" + op type (with _1, _2... for
// repeats), from
//
//   - the node's metadata_props pkg.torch.onnx.name_scopes, where present;
//   - else the parameters it reads: an initialiser named
//     encoder.layer.0.attention.self.query.bias places the Add that reads it
//     in module encoder.layer.0.attention.self.query, and with it the MatMul
//     or Gemm that feeds that Add; LayerNorm weights place the
//     LayerNormalization;
//   - and the nodes between a block's intermediate.dense and output.dense
//     (the activation) are placed in intermediate.intermediate_act_fn.
//
// Nodes that none of these place keep their own names.
func moduleNames(g *onnxpb.GraphProto) map[*onnxpb.NodeProto]string {
	names := make(map[*onnxpb.NodeProto]string, len(g.GetNode()))
	torchNamed := false
	for _, n := range g.GetNode() {
		names[n] = n.GetName()
		if embeddingsLNPattern.MatchString(n.GetName()) || slices.ContainsFunc(layerLNPatterns, func(p *regexp.Regexp) bool { return p.MatchString(n.GetName()) }) {
			torchNamed = true
		}
	}
	if torchNamed {
		return names
	}
	scope := make(map[*onnxpb.NodeProto]string)
	for _, n := range g.GetNode() {
		for _, p := range n.GetMetadataProps() {
			if p.GetKey() == nameScopesKey {
				if s := lastNameScope(p.GetValue()); s != "" {
					scope[n] = s
				}
			}
		}
	}
	params := make(map[string]bool, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		params[t.GetName()] = true
	}
	producer := producers(g)
	fromBias := make(map[*onnxpb.NodeProto]bool)
	for _, n := range g.GetNode() {
		if scope[n] != "" {
			continue
		}
		for _, in := range n.GetInput() {
			if !params[in] {
				continue
			}
			if s, ok := strings.CutSuffix(in, ".bias"); ok {
				scope[n], fromBias[n] = s, true
				break
			}
			if s, ok := strings.CutSuffix(in, ".weight"); ok {
				scope[n] = s
				break
			}
		}
	}
	// The MatMul (or Gemm) whose output a linear layer's bias Add reads.
	for n := range fromBias {
		if n.GetOpType() != "Add" {
			continue
		}
		for _, in := range n.GetInput() {
			if p := producer[in]; p != nil && scope[p] == "" && (p.GetOpType() == "MatMul" || p.GetOpType() == "Gemm") {
				scope[p] = scope[n]
			}
		}
	}
	// The activation: every node on the way back from the down-projection's
	// MatMul (output.dense) to the up-projection's output (intermediate.dense).
	for n, s := range scope {
		if n.GetOpType() != "MatMul" && n.GetOpType() != "Gemm" || len(n.GetInput()) == 0 {
			continue
		}
		var layout *blockLayout
		var block string
		for _, l := range blockLayouts {
			if b, ok := strings.CutSuffix(s, "."+strings.ReplaceAll(l.output, "/", ".")); ok {
				layout, block = l, b
				break
			}
		}
		if layout == nil {
			continue
		}
		up := block + "." + strings.ReplaceAll(layout.intermediate, "/", ".")
		var dense string // the up-projection's output: the tensor after its bias
		for m, ms := range scope {
			if ms == up && fromBias[m] && m.GetOpType() == "Add" {
				dense = m.GetOutput()[0]
			}
		}
		if dense == "" {
			continue
		}
		var act []*onnxpb.NodeProto
		seen := map[string]bool{dense: true}
		queue := []string{n.GetInput()[0]}
		reached := false
		for len(queue) > 0 && len(act) < 64 {
			t := queue[0]
			queue = queue[1:]
			if t == dense {
				reached = true
				continue
			}
			if seen[t] {
				continue
			}
			seen[t] = true
			p := producer[t]
			if p == nil || scope[p] != "" {
				continue
			}
			act = append(act, p)
			queue = append(queue, p.GetInput()...)
		}
		if reached {
			for _, p := range act {
				scope[p] = block + "." + layout.actModule
			}
		}
	}
	count := make(map[string]int)
	for _, n := range g.GetNode() { // graph order, so that repeats number as torch.onnx numbers them
		s := scope[n]
		if s == "" {
			continue
		}
		name := "/" + modulePath(s) + "/" + n.GetOpType()
		if k := count[name]; k > 0 {
			names[n] = name + "_" + strconv.Itoa(k)
		} else {
			names[n] = name
		}
		count[name]++
	}
	return names
}

// modulePath turns a torch module path (encoder.layer.0.attention) into the
// form of torch.onnx's node names (encoder/layer.0/attention): a list index
// stays with the list's name.
func modulePath(s string) string {
	var parts []string
	for _, p := range strings.Split(s, ".") {
		if _, err := strconv.Atoi(p); err == nil && len(parts) > 0 {
			parts[len(parts)-1] += "." + p
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "/")
}

var quotedPattern = regexp.MustCompile(`'([^']*)'|"([^"]*)"`)

// lastNameScope reads the module path from a name_scopes value, a printed
// list of the scopes from the root down: either full paths
// ["", "encoder", "encoder.layer.0"], full paths followed by the name of
// the node's own operation ["", "m", "m.encoder", "m.encoder.layer.0",
// "linear"] (what torch 2.15 writes at opset 18), or one name per level
// ["", "encoder", "layer", "0"].
func lastNameScope(v string) string {
	var items []string
	for _, m := range quotedPattern.FindAllStringSubmatch(v, -1) {
		if s := m[1] + m[2]; s != "" {
			items = append(items, s)
		}
	}
	// cumulative reports whether each item extends the one before it.
	cumulative := func(items []string) bool {
		for i := 1; i < len(items); i++ {
			if !strings.HasPrefix(items[i], items[i-1]+".") {
				return false
			}
		}
		return true
	}
	switch n := len(items); {
	case n == 0:
		return ""
	case n == 1 || cumulative(items):
		return items[n-1]
	case n > 2 && cumulative(items[:n-1]): // full paths, then the operation's name
		return items[n-2]
	}
	return strings.Join(items, ".")
}
