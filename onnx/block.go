package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// This file reads the weights of one encoder block out of a BERT-family
// graph, so that the block can be trained natively (package lora).

// BlockWeights are the parameters of one post-LayerNorm BERT encoder block
// (HuggingFace transformers' BertLayer; RobertaLayer, DistilBERT's
// TransformerBlock and MPNetLayer under their module names, MPNet's scores
// also getting the encoder's relative position bias, see RelativeBias), read
// from a graph's initialisers by Model.BlockWeights. Every matrix is
// normalised to torch.nn.Linear's layout, (Out, In) row-major, whatever way
// the graph stores it. The block computes,
// for the hidden states x (T,C) of one sequence, with d = HeadSize and the
// softmax over the sequence's own tokens (padded keys get weight 0, see
// below):
//
//	q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv          split into Heads heads of width d
//	ctx_h   = softmax(q_h·k_hᵀ / √d) · v_h                 concatenated over heads, (T,C)
//	h       = LN_AttentionNorm(ctx·Woᵀ + bo + x)
//	y       = LN_OutputNorm(GELU(h·Wiᵀ + bi)·Wdᵀ + bd + h)
//
// with LN(z) = (z − mean(z)) / √(var(z) + Eps) · Gamma + Beta over the C
// features (biased variance) and GELU the exact 0.5·u·(1 + erf(u/√2)).
// torch.onnx exports of BertModel mask padding by adding (1 − mask)·m to the
// scores, m the most negative float32 (all-MiniLM-L6-v2) or −10000 (older
// exports): in float32 either gives padded keys exactly zero weight.
type BlockWeights struct {
	// Layer is the block's index, 0-based: the graph's encoder/layer.{Layer}.
	Layer int
	// Hidden is C, the width of the hidden states; IntermediateSize is I,
	// the width of the feed-forward layer (Intermediate's Out).
	Hidden, IntermediateSize int
	// Heads is the number of attention heads and HeadSize their width d,
	// Heads·HeadSize = Hidden. They come from the shape constants of the
	// Reshape that splits the query into heads.
	Heads, HeadSize int

	// Query, Key and Value are the self-attention projections, C → C
	// (attention.self.{query,key,value}).
	Query, Key, Value LinearWeights
	// AttentionOutput is the attention output projection, C → C
	// (attention.output.dense).
	AttentionOutput LinearWeights
	// Intermediate is the feed-forward up-projection, C → I, followed by
	// GELU (intermediate.dense).
	Intermediate LinearWeights
	// Output is the feed-forward down-projection, I → C (output.dense).
	Output LinearWeights
	// AttentionNorm is the LayerNorm after the attention residual
	// (attention.output.LayerNorm); OutputNorm the one after the
	// feed-forward residual, which closes the block (output.LayerNorm).
	AttentionNorm, OutputNorm LayerNormWeights
}

// LinearWeights are the parameters of a dense layer y = x·Wᵀ + B
// (torch.nn.Linear).
type LinearWeights struct {
	// In and Out are the input and output widths.
	In, Out int
	// W is (Out, In) row-major: W[o*In+i] multiplies input i into output o.
	W []float32
	// B is the bias, Out values.
	B []float32
	// WeightName and BiasName are the initialisers W and B were read from.
	// The graph stores the weight as [In, Out] when a MatMul reads it
	// directly (torch.onnx), as [Out, In] when it goes through a Transpose
	// or a Gemm with transB = 1; WeightTransposed is true in the second
	// case.
	WeightName, BiasName string
	WeightTransposed     bool
}

// LayerNormWeights are the parameters of a LayerNorm over the last axis,
// (z − mean) / √(var + Eps) · Gamma + Beta.
type LayerNormWeights struct {
	// Gamma and Beta have one value per feature.
	Gamma, Beta []float32
	// Eps is added to the variance, in float32 as the graph adds it
	// (BERT's layer_norm_eps, 1e-12).
	Eps float32
	// GammaName and BetaName are the initialisers Gamma and Beta were read
	// from.
	GammaName, BetaName string
}

// HiddenStateEntering returns the name of the tensor that enters encoder
// block i (0-based), float32 [batch, sequence, hidden]: HiddenStates()[i],
// the embeddings output for block 0 and the output of block i-1 otherwise.
// An index outside 0..NumLayers()-1 is an error that gives the valid range;
// a graph HiddenStates does not understand gives ErrUnsupportedGraph.
func (m *Model) HiddenStateEntering(i int) (string, error) {
	l, err := m.encoderLayout()
	if err != nil {
		return "", err
	}
	return l.entering(i)
}

