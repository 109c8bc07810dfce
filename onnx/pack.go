package onnx

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// Inputs of a graph edited by EnablePacking.
const (
	// PositionIDsInput is [batch, sequence] int64: each token's position within its
	// own text (0 at the text's [CLS]).
	PositionIDsInput = "position_ids"
	// PackedMaskInput is [batch, 1, sequence, sequence] int64: element (b, 0, i, j)
	// is 1 when token i of row b may attend to token j (both in the same text),
	// else 0.
	PackedMaskInput = "packed_attention_mask"
)

// ErrPackingUnsupported: EnablePacking does not recognise how the graph builds its
// position ids or its attention mask.
var ErrPackingUnsupported = errors.New("onnx: graph cannot be edited for packed batches")

// EnablePacking edits a BERT-family encoder so that one row of a batch may hold several
// texts side by side (sequence packing): the graph takes the position of every token
// (PositionIDsInput) instead of numbering a row's tokens from 0, and a per-row
// token-to-token mask (PackedMaskInput) instead of the per-token attention_mask, so that
// a token attends only to the tokens of its own text. Packing short texts this way
// computes no padding and runs many texts in one forward; each text's hidden states are
// those of a forward of its own, up to float32 rounding (the masked scores add exact
// zeros to the softmax).
//
// The graph must be shaped as torch.onnx exports HuggingFace BERT, MiniLM and E5: the
// position embedding is a Gather whose indices are a slice of a constant position
// table, and attention_mask reaches the attention scores only through
// Unsqueeze(axis 1), Unsqueeze(axis 2), then arithmetic that broadcasts. Anything else
// gives an error wrapping ErrPackingUnsupported and leaves the model unchanged. The
// edit drops the graph's value_info (shape hints that onnxruntime recomputes), since
// the shapes downstream of both inputs change.
func (m *Model) EnablePacking() error {
	g := m.Proto.GetGraph()
	for _, in := range g.GetInput() {
		if n := in.GetName(); n == PositionIDsInput || n == PackedMaskInput {
			return fmt.Errorf("%w: it already has an input %q", ErrPackingUnsupported, n)
		}
	}
	var mask, ids *onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		switch in.GetName() {
		case "attention_mask":
			mask = in
		case "input_ids":
			ids = in
		}
	}
	if mask == nil || ids == nil {
		return fmt.Errorf("%w: it needs inputs input_ids and attention_mask", ErrPackingUnsupported)
	}
	consumers := make(map[string][]*onnxpb.NodeProto)
	for _, n := range g.GetNode() {
		for _, t := range n.GetInput() {
			consumers[t] = append(consumers[t], n)
		}
	}
	producer := producers(g)
	inits := m.initializers()
	isOutput := func(t string) bool {
		return slices.ContainsFunc(g.GetOutput(), func(o *onnxpb.ValueInfoProto) bool { return o.GetName() == t })
	}

	// Position embedding: a Gather from a table named *position_embeddings*, whose
	// indices are computed inside the graph.
	var posGather *onnxpb.NodeProto
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Gather" && len(n.GetInput()) == 2 && strings.Contains(n.GetInput()[0], "position_embeddings") {
			if posGather != nil {
				return fmt.Errorf("%w: two Gathers read the position embeddings (%q, %q)", ErrPackingUnsupported, posGather.GetName(), n.GetName())
			}
			posGather = n
		}
	}
	if posGather == nil {
		return fmt.Errorf("%w: no Gather reads a *position_embeddings* table", ErrPackingUnsupported)
	}
	if in := posGather.GetInput()[1]; slices.ContainsFunc(g.GetInput(), func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == in }) {
		return fmt.Errorf("%w: the position embeddings already read graph input %q", ErrPackingUnsupported, in)
	}
	// RoBERTa and XLM-R count positions from padding_idx+1 over the input ids: a
	// position_ids input numbered from 0 would shift every position.
	if dependsOn(producer, posGather.GetInput()[1], "input_ids") {
		return fmt.Errorf("%w: the position ids are computed from input_ids (RoBERTa's padding_idx offset), not numbered from 0", ErrPackingUnsupported)
	}

	// Attention mask: attention_mask -> Unsqueeze(1) -> Unsqueeze(2) -> the rest; the
	// Unsqueezes are removed and their consumers read PackedMaskInput.
	var chain []*onnxpb.NodeProto
	t := "attention_mask"
	for _, want := range []int64{1, 2} {
		cs := consumers[t]
		if len(cs) != 1 || cs[0].GetOpType() != "Unsqueeze" || isOutput(t) {
			return fmt.Errorf("%w: %q is not read by exactly one Unsqueeze (axis %d)", ErrPackingUnsupported, t, want)
		}
		if axes, err := unsqueezeAxes(inits, producer, cs[0]); err != nil || len(axes) != 1 || axes[0] != want {
			return fmt.Errorf("%w: Unsqueeze %q of the attention mask inserts axes %v, want [%d]", ErrPackingUnsupported, cs[0].GetName(), axes, want)
		}
		chain = append(chain, cs[0])
		t = cs[0].GetOutput()[0]
	}
	if isOutput(t) || len(consumers[t]) == 0 {
		return fmt.Errorf("%w: the expanded attention mask %q is a graph output or unused", ErrPackingUnsupported, t)
	}

	// Edit: rewire, drop the Unsqueezes and attention_mask, add the inputs.
	for _, n := range consumers[t] {
		for i, in := range n.Input {
			if in == t {
				n.Input[i] = PackedMaskInput
			}
		}
	}
	posGather.Input[1] = PositionIDsInput
	g.Node = slices.DeleteFunc(g.Node, func(n *onnxpb.NodeProto) bool { return slices.Contains(chain, n) })
	g.Input = slices.DeleteFunc(g.Input, func(v *onnxpb.ValueInfoProto) bool { return v == mask })
	dims := ids.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) != 2 {
		dims = []*onnxpb.TensorShapeProto_Dimension{
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "batch_size"}},
			{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "sequence_length"}},
		}
	}
	one := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 1}}
	g.Input = append(g.Input,
		&onnxpb.ValueInfoProto{Name: proto.String(PositionIDsInput), Type: tensorType(onnxpb.TensorProto_INT64, dims)},
		&onnxpb.ValueInfoProto{Name: proto.String(PackedMaskInput), Type: tensorType(onnxpb.TensorProto_INT64, []*onnxpb.TensorShapeProto_Dimension{dims[0], one, dims[1], dims[1]})},
	)
	g.ValueInfo = nil
	return nil
}

