package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// This file writes the weights of one encoder block back into the graph,
// the inverse of block.go, and cuts a graph down to the outputs a caller
// keeps.

// ErrBadWeights means block weights cannot be written into a graph: a shape
// that differs from the graph's, or a value that is not finite. The wrapping
// error names the block, the field (Query.W, OutputNorm.Gamma) and both
// shapes or the index.
var ErrBadWeights = errors.New("onnx: bad block weights")

// blockWritePrefix starts the names of the initialisers (and nodes) that
// SetBlockWeights adds: headstart/layer.5/attention.self.query.weight.
const blockWritePrefix = "headstart/layer."

// blockTensor is one weight as SetBlockWeights writes it.
type blockTensor struct {
	field string    // the BlockWeights field, "Query.W", for errors
	name  string    // the new initialiser
	slot  inputSlot // the node input that reads the old tensor
	dims  []int64   // as the graph stores the tensor
	data  []float32 // in that layout, a copy

	// For a weight: the MatMul or Gemm that reads it, and the Transpose
	// added in front of it when the graph's is shared with other nodes.
	at        *onnxpb.NodeProto
	transpose *onnxpb.NodeProto
}

// SetBlockWeights writes the weights of bw into encoder block bw.Layer
// (0-based), so that the graph computes that block with them: the six dense
// layers' W and B and both LayerNorms' Gamma and Beta. It is the inverse of
// BlockWeights: afterwards BlockWeights(bw.Layer) returns exactly these
// values, in a marshalled and parsed copy of the model as well.
//
// Layouts are BlockWeights': every W is (Out, In) row-major, torch's
// layout, and is written in the layout the graph stores the weight in,
// transposed to [In, Out] where the graph's MatMul reads it directly
// (torch.onnx) and as it is where it goes through a Transpose or a Gemm
// with transB = 1 (LinearWeights.WeightTransposed as BlockWeights reads it
// from the graph; bw's flag is ignored). Only the weights are written: the
// graph's geometry (Hidden, IntermediateSize, Heads), LayerNorm ε and
// initialiser names are kept and bw's are ignored.
//
// Exporters share initialisers between nodes (one constant for equal
// LayerNorm weights or biases), so no initialiser is changed in place:
// each weight becomes a new initialiser, named
// headstart/layer.<Layer>/<module>.{weight,bias} after HuggingFace's module
// (attention.self.query.weight, output.LayerNorm.bias), and exactly the
// input of this block's node that read the old tensor is rewired to it: the
// MatMul or Gemm weight input (or the input of the Transpose in front of
// it; a Transpose that other nodes read as well is left to them, and a new
// one is added for this block), the bias Add or Gemm C input, the LayerNorm
// Mul and Add (or LayerNormalization scale and bias). Initialisers,
// Constant and Identity nodes that nothing reads any more are then removed,
// as are nodes no graph output needs; the graph inputs stay. Calling it
// again on the same block replaces the initialisers the first call added;
// names that start with headstart/layer. are reserved for it.
//
// Everything is checked before the graph is touched, and on error the model
// is not changed. A block out of range gives an error with the valid range;
// a graph that BlockWeights cannot read (quantised, fused, not a BERT
// block) gives its error, wrapping ErrUnsupportedGraph; a linear layer whose
// In or Out differs from the graph's, a slice of the wrong length, or a NaN
// or infinite value give an error wrapping ErrBadWeights that names the
// field (Intermediate.W, AttentionNorm.Gamma) with both shapes, or the index
// of the value.
func (m *Model) SetBlockWeights(bw BlockWeights) error {
	g := m.Proto.GetGraph()
	if g == nil {
		return fmt.Errorf("%w: model has no graph", ErrNotONNX)
	}
	cur, r, err := m.readBlock(bw.Layer)
	if err != nil {
		return err
	}
	lay := r.blocks
	prefix := blockWritePrefix + strconv.Itoa(bw.Layer) + "/"
	var writes []blockTensor
	got, curLin := lay.linears(&bw), lay.linears(&cur)
	for k, l := range got {
		if err := checkLinearWrite(bw.Layer, l.field, *l.w, *curLin[k].w); err != nil {
			return err
		}
		module := prefix + strings.ReplaceAll(l.scope, "/", ".")
		cl := *curLin[k].w
		in, out := cl.In, cl.Out
		w, dims := slices.Clone(l.w.W), []int64{int64(out), int64(in)}
		if !cl.WeightTransposed { // the graph stores [In, Out]
			dims = []int64{int64(in), int64(out)}
			for o := range out {
				for i := range in {
					w[i*out+o] = l.w.W[o*in+i]
				}
			}
		}
		writes = append(writes,
			blockTensor{field: l.field + ".W", name: module + ".weight", slot: r.slots[l.scope+slotWeight], at: linearNode(r, l.scope), dims: dims, data: w},
			blockTensor{field: l.field + ".B", name: module + ".bias", slot: r.slots[l.scope+slotBias], dims: []int64{int64(out)}, data: slices.Clone(l.w.B)})
	}
	for _, n := range []struct {
		field, scope string
		got, cur     LayerNormWeights
	}{
		{"AttentionNorm", lay.attentionNorm, bw.AttentionNorm, cur.AttentionNorm},
		{"OutputNorm", lay.outputNorm, bw.OutputNorm, cur.OutputNorm},
	} {
		module := prefix + strings.ReplaceAll(n.scope, "/", ".")
		for _, v := range []struct {
			field, suffix, slot string
			got, cur            []float32
		}{
			{n.field + ".Gamma", ".weight", slotGamma, n.got.Gamma, n.cur.Gamma},
			{n.field + ".Beta", ".bias", slotBeta, n.got.Beta, n.cur.Beta},
		} {
			if len(v.got) != len(v.cur) {
				return fmt.Errorf("%w: block %d %s has %d values; the graph's has %d (the hidden size)",
					ErrBadWeights, bw.Layer, v.field, len(v.got), len(v.cur))
			}
			if err := checkFiniteWeights(bw.Layer, v.field, v.got); err != nil {
				return err
			}
			writes = append(writes, blockTensor{field: v.field, name: module + v.suffix, slot: r.slots[n.scope+v.slot],
				dims: []int64{int64(len(v.got))}, data: slices.Clone(v.got)})
		}
	}

	// Names: the new initialisers replace those of an earlier call; a node
	// output or graph input of the same name is a clash.
	computed := make(map[string]bool)
	for _, n := range g.GetNode() {
		for _, t := range n.GetOutput() {
			computed[t] = true
		}
	}
	isInit := make(map[string]bool, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		isInit[t.GetName()] = true
	}
	for _, vi := range g.GetInput() {
		if !isInit[vi.GetName()] {
			computed[vi.GetName()] = true
		}
	}
	consumers := make(map[string]int)
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			consumers[in]++
		}
	}
	for _, o := range g.GetOutput() {
		consumers[o.GetName()]++
	}
	for k := range writes {
		w := &writes[k]
		if w.slot.node == nil {
			panic("onnx: SetBlockWeights: reader recorded no input for " + w.field)
		}
		if computed[w.name] {
			return fmt.Errorf("%w: cannot write block %d %s: the graph already computes a tensor named %q",
				ErrUnsupportedGraph, bw.Layer, w.field, w.name)
		}
		// A Transpose in front of the weight that other nodes read too:
		// this block gets its own.
		if s := w.slot; s.node.GetOpType() == "Transpose" && w.at != nil && consumers[s.node.GetOutput()[0]] > 1 {
			t := proto.Clone(s.node).(*onnxpb.NodeProto)
			t.Name = proto.String(w.name + "/Transpose")
			t.Output = []string{w.name + "/transposed"}
			if computed[t.GetOutput()[0]] {
				return fmt.Errorf("%w: cannot write block %d %s: the graph already computes a tensor named %q",
					ErrUnsupportedGraph, bw.Layer, w.field, t.GetOutput()[0])
			}
			w.slot, w.transpose = inputSlot{t, 0}, t
		}
	}

	// Commit: nothing above changed the model.
	commitWrites(m, r.names, writes)
	return nil
}

