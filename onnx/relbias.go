package onnx

import (
	"fmt"
	"math"
	"regexp"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// This file reads the relative position bias of an MPNet encoder: one table
// the encoder turns into a (heads, T, T) bias once and adds to the attention
// scores of every block.

// RelativeBias is MPNet's relative position bias (HuggingFace transformers'
// MPNetEncoder.relative_attention_bias and relative_position_bucket), read
// from a graph by Model.RelativeBias. Head h adds
// Table[bucket(j − i)·Heads + h] to the score of query i and key j; package
// lora's RelativeBias documents the bucket function.
type RelativeBias struct {
	// Buckets is relative_attention_num_buckets (32 in MPNet), Heads the
	// attention head count, MaxDistance the distance from which all get the
	// last bucket (128 in transformers), read from the graph's constants.
	Buckets, Heads, MaxDistance int
	// Table is relative_attention_bias.weight, (Buckets, Heads) row-major.
	Table []float32
	// Name is the initialiser Table was read from.
	Name string
}

var (
	relBiasGatherPattern = regexp.MustCompile(`(?:^|/)encoder/relative_attention_bias/Gather$`)
	relBiasLogPattern    = regexp.MustCompile(`(?:^|/)encoder/Log$`)
)

// RelativeBias reads the relative position bias of an MPNet encoder
// exported by torch.onnx: the Gather named */encoder/relative_attention_bias
// reads the table, an initialiser (Buckets, Heads); the bucket function's
// Log(|n| / E) / log(MaxDistance / E) gives E (Buckets/4) and MaxDistance.
// ok is false, with a nil error, for a graph without one (BERT and the other
// families with absolute positions only). A graph that has the Gather but
// not the rest gives an error wrapping ErrUnsupportedGraph.
func (m *Model) RelativeBias() (rb RelativeBias, ok bool, err error) {
	return m.relativeBias(newGraphReader(m, moduleNames(m.Proto.GetGraph()), nil, -1))
}

// relativeBias is RelativeBias through r, a reader of m's graph (newGraphReader). Of
// an OpenModel model's weights it reads only the tensors it decodes.
func (m *Model) relativeBias(r *blockReader) (rb RelativeBias, ok bool, err error) {
	var gather, logn *onnxpb.NodeProto
	for _, n := range m.Proto.GetGraph().GetNode() {
		switch name := r.names[n]; {
		case relBiasGatherPattern.MatchString(name) && n.GetOpType() == "Gather":
			if gather != nil {
				return rb, false, fmt.Errorf("%w: two relative_attention_bias Gathers (%q and %q)", ErrUnsupportedGraph, gather.GetName(), n.GetName())
			}
			gather = n
		case relBiasLogPattern.MatchString(name) && n.GetOpType() == "Log":
			logn = n
		}
	}
	if gather == nil {
		return rb, false, nil
	}
	t, err := r.constant(gather.GetInput()[0])
	if err != nil {
		return rb, false, fmt.Errorf("%w: relative position bias table of %q: %v", ErrUnsupportedGraph, gather.GetName(), err)
	}
	if err := m.loadStub(t); err != nil {
		return rb, false, err
	}
	table, dims, err := floatsOf(t)
	if err != nil || len(dims) != 2 {
		return rb, false, fmt.Errorf("%w: relative position bias table %q: %v (shape %v; want [buckets, heads])", ErrUnsupportedGraph, gather.GetInput()[0], err, dims)
	}
	rb = RelativeBias{Buckets: dims[0], Heads: dims[1], Table: table, Name: gather.GetInput()[0]}
	if rb.Buckets < 4 || rb.Buckets%4 != 0 {
		return rb, false, fmt.Errorf("%w: relative position bias table %q has %d buckets; want a multiple of 4", ErrUnsupportedGraph, rb.Name, rb.Buckets)
	}

	// The bucket function: Div(|n|, E) → Log → Div(·, log(M/E)).
	scalar := func(n *onnxpb.NodeProto, what string) (float64, error) {
		if n == nil || n.GetOpType() != "Div" || len(n.GetInput()) != 2 {
			return 0, fmt.Errorf("%w: the relative position bucket function: no Div by %s around */encoder/Log", ErrUnsupportedGraph, what)
		}
		t, err := r.constant(n.GetInput()[1])
		if err != nil {
			return 0, fmt.Errorf("%w: the relative position bucket function: %s of %q: %v", ErrUnsupportedGraph, what, n.GetName(), err)
		}
		if err := m.loadStub(t); err != nil {
			return 0, err
		}
		v, _, err := floatsOf(t)
		if err != nil || len(v) != 1 {
			return 0, fmt.Errorf("%w: the relative position bucket function: %s of %q is not one float", ErrUnsupportedGraph, what, n.GetName())
		}
		return float64(v[0]), nil
	}
	if logn == nil {
		return rb, false, fmt.Errorf("%w: the graph reads a relative position bias table (%q) but has no node named */encoder/Log (relative_position_bucket)", ErrUnsupportedGraph, rb.Name)
	}
	exact, err := scalar(r.producer[logn.GetInput()[0]], "max_exact")
	if err != nil {
		return rb, false, err
	}
	var after *onnxpb.NodeProto
	if cs := r.consumers[logn.GetOutput()[0]]; len(cs) == 1 {
		after = cs[0]
	}
	logRatio, err := scalar(after, "log(max_distance / max_exact)")
	if err != nil {
		return rb, false, err
	}
	if int(exact) != rb.Buckets/4 || float64(int(exact)) != exact {
		return rb, false, fmt.Errorf("%w: relative position buckets: max_exact %v; want buckets/4 = %d", ErrUnsupportedGraph, exact, rb.Buckets/4)
	}
	rb.MaxDistance = int(math.Round(exact * math.Exp(logRatio)))
	if rb.MaxDistance <= int(exact) {
		return rb, false, fmt.Errorf("%w: relative position buckets: max_distance %d; want more than max_exact %v", ErrUnsupportedGraph, rb.MaxDistance, exact)
	}
	return rb, true, nil
}