// entering is HiddenStateEntering on a layout already found.
func (l *encoderLayout) entering(i int) (string, error) {
	if n := len(l.hidden) - 1; i < 0 || i >= n {
		return "", fmt.Errorf("onnx: block %d out of range; the model has %d blocks: 0..%d", i, n, n-1)
	}
	return l.hidden[i], nil
}

// BlockWeights reads the weights of encoder block i (0-based) of a
// BERT-family encoder exported by torch.onnx (sentence-transformers,
// optimum: all-MiniLM-L6-v2, bge, e5), returned as plain float32 slices that
// the caller owns (see BlockWeights for layouts and the block's math).
//
// The block's nodes are found by the names torch.onnx gives HuggingFace
// modules, */encoder/layer.i/<module>/..., the same convention HiddenStates
// relies on: the projections are the MatMul (or Gemm) nodes of
// attention/self/{query,key,value}, attention/output/dense,
// intermediate/dense and output/dense, each followed by an Add of its bias;
// the weight is an initialiser or Constant, read through a Transpose if
// there is one; the LayerNorms are attention/output/LayerNorm and
// output/LayerNorm, decomposed (ReduceMean, Sub, Pow, Add ε, Sqrt, Div, Mul
// γ, Add β) or one LayerNormalization node; the head count is in the
// Reshape that splits the query into [batch, sequence, heads, head size].
// The query, key and value must read the hidden state entering the block
// (HiddenStateEntering) and the intermediate activation must be the exact
// GELU (an Erf node).
//
// A graph that does not have this shape gives an error wrapping
// ErrUnsupportedGraph that names what was not found: a node, a bias, a
// shape constant. Quantised graphs (MatMulInteger, DequantizeLinear weights)
// and onnxruntime-fused graphs (com.microsoft Attention,
// SkipLayerNormalization) are refused that way: their block cannot be
// reproduced in float32.
func (m *Model) BlockWeights(i int) (BlockWeights, error) {
	bw, _, err := m.readBlock(i)
	return bw, err
}

// readBlock is BlockWeights that also returns the reader, whose slots say
// which node input reads each weight (SetBlockWeights rewires them).
func (m *Model) readBlock(i int) (BlockWeights, *blockReader, error) {
	if err := m.loadStubs(); err != nil {
		return BlockWeights{}, nil, err
	}
	l, err := m.encoderLayout()
	if err != nil {
		return BlockWeights{}, nil, err
	}
	entering, err := l.entering(i)
	if err != nil {
		return BlockWeights{}, nil, err
	}
	hidden, err := m.hiddenSize(l)
	if err != nil {
		return BlockWeights{}, nil, err
	}
	lay := l.blocks
	r := newGraphReader(m, l.names, lay, i)
	if lay.relativeBias { // MPNet: the blocks' scores need the encoder's bias
		if _, ok, err := m.relativeBias(r); err != nil {
			return BlockWeights{}, nil, err
		} else if !ok {
			return BlockWeights{}, nil, fmt.Errorf("%w: %s blocks without the encoder's relative position bias (no node named */encoder/relative_attention_bias/Gather)",
				ErrUnsupportedGraph, lay.families)
		}
	}
	if err := r.findBlock(m.Proto.GetGraph()); err != nil {
		return BlockWeights{}, nil, err
	}
	bw := BlockWeights{Layer: i, Hidden: hidden}
	for _, lin := range lay.linears(&bw) {
		in, out := hidden, hidden // 0: any
		switch lin.scope {
		case lay.intermediate:
			out = 0
		case lay.output:
			in = 0
		}
		w, x, err := r.linear(lin.scope)
		if err != nil {
			return BlockWeights{}, nil, err
		}
		if (in != 0 && w.In != in) || (out != 0 && w.Out != out) {
			return BlockWeights{}, nil, fmt.Errorf("%w: %s weight %q is %d → %d; want %s → %s (hidden size %d)",
				ErrUnsupportedGraph, r.where(lin.scope), w.WeightName, w.In, w.Out, sizeName(in), sizeName(out), hidden)
		}
		if (lin.scope == lay.query || lin.scope == lay.key || lin.scope == lay.value) && x != entering {
			return BlockWeights{}, nil, fmt.Errorf("%w: %s reads %q, not the hidden state entering the block (%q); only post-LayerNorm BERT blocks are supported",
				ErrUnsupportedGraph, r.where(lin.scope), x, entering)
		}
		*lin.w = w
	}
	bw.IntermediateSize = bw.Intermediate.Out
	if bw.Output.In != bw.IntermediateSize {
		return BlockWeights{}, nil, fmt.Errorf("%w: %s takes %d inputs; %s gives %d",
			ErrUnsupportedGraph, r.where(lay.output), bw.Output.In, lay.intermediate, bw.IntermediateSize)
	}
	if bw.AttentionNorm, err = r.layerNorm(lay.attentionNorm, hidden); err != nil {
		return BlockWeights{}, nil, err
	}
	if bw.OutputNorm, err = r.layerNorm(lay.outputNorm, hidden); err != nil {
		return BlockWeights{}, nil, err
	}
	if bw.Heads, bw.HeadSize, err = r.heads(hidden); err != nil {
		return BlockWeights{}, nil, err
	}
	if err := r.checkGELU(); err != nil {
		return BlockWeights{}, nil, err
	}
	return bw, r, nil
}