// commitWrites applies writes, checked already, to m's graph, which names (its
// moduleNames, as a reader found them) were read from and which has not changed
// since. A graph whose module names moduleNames rebuilt (a dynamo export) gets them
// as its node names first: the parameters they were rebuilt from are about to be
// replaced. Each write's Transpose, if any, goes in front of its MatMul, its slot
// reads the new initialiser (replacing one of the same name from an earlier call),
// and what nothing reads any more is removed.
func commitWrites(m *Model, names map[*onnxpb.NodeProto]string, writes []blockTensor) {
	g := m.Proto.GetGraph()
	for n, name := range names {
		if name != n.GetName() {
			n.Name = proto.String(name)
		}
	}
	replaced := make(map[string]bool, len(writes))
	for _, w := range writes {
		if w.transpose != nil { // before its MatMul, to keep the nodes in topological order
			g.Node = slices.Insert(g.Node, slices.Index(g.Node, w.at), w.transpose)
			w.at.Input[1] = w.transpose.GetOutput()[0]
		}
		w.slot.node.Input[w.slot.index] = w.name
		replaced[w.name] = true
	}
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return replaced[t.GetName()] })
	declared := declaredInputs(g)
	for _, w := range writes {
		addFloatInitializer(m, g, declared, w.name, w.dims, w.data)
	}
	pruneGraph(g)
}

// declaredInputs returns the names of g's graph inputs.
func declaredInputs(g *onnxpb.GraphProto) map[string]bool {
	declared := make(map[string]bool)
	for _, vi := range g.GetInput() {
		declared[vi.GetName()] = true
	}
	return declared
}