// unsqueezeAxes returns an Unsqueeze's axes: its attribute (opset < 13) or its constant
// second input.
func unsqueezeAxes(inits map[string]*onnxpb.TensorProto, producer map[string]*onnxpb.NodeProto, n *onnxpb.NodeProto) ([]int64, error) {
	for _, a := range n.GetAttribute() {
		if a.GetName() == "axes" {
			return a.GetInts(), nil
		}
	}
	if len(n.GetInput()) < 2 {
		return nil, fmt.Errorf("Unsqueeze %q has no axes", n.GetName())
	}
	t, err := constantTensor(inits, producer, n.GetInput()[1])
	if err != nil {
		return nil, fmt.Errorf("Unsqueeze %q: axes: %w", n.GetName(), err)
	}
	return intsOf(t)
}

// dependsOn reports whether tensor t is computed from the values of tensor from,
// following the producers of t's inputs back through the graph; a Shape or Size of a
// tensor depends on its shape only (BERT slices its position table to the length of
// input_ids).
func dependsOn(producer map[string]*onnxpb.NodeProto, t, from string) bool {
	seen := map[string]bool{}
	queue := []string{t}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		if t == from {
			return true
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		if p := producer[t]; p != nil && p.GetOpType() != "Shape" && p.GetOpType() != "Size" {
			queue = append(queue, p.GetInput()...)
		}
	}
	return false
}