func sizeName(n int) string {
	if n == 0 {
		return "any"
	}
	return strconv.Itoa(n)
}

// blockReader looks up the nodes of one encoder block by their names
// relative to */<block>.i/ (*/encoder/layer.i/ for BERT), or of the
// embeddings relative to */embeddings/.
type blockReader struct {
	blocks    *blockLayout // nil for the embeddings
	layer     int
	names     map[*onnxpb.NodeProto]string // moduleNames of the graph
	nodes     map[string]*onnxpb.NodeProto // relative name -> node
	inits     map[string]*onnxpb.TensorProto
	producer  map[string]*onnxpb.NodeProto
	consumers map[string][]*onnxpb.NodeProto
	biasOut   map[string]string // scope -> tensor after the bias Add
	slots     map[string]inputSlot
}

// inputSlot is the input of a node that reads a weight: node.Input[index].
// The reader records one per weight, under its scope and slotWeight,
// slotBias, slotGamma or slotBeta, for SetBlockWeights to rewire. A weight
// behind a Transpose is read by the Transpose's input.
type inputSlot struct {
	node  *onnxpb.NodeProto
	index int
}

// Keys of blockReader.slots, after the scope: "attention/self/query" +
// slotWeight.
const (
	slotWeight = "#weight"
	slotBias   = "#bias"
	slotGamma  = "#gamma"
	slotBeta   = "#beta"
)

// quantizedOps are weight-side operators of quantised graphs.
var quantizedOps = map[string]bool{
	"MatMulInteger":         true,
	"QLinearMatMul":         true,
	"DynamicQuantizeMatMul": true,
	"MatMulNBits":           true,
	"QuantizeLinear":        true,
	"DequantizeLinear":      true,
	"DynamicQuantizeLinear": true,
	"QAttention":            true,
}

// newGraphReader returns a blockReader for layer (-1: the embeddings) of m with the
// producer and consumers of every tensor of m's graph indexed and no nodes yet; names
// are the graph's moduleNames.
func newGraphReader(m *Model, names map[*onnxpb.NodeProto]string, blocks *blockLayout, layer int) *blockReader {
	r := &blockReader{
		blocks:    blocks,
		layer:     layer,
		names:     names,
		nodes:     make(map[string]*onnxpb.NodeProto),
		inits:     m.initializers(),
		producer:  producers(m.Proto.GetGraph()),
		consumers: make(map[string][]*onnxpb.NodeProto),
		biasOut:   make(map[string]string),
		slots:     make(map[string]inputSlot),
	}
	for _, n := range m.Proto.GetGraph().GetNode() {
		for _, t := range n.GetInput() {
			if t != "" {
				r.consumers[t] = append(r.consumers[t], n)
			}
		}
	}
	return r
}

