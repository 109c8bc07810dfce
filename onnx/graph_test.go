package onnx

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

func TestHiddenStatesSynthetic(t *testing.T) {
	tests := []synth{
		{layers: 1, hidden: 4, vocab: 10, fixedHidden: true},
		{layers: 3, hidden: 6, vocab: 10, fixedHidden: true},
		{layers: 3, hidden: 6, vocab: 10, quantDecoy: true},                    // hidden size from the LayerNorm weight
		{layers: 12, hidden: 2, vocab: 5, quantDecoy: true, fixedHidden: true}, // layer.10 sorts before layer.2
	}
	for _, s := range tests {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			m, err := ParseModel(s.bytes(t))
			if err != nil {
				t.Fatal(err)
			}
			hs, err := m.HiddenStates()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(hs, s.hiddenNames()) {
				t.Errorf("HiddenStates() = %q, want %q", hs, s.hiddenNames())
			}
			if n, err := m.NumLayers(); err != nil || n != s.layers {
				t.Errorf("NumLayers() = %d, %v; want %d", n, err, s.layers)
			}
			if h, err := m.HiddenSize(); err != nil || h != s.hidden {
				t.Errorf("HiddenSize() = %d, %v; want %d", h, err, s.hidden)
			}
		})
	}
}

func TestHiddenStatesUnsupported(t *testing.T) {
	rename := func(from, to string) func(*onnxpb.GraphProto) {
		return func(g *onnxpb.GraphProto) {
			for _, n := range g.Node {
				n.Name = proto.String(strings.ReplaceAll(n.GetName(), from, to))
			}
		}
	}
	tests := []struct {
		name   string
		edit   func(*onnxpb.GraphProto)
		errHas string
	}{
		{"no embeddings", rename("/embeddings/LayerNorm/", "/embeddings/Norm/"), "no nodes named */embeddings/LayerNorm/*"},
		{"no layers", rename("/output/LayerNorm/", "/output/Norm/"), "no nodes named */encoder/layer.N/output/LayerNorm/*"},
		{"gap", rename("/encoder/layer.1/", "/encoder/layer.7/"), "no nodes named */encoder/layer.1/output/LayerNorm/*; found layers 0, 2, 3, 7"},
		{"two ends", func(g *onnxpb.GraphProto) {
			// A second tensor leaving the block-0 LayerNorm.
			g.Node = append(g.Node, node("Mul", "/encoder/layer.0/output/LayerNorm/Extra", []string{"/encoder/layer.0/output/LayerNorm/Mul_output_0", "/embeddings/axes"}, "extra"))
			g.Output = append(g.Output, valueInfo("extra", onnxpb.TensorProto_FLOAT))
		}, "encoder layer 0 output LayerNorm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := synth{layers: 4, hidden: 4, vocab: 10}.build()
			tt.edit(p.Graph)
			m := &Model{Proto: p}
			_, err := m.HiddenStates()
			if !errors.Is(err, ErrUnsupportedGraph) || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("HiddenStates() error = %v; want ErrUnsupportedGraph containing %q", err, tt.errHas)
			}
			if _, err := m.NumLayers(); !errors.Is(err, ErrUnsupportedGraph) {
				t.Errorf("NumLayers() error = %v; want ErrUnsupportedGraph", err)
			}
		})
	}
}