// addFloatInitializer appends a float initialiser name (dims, data) to g and, in a
// model before IR version 4 (where every initialiser is also a graph input), declares
// it as an input unless declared already names it.
func addFloatInitializer(m *Model, g *onnxpb.GraphProto, declared map[string]bool, name string, dims []int64, data []float32) {
	g.Initializer = append(g.Initializer, &onnxpb.TensorProto{
		Name:      proto.String(name),
		Dims:      dims,
		DataType:  proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		FloatData: data,
	})
	if m.Proto.GetIrVersion() < 4 && !declared[name] {
		shape := make([]*onnxpb.TensorShapeProto_Dimension, len(dims))
		for i, d := range dims {
			shape[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		}
		g.Input = append(g.Input, &onnxpb.ValueInfoProto{Name: proto.String(name), Type: tensorType(onnxpb.TensorProto_FLOAT, shape)})
	}
}

// linearNode returns the MatMul or Gemm of the dense layer under scope.
func linearNode(r *blockReader, scope string) *onnxpb.NodeProto {
	if n := r.nodes[scope+"/MatMul"]; n != nil {
		return n
	}
	return r.nodes[scope+"/Gemm"]
}

// checkLinearWrite checks a dense layer's weights against the graph's.
func checkLinearWrite(layer int, field string, got, cur LinearWeights) error {
	switch {
	case got.In != cur.In || got.Out != cur.Out:
		return fmt.Errorf("%w: block %d %s is (Out %d, In %d); the graph's is (Out %d, In %d)",
			ErrBadWeights, layer, field, got.Out, got.In, cur.Out, cur.In)
	case len(got.W) != cur.Out*cur.In:
		return fmt.Errorf("%w: block %d %s.W has %d values; want (Out %d, In %d) = %d as in the graph",
			ErrBadWeights, layer, field, len(got.W), cur.Out, cur.In, cur.Out*cur.In)
	case len(got.B) != cur.Out:
		return fmt.Errorf("%w: block %d %s.B has %d values; want (Out %d) as in the graph",
			ErrBadWeights, layer, field, len(got.B), cur.Out)
	}
	if err := checkFiniteWeights(layer, field+".W", got.W); err != nil {
		return err
	}
	return checkFiniteWeights(layer, field+".B", got.B)
}

func checkFiniteWeights(layer int, field string, v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: block %d %s[%d] = %v; want a finite value", ErrBadWeights, layer, field, i, x)
		}
	}
	return nil
}

// KeepOutputs makes the graph's outputs exactly names, in that order
// (repeats are skipped), and removes every node, initialiser and
// value_info entry that none of them needs. The graph inputs stay declared
// as they are, used or not, so callers feed what they fed before
// (onnxruntime accepts a feed for a declared input that no node reads).
//
// A name may be any tensor a node computes. An output that already was one
// keeps its declaration; hidden states (see HiddenStates) are declared
// float32 [batch, sequence, hidden] as ExposeOutputs declares them; other
// tensors take their type from the graph's value_info, or are declared
// float32 of unknown shape.
//
// For example, with hs = HiddenStateEntering(5), KeepOutputs(hs) leaves the
// graph that computes the hidden state entering block 5 and stops there:
// block 5's nodes and weights are gone.
//
// No names, or a name that no node of the graph produces, give an error
// listing those names; the model is then not changed.
func (m *Model) KeepOutputs(names ...string) error {
	g := m.Proto.GetGraph()
	if g == nil {
		return fmt.Errorf("%w: model has no graph", ErrNotONNX)
	}
	if len(names) == 0 {
		return errors.New("onnx: KeepOutputs: no outputs given; a graph needs at least one")
	}
	produced := make(map[string]bool)
	for _, n := range g.GetNode() {
		for _, t := range n.GetOutput() {
			if t != "" {
				produced[t] = true
			}
		}
	}
	var missing []string
	for _, name := range names {
		if !produced[name] {
			missing = append(missing, strconv.Quote(name))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("onnx: cannot keep %s as outputs: not a tensor of the graph (no node produces it; HiddenStates lists the hidden states)",
			strings.Join(missing, ", "))
	}

	declared := make(map[string]*onnxpb.ValueInfoProto)
	for _, o := range g.GetOutput() {
		declared[o.GetName()] = o
	}
	valueInfo := make(map[string]*onnxpb.ValueInfoProto)
	for _, vi := range g.GetValueInfo() {
		valueInfo[vi.GetName()] = vi
	}
	hiddenType := m.hiddenStateType() // before the outputs change: it reads their dimension names
	var outs []*onnxpb.ValueInfoProto
	seen := make(map[string]bool)
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		var vi *onnxpb.ValueInfoProto
		switch {
		case declared[name] != nil:
			vi = proto.Clone(declared[name]).(*onnxpb.ValueInfoProto)
		case hiddenType[name] != nil:
			vi = &onnxpb.ValueInfoProto{Name: proto.String(name), Type: proto.Clone(hiddenType[name]).(*onnxpb.TypeProto)}
		case valueInfo[name].GetType() != nil:
			vi = &onnxpb.ValueInfoProto{Name: proto.String(name), Type: proto.Clone(valueInfo[name].GetType()).(*onnxpb.TypeProto)}
		default:
			vi = &onnxpb.ValueInfoProto{Name: proto.String(name), Type: tensorType(onnxpb.TensorProto_FLOAT, nil)}
		}
		outs = append(outs, vi)
	}
	g.Output = outs
	pruneGraph(g)
	return nil
}