// findBlock gives a reader of g from newGraphReader its block's nodes, those named
// */<block>.<layer>/*; a block that is missing, quantised or fused is an error.
func (r *blockReader) findBlock(g *onnxpb.GraphProto) error {
	blocks, layer, names := r.blocks, r.layer, r.names
	pat := blocks.blockPattern(layer)
	var quantized, fused []string
	for _, n := range g.GetNode() {
		sm := pat.FindStringSubmatch(names[n])
		if sm == nil {
			continue
		}
		if prev, dup := r.nodes[sm[1]]; dup {
			return fmt.Errorf("%w: nodes %q and %q both end in %s.%d/%s (two encoders?)",
				ErrUnsupportedGraph, names[prev], names[n], blocks.block, layer, sm[1])
		}
		r.nodes[sm[1]] = n
		switch d := n.GetDomain(); {
		case quantizedOps[n.GetOpType()]:
			quantized = append(quantized, n.GetOpType()+" "+n.GetName())
		case d != "" && d != "ai.onnx":
			fused = append(fused, d+"."+n.GetOpType()+" "+n.GetName())
		}
	}
	if len(r.nodes) == 0 {
		return fmt.Errorf("%w: no nodes named */%s.%d/* (the modules of a BERT-family encoder block exported by torch.onnx)",
			ErrUnsupportedGraph, blocks.block, layer)
	}
	if len(quantized) > 0 {
		return fmt.Errorf("%w: encoder block %d is quantised (%s); its float32 weights cannot be read back: use the model's float32 export",
			ErrUnsupportedGraph, layer, firstFew(quantized))
	}
	if len(fused) > 0 {
		return fmt.Errorf("%w: encoder block %d uses fused operators (%s), as onnxruntime's transformer optimiser writes them: use the graph torch.onnx exported",
			ErrUnsupportedGraph, layer, firstFew(fused))
	}
	return nil
}

func firstFew(s []string) string {
	if len(s) > 3 {
		return strings.Join(s[:3], ", ") + fmt.Sprintf(" and %d more", len(s)-3)
	}
	return strings.Join(s, ", ")
}

// where names a module of the block in errors.
func (r *blockReader) where(scope string) string {
	if r.blocks == nil {
		return "*/embeddings/" + scope
	}
	return fmt.Sprintf("*/%s.%d/%s", r.blocks.block, r.layer, scope)
}

// inScope returns the block's nodes under scope/ (all of them if scope is
// "") whose op type is op (any op if ""), in the order of their relative
// names.
func (r *blockReader) inScope(scope, op string) []*onnxpb.NodeProto {
	var names []string
	for rel, n := range r.nodes {
		if (scope == "" || strings.HasPrefix(rel, scope+"/")) && (op == "" || n.GetOpType() == op) {
			names = append(names, rel)
		}
	}
	slices.Sort(names)
	out := make([]*onnxpb.NodeProto, len(names))
	for i, rel := range names {
		out[i] = r.nodes[rel]
	}
	return out
}