// TestExposeOutputsSynthetic exposes every hidden state of the synthetic
// encoder and checks each against the hand computation, exactly.
func TestExposeOutputsSynthetic(t *testing.T) {
	requireRuntime(t)
	s := synth{layers: 3, hidden: 4, vocab: 10, quantDecoy: true, fixedHidden: true}
	m, err := ParseModel(s.bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	hs, err := m.HiddenStates()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := m.ExposeOutputs(hs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.ExposeOutputs("/embeddings/Cast_output_0", hs[0]); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range m.Outputs() {
		got = append(got, o.String())
	}
	want := []string{"last_hidden_state float32 [-1 -1 4]"}
	for _, h := range hs[:len(hs)-1] {
		want = append(want, h+" float32 [-1 -1 4]")
	}
	want = append(want, "/embeddings/Cast_output_0 float32 [?]")
	if !slices.Equal(got, want) {
		t.Errorf("outputs after ExposeOutputs:\n got %q\nwant %q", got, want)
	}
	// Exposed hidden states share the symbolic dimensions of last_hidden_state.
	for _, o := range m.Proto.Graph.Output[1:len(hs)] {
		d := o.GetType().GetTensorType().GetShape().GetDim()
		if d[0].GetDimParam() != "batch_size" || d[1].GetDimParam() != "sequence_length" {
			t.Errorf("%s: dims %v; want batch_size, sequence_length", o.GetName(), d)
		}
	}

	before := len(m.Proto.Graph.Output)
	err = m.ExposeOutputs(hs[1], "nope", "input_ids")
	if err == nil || !strings.Contains(err.Error(), `"nope", "input_ids": not produced by any node`) {
		t.Errorf("ExposeOutputs(unknown) = %v; want an error naming the unknown tensors", err)
	}
	if len(m.Proto.Graph.Output) != before {
		t.Error("a failed ExposeOutputs changed the graph")
	}

	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := NewSessionFromBytes(data, nil, hs, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ids, mask := synthBatch(s, 2, 3)
	out, err := sess.Run(nil, []Int64Tensor{ids, mask})
	if err != nil {
		t.Fatal(err)
	}
	wantVals := s.want(ids.Data, mask.Data)
	if len(out) != len(hs) {
		t.Fatalf("%d outputs, want %d", len(out), len(hs))
	}
	for k := range out {
		if !slices.Equal(out[k].Data, wantVals[k]) {
			t.Errorf("hidden state %d (%s) = %v, want %v", k, hs[k], out[k].Data, wantVals[k])
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	p := synth{layers: 2, hidden: 4, vocab: 10}.build()
	data, err := (&Model{Proto: p}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m.Proto, p) {
		t.Error("ParseModel(Marshal(m)) differs from m")
	}
	in, out, err := DescribeBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in) != fmt.Sprint(m.Inputs()) || fmt.Sprint(out) != fmt.Sprint(m.Outputs()) {
		t.Errorf("DescribeBytes = %v %v; Model says %v %v", in, out, m.Inputs(), m.Outputs())
	}
}

// TestDescribeSkipsInitializerInputs: an initialiser listed among the graph
// inputs (IR 3 style) is not an input a caller feeds.
func TestDescribeSkipsInitializerInputs(t *testing.T) {
	p := synth{layers: 1, hidden: 4, vocab: 10}.build()
	p.Graph.Input = append(p.Graph.Input, valueInfo("embeddings.LayerNorm.weight", onnxpb.TensorProto_FLOAT, int64(4)))
	data, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := DescribeBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(in); !slices.Equal(got, []string{"input_ids", "attention_mask"}) {
		t.Errorf("inputs = %v", got)
	}
	if got := names((&Model{Proto: p}).Inputs()); !slices.Equal(got, []string{"input_ids", "attention_mask"}) {
		t.Errorf("Model.Inputs() = %v", got)
	}
}

func TestResolveLayers(t *testing.T) {
	tests := []struct {
		spec      []int
		numHidden int
		want      []int
		errHas    string
	}{
		{[]int{-1}, 7, []int{6}, ""},
		{[]int{0, -1}, 7, []int{0, 6}, ""},
		{[]int{-4, -3, -2, -1}, 7, []int{3, 4, 5, 6}, ""},
		{[]int{6, 0, 3}, 7, []int{6, 0, 3}, ""},
		{[]int{-7}, 7, []int{0}, ""},
		{[]int{-8}, 7, nil, "layer -8 out of range; model has 7 hidden states: 0..6 or -7..-1"},
		{[]int{-9}, 7, nil, "layer -9 out of range; model has 7 hidden states: 0..6 or -7..-1"},
		{[]int{7}, 7, nil, "layer 7 out of range; model has 7 hidden states: 0..6 or -7..-1"},
		{[]int{12}, 13, []int{12}, ""},
		{[]int{6, -1}, 7, nil, "layers 6 and -1 both name hidden state 6"},
		{nil, 7, nil, "no layers given; model has 7 hidden states"},
		{[]int{0}, 0, nil, "model has 0 hidden states"},
	}
	for _, tt := range tests {
		got, err := ResolveLayers(tt.spec, tt.numHidden)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("ResolveLayers(%v, %d) = %v, %v; want error containing %q", tt.spec, tt.numHidden, got, err, tt.errHas)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ResolveLayers(%v, %d) = %v, %v; want %v", tt.spec, tt.numHidden, got, err, tt.want)
		}
	}
}

func TestMaxPositions(t *testing.T) {
	for _, c := range []struct {
		inits []*onnxpb.TensorProto
		n     int
		ok    bool
	}{
		{[]*onnxpb.TensorProto{{Name: proto.String("embeddings.position_embeddings.weight"), Dims: []int64{512, 384}}}, 512, true},
		{[]*onnxpb.TensorProto{
			{Name: proto.String("embeddings.position_ids"), Dims: []int64{1, 512}},
			{Name: proto.String("embeddings.position_embeddings.weight_scale")},
			{Name: proto.String("embeddings.position_embeddings.weight_quantized"), Dims: []int64{256, 384}},
		}, 256, true},
		{[]*onnxpb.TensorProto{{Name: proto.String("embeddings.word_embeddings.weight"), Dims: []int64{30522, 384}}}, 0, false},
	} {
		m := &Model{Proto: &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{Initializer: c.inits}}}
		if n, ok := m.MaxPositions(); n != c.n || ok != c.ok {
			t.Errorf("%v: MaxPositions() = %d, %v; want %d, %v", c.inits, n, ok, c.n, c.ok)
		}
	}
}