// linear reads the dense layer under scope and returns it with the tensor
// it reads.
func (r *blockReader) linear(scope string) (LinearWeights, string, error) {
	var w LinearWeights
	n := r.nodes[scope+"/MatMul"]
	if n == nil {
		n = r.nodes[scope+"/Gemm"]
	}
	if n == nil {
		return w, "", fmt.Errorf("%w: no node named %s/MatMul or %s/Gemm (the %s projection)",
			ErrUnsupportedGraph, r.where(scope), r.where(scope), scope)
	}
	in := n.GetInput()
	if len(in) < 2 {
		return w, "", fmt.Errorf("%w: node %q has %d inputs", ErrUnsupportedGraph, n.GetName(), len(in))
	}
	x := in[0]
	transB := false
	if n.GetOpType() == "Gemm" {
		for _, a := range n.GetAttribute() {
			switch a.GetName() {
			case "transA":
				if a.GetI() != 0 {
					return w, "", fmt.Errorf("%w: Gemm %q has transA = 1", ErrUnsupportedGraph, n.GetName())
				}
			case "transB":
				transB = a.GetI() != 0
			case "alpha", "beta":
				if a.GetF() != 1 {
					return w, "", fmt.Errorf("%w: Gemm %q has %s = %v; want 1", ErrUnsupportedGraph, n.GetName(), a.GetName(), a.GetF())
				}
			}
		}
	} else if n.GetOpType() != "MatMul" {
		return w, "", fmt.Errorf("%w: node %q is a %s; want MatMul or Gemm", ErrUnsupportedGraph, n.GetName(), n.GetOpType())
	}

	// The weight: a constant, perhaps behind a Transpose.
	wName := in[1]
	wSlot := inputSlot{n, 1}
	transposed := transB
	if p := r.producer[wName]; p != nil && p.GetOpType() == "Transpose" {
		perm := intsAttrOf(p, "perm")
		if perm != nil && !slices.Equal(perm, []int64{1, 0}) {
			return w, "", fmt.Errorf("%w: weight of %q goes through Transpose %q with perm %v; want [1 0]",
				ErrUnsupportedGraph, n.GetName(), p.GetName(), perm)
		}
		wName, wSlot = p.GetInput()[0], inputSlot{p, 0}
		transposed = !transposed
	}
	t, err := r.constant(wName)
	if err != nil {
		return w, "", fmt.Errorf("%w: weight of %s: %v", ErrUnsupportedGraph, n.GetName(), err)
	}
	data, dims, err := floatsOf(t)
	if err != nil {
		return w, "", fmt.Errorf("%w: weight %q of %s: %v", ErrUnsupportedGraph, wName, n.GetName(), err)
	}
	if len(dims) != 2 {
		return w, "", fmt.Errorf("%w: weight %q of %s has shape %v; want 2 dimensions", ErrUnsupportedGraph, wName, n.GetName(), dims)
	}
	w.WeightName, w.WeightTransposed = wName, transposed
	if transposed { // stored [Out, In]: already torch's layout
		w.Out, w.In = dims[0], dims[1]
		w.W = data
	} else { // stored [In, Out]
		w.In, w.Out = dims[0], dims[1]
		w.W = make([]float32, len(data))
		for i := range w.In {
			for o := range w.Out {
				w.W[o*w.In+i] = data[i*w.Out+o]
			}
		}
	}

	// The bias: Gemm's third input, or an Add of a 1-D constant after the
	// MatMul.
	biasName, out := "", ""
	var bSlot inputSlot
	if n.GetOpType() == "Gemm" && len(in) > 2 && in[2] != "" {
		biasName, out, bSlot = in[2], n.GetOutput()[0], inputSlot{n, 2}
	} else {
		for _, c := range r.consumers[n.GetOutput()[0]] {
			if c.GetOpType() != "Add" || len(c.GetInput()) != 2 {
				continue
			}
			k := 0
			other := c.GetInput()[0]
			if other == n.GetOutput()[0] {
				k, other = 1, c.GetInput()[1]
			}
			if t, err := r.constant(other); err == nil && len(t.GetDims()) == 1 {
				biasName, out, bSlot = other, c.GetOutput()[0], inputSlot{c, k}
				break
			}
		}
	}
	if biasName == "" {
		return w, "", fmt.Errorf("%w: no bias for %s: no Add of a 1-D constant after %q",
			ErrUnsupportedGraph, r.where(scope), n.GetName())
	}
	t, err = r.constant(biasName)
	if err != nil {
		return w, "", fmt.Errorf("%w: bias of %s: %v", ErrUnsupportedGraph, r.where(scope), err)
	}
	b, bdims, err := floatsOf(t)
	if err != nil {
		return w, "", fmt.Errorf("%w: bias %q of %s: %v", ErrUnsupportedGraph, biasName, r.where(scope), err)
	}
	if len(bdims) != 1 || bdims[0] != w.Out {
		return w, "", fmt.Errorf("%w: bias %q of %s has shape %v; want [%d]", ErrUnsupportedGraph, biasName, r.where(scope), bdims, w.Out)
	}
	w.B, w.BiasName = b, biasName
	r.biasOut[scope] = out
	r.slots[scope+slotWeight], r.slots[scope+slotBias] = wSlot, bSlot
	return w, x, nil
}

// layerNorm reads the LayerNorm under scope, over c features.
func (r *blockReader) layerNorm(scope string, c int) (LayerNormWeights, error) {
	var ln LayerNormWeights
	if fused := r.inScope(scope, "LayerNormalization"); len(fused) > 0 || r.nodes[scope] != nil {
		n := r.nodes[scope]
		if len(fused) > 0 {
			n = fused[0]
		}
		if n.GetOpType() != "LayerNormalization" || len(n.GetInput()) < 3 {
			return ln, fmt.Errorf("%w: %s is a %s with %d inputs; want LayerNormalization(x, scale, bias)",
				ErrUnsupportedGraph, n.GetName(), n.GetOpType(), len(n.GetInput()))
		}
		ln.Eps = 1e-5 // the operator's default
		for _, a := range n.GetAttribute() {
			switch a.GetName() {
			case "epsilon":
				ln.Eps = a.GetF()
			case "axis":
				if a.GetI() != -1 {
					return ln, fmt.Errorf("%w: %s normalises axis %d; want -1", ErrUnsupportedGraph, n.GetName(), a.GetI())
				}
			}
		}
		var err error
		if ln.Gamma, err = r.vector(n.GetInput()[1], c, n.GetName()+" scale"); err != nil {
			return ln, err
		}
		if ln.Beta, err = r.vector(n.GetInput()[2], c, n.GetName()+" bias"); err != nil {
			return ln, err
		}
		ln.GammaName, ln.BetaName = n.GetInput()[1], n.GetInput()[2]
		r.slots[scope+slotGamma], r.slots[scope+slotBeta] = inputSlot{n, 1}, inputSlot{n, 2}
		return ln, nil
	}

	// Decomposed: Mul by γ, Add β, and an Add of the scalar ε.
	find := func(op string, want func([]int) bool) (string, []float32, inputSlot, error) {
		var name string
		var data []float32
		var slot inputSlot
		for _, n := range r.inScope(scope, op) {
			for k, in := range n.GetInput() {
				t, err := r.constant(in)
				if err != nil {
					continue
				}
				v, dims, err := floatsOf(t)
				if err != nil || !want(dims) {
					continue
				}
				if name != "" {
					return "", nil, slot, fmt.Errorf("%w: %s has two %s nodes with such a constant (%q and %q)",
						ErrUnsupportedGraph, r.where(scope), op, name, in)
				}
				name, data, slot = in, v, inputSlot{n, k}
			}
		}
		return name, data, slot, nil
	}
	vec := func(d []int) bool { return len(d) == 1 && d[0] == c }
	scalar := func(d []int) bool { return len(d) == 0 || (len(d) == 1 && d[0] == 1) }
	if len(r.inScope(scope, "")) == 0 {
		return ln, fmt.Errorf("%w: no nodes named %s/* (a LayerNorm)", ErrUnsupportedGraph, r.where(scope))
	}
	var err error
	var eps []float32
	var gSlot, bSlot inputSlot
	if ln.GammaName, ln.Gamma, gSlot, err = find("Mul", vec); err != nil {
		return ln, err
	}
	if ln.BetaName, ln.Beta, bSlot, err = find("Add", vec); err != nil {
		return ln, err
	}
	if _, eps, _, err = find("Add", scalar); err != nil {
		return ln, err
	}
	switch {
	case ln.Gamma == nil:
		return ln, fmt.Errorf("%w: no Mul by a [%d] constant (γ) under %s/", ErrUnsupportedGraph, c, r.where(scope))
	case ln.Beta == nil:
		return ln, fmt.Errorf("%w: no Add of a [%d] constant (β) under %s/", ErrUnsupportedGraph, c, r.where(scope))
	case eps == nil:
		return ln, fmt.Errorf("%w: no Add of a scalar constant (ε) under %s/", ErrUnsupportedGraph, r.where(scope))
	case len(r.inScope(scope, "ReduceMean")) != 2 || len(r.inScope(scope, "Sqrt")) != 1:
		return ln, fmt.Errorf("%w: %s/ does not compute a LayerNorm (want 2 ReduceMean and a Sqrt)", ErrUnsupportedGraph, r.where(scope))
	}
	ln.Eps = eps[0]
	r.slots[scope+slotGamma], r.slots[scope+slotBeta] = gSlot, bSlot
	return ln, nil
}

// vector reads a 1-D float constant of n values.
func (r *blockReader) vector(name string, n int, what string) ([]float32, error) {
	t, err := r.constant(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedGraph, what, err)
	}
	v, dims, err := floatsOf(t)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %v", ErrUnsupportedGraph, what, name, err)
	}
	if len(dims) != 1 || dims[0] != n {
		return nil, fmt.Errorf("%w: %s %q has shape %v; want [%d]", ErrUnsupportedGraph, what, name, dims, n)
	}
	return v, nil
}

// heads reads the number of attention heads and their size from the
// Reshape that splits the projected query into [batch, seq, heads, size],
// and checks the score scaling against 1/√size where the graph has the
// classic Div.
func (r *blockReader) heads(c int) (heads, size int, err error) {
	for _, scope := range []string{r.blocks.query, r.blocks.key, r.blocks.value} {
		for _, n := range r.consumers[r.biasOut[scope]] {
			if n.GetOpType() != "Reshape" || len(n.GetInput()) < 2 {
				continue
			}
			shape, ok := r.shapeInts(n.GetInput()[1])
			if len(shape) != 4 || !ok[2] || !ok[3] {
				continue
			}
			// transformers 5 reshapes to [b, s, -1, head size]: the heads are
			// the hidden size over the head size (and the other way round).
			switch h, d := shape[2], shape[3]; {
			case h > 0 && d > 0:
				heads, size = int(h), int(d)
			case h == -1 && d > 0 && c%int(d) == 0:
				heads, size = c/int(d), int(d)
			case d == -1 && h > 0 && c%int(h) == 0:
				heads, size = int(h), c/int(h)
			default:
				continue
			}
			if heads*size != c {
				return 0, 0, fmt.Errorf("%w: Reshape %q splits the hidden size %d into %d heads of %d",
					ErrUnsupportedGraph, n.GetName(), c, heads, size)
			}
			return heads, size, r.checkScale(size)
		}
	}
	return 0, 0, fmt.Errorf("%w: no Reshape of the %s output to [batch, sequence, heads, head size] with a constant head size",
		ErrUnsupportedGraph, r.where(r.blocks.query))
}

// checkScale checks the Div of the attention scores by √size, where the
// graph has one (torch.onnx's export of BertSelfAttention).
func (r *blockReader) checkScale(size int) error {
	for _, n := range r.inScope(r.blocks.attention, "Div") {
		if len(n.GetInput()) != 2 {
			continue
		}
		t, err := r.constant(n.GetInput()[1])
		if err != nil {
			continue
		}
		v, _, err := floatsOf(t)
		if err != nil || len(v) != 1 {
			continue
		}
		if want := math.Sqrt(float64(size)); math.Abs(float64(v[0])-want) > 1e-5*want {
			return fmt.Errorf("%w: %s divides the attention scores by %v; want √%d = %v",
				ErrUnsupportedGraph, n.GetName(), v[0], size, float32(want))
		}
	}
	return nil
}

// checkGELU checks that the intermediate activation is the exact GELU: an
// Erf node (torch.onnx's decomposition), or one Gelu node (opset 20, what
// the dynamo exporter writes) whose approximate attribute is "none".
func (r *blockReader) checkGELU() error {
	act := r.blocks.activation
	if len(r.inScope(act, "Erf")) == 1 {
		return nil
	}
	if g := r.inScope(act, "Gelu"); len(g) == 1 && (g[0].GetDomain() == "" || g[0].GetDomain() == "ai.onnx") {
		for _, a := range g[0].GetAttribute() {
			if a.GetName() == "approximate" && string(a.GetS()) != "none" {
				return fmt.Errorf("%w: %s is the %q approximation of GELU; only the exact GELU (hidden_act \"gelu\") is supported",
					ErrUnsupportedGraph, g[0].GetName(), a.GetS())
			}
		}
		return nil
	}
	ops := []string{}
	for _, n := range r.inScope(act, "") {
		if !slices.Contains(ops, n.GetOpType()) {
			ops = append(ops, n.GetOpType())
		}
	}
	return fmt.Errorf("%w: no Erf node under %s/ (the exact GELU, hidden_act \"gelu\"); found %s",
		ErrUnsupportedGraph, r.where(act), strings.Join(ops, ", "))
}

// shapeInts reads a shape tensor: a constant, or a Concat of pieces some of
// which are constants. ok[i] says whether entry i is known.
func (r *blockReader) shapeInts(name string) ([]int64, []bool) {
	if t, err := r.constant(name); err == nil {
		v, err := intsOf(t)
		if err != nil {
			return nil, nil
		}
		ok := make([]bool, len(v))
		for i := range ok {
			ok[i] = true
		}
		return v, ok
	}
	p := r.producer[name]
	if p == nil || p.GetOpType() != "Concat" {
		return nil, nil
	}
	var vals []int64
	var ok []bool
	for _, in := range p.GetInput() {
		t, err := r.constant(in)
		if err != nil { // a dynamic piece: one entry (Unsqueeze of a Gather of Shape)
			vals, ok = append(vals, 0), append(ok, false)
			continue
		}
		v, err := intsOf(t)
		if err != nil {
			return nil, nil
		}
		for _, x := range v {
			vals, ok = append(vals, x), append(ok, true)
		}
	}
	return vals, ok
}

// constant returns the tensor named name if it is an initialiser or the
// output of a Constant node (its value attribute), following Identity
// nodes.
func (r *blockReader) constant(name string) (*onnxpb.TensorProto, error) {
	return constantTensor(r.inits, r.producer, name)
}

// constantTensor is blockReader.constant over a graph's initialisers and the node that
// produces each tensor.
func constantTensor(inits map[string]*onnxpb.TensorProto, producer map[string]*onnxpb.NodeProto, name string) (*onnxpb.TensorProto, error) {
	for range 8 {
		if t := inits[name]; t != nil {
			return t, nil
		}
		p := producer[name]
		switch {
		case p == nil:
			return nil, fmt.Errorf("%q is neither an initialiser nor produced by a node", name)
		case p.GetOpType() == "Identity":
			name = p.GetInput()[0]
			continue
		case p.GetOpType() == "Constant":
			return constantValue(p)
		default:
			return nil, fmt.Errorf("%q is computed by %s %q, not a constant", name, p.GetOpType(), p.GetName())
		}
	}
	return nil, fmt.Errorf("%q: too many Identity nodes", name)
}

// constantValue returns a Constant node's value as a tensor.
func constantValue(n *onnxpb.NodeProto) (*onnxpb.TensorProto, error) {
	for _, a := range n.GetAttribute() {
		switch a.GetName() {
		case "value":
			return a.GetT(), nil
		case "value_float":
			return &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{a.GetF()}}, nil
		case "value_floats":
			return &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Dims: []int64{int64(len(a.GetFloats()))}, FloatData: a.GetFloats()}, nil
		case "value_int":
			return &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{a.GetI()}}, nil
		case "value_ints":
			return &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{int64(len(a.GetInts()))}, Int64Data: a.GetInts()}, nil
		}
	}
	return nil, fmt.Errorf("Constant %q has no value attribute this package reads", n.GetName())
}

// floatsOf decodes a float32 tensor (raw_data or float_data) into a new
// slice, with its dimensions.
func floatsOf(t *onnxpb.TensorProto) ([]float32, []int, error) {
	dims, n, err := tensorDims(t)
	if err != nil {
		return nil, nil, err
	}
	if dt := onnxpb.TensorProto_DataType(t.GetDataType()); dt != onnxpb.TensorProto_FLOAT {
		return nil, nil, fmt.Errorf("element type %s; want float32", DType(dt))
	}
	out := make([]float32, n)
	switch raw := t.GetRawData(); {
	case len(raw) > 0:
		if len(raw) != 4*n {
			return nil, nil, fmt.Errorf("raw data of %d bytes for %d float32 values", len(raw), n)
		}
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case len(t.GetFloatData()) == n:
		copy(out, t.GetFloatData())
	default:
		return nil, nil, fmt.Errorf("%d float values for shape %v", len(t.GetFloatData()), dims)
	}
	return out, dims, nil
}

// intsOf decodes an int64 or int32 tensor.
func intsOf(t *onnxpb.TensorProto) ([]int64, error) {
	_, n, err := tensorDims(t)
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	raw := t.GetRawData()
	switch dt := onnxpb.TensorProto_DataType(t.GetDataType()); {
	case dt == onnxpb.TensorProto_INT64 && len(raw) == 8*n && n > 0:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case dt == onnxpb.TensorProto_INT64 && len(t.GetInt64Data()) == n:
		copy(out, t.GetInt64Data())
	case dt == onnxpb.TensorProto_INT32 && len(raw) == 4*n && n > 0:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case dt == onnxpb.TensorProto_INT32 && len(t.GetInt32Data()) == n:
		for i, v := range t.GetInt32Data() {
			out[i] = int64(v)
		}
	default:
		return nil, fmt.Errorf("not an int32 or int64 tensor of %d values (element type %s)", n, DType(dt))
	}
	return out, nil
}

// tensorDims returns a tensor's dimensions and element count, refusing
// external data.
func tensorDims(t *onnxpb.TensorProto) ([]int, int, error) {
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		return nil, 0, fmt.Errorf("tensor %q is stored in an external file, which this package does not read", t.GetName())
	}
	dims := make([]int, len(t.GetDims()))
	n := 1
	for i, d := range t.GetDims() {
		if d < 0 || d > math.MaxInt32 {
			return nil, 0, fmt.Errorf("tensor %q has dimension %d", t.GetName(), d)
		}
		dims[i] = int(d)
		n *= int(d)
	}
	return dims, n, nil
}

// intsAttrOf returns a node's INTS attribute, nil if absent.
func intsAttrOf(n *onnxpb.NodeProto, name string) []int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetInts()
		}
	}
	return nil
}
