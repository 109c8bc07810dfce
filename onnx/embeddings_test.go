package onnx

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// TestEmbeddingWeightsRoundTrip: all-MiniLM-L6-v2's embedding tables read with their
// shapes; written back changed, they read back exactly, in a marshalled and parsed copy
// too; a table of the wrong size or a NaN is refused and leaves the model unchanged.
func TestEmbeddingWeightsRoundTrip(t *testing.T) {
	m, err := LoadModel(requireModel(t, "all-minilm-l6-v2"))
	if err != nil {
		t.Fatal(err)
	}
	ew, err := m.EmbeddingWeights()
	if err != nil {
		t.Fatal(err)
	}
	if ew.Hidden != 384 || ew.Vocab != 30522 || ew.Positions != 512 || ew.Types != 2 || len(ew.Word) != 30522*384 || len(ew.Norm.Gamma) != 384 {
		t.Fatalf("tables %d×%d words, %d positions, %d types, %d gammas", ew.Vocab, ew.Hidden, ew.Positions, ew.Types, len(ew.Norm.Gamma))
	}
	// A model opened without its weights (OpenModel) reads the same tables.
	lazy, err := OpenModel(requireModel(t, "all-minilm-l6-v2"))
	if err != nil {
		t.Fatal(err)
	}
	if lw, err := lazy.EmbeddingWeights(); err != nil || !slices.Equal(lw.Word, ew.Word) || !slices.Equal(lw.Position, ew.Position) || !slices.Equal(lw.Norm.Gamma, ew.Norm.Gamma) {
		t.Fatalf("tables of the lazily opened model differ (err %v)", err)
	}
	ew.Word[5*384+7] += 1
	ew.Position[3] -= 0.5
	ew.TokenType[1*384] = 2
	ew.Norm.Gamma[0], ew.Norm.Beta[383] = 1.5, -0.25
	if err := m.SetEmbeddingWeights(ew); err != nil {
		t.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseModel(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, mm := range []*Model{m, m2} {
		got, err := mm.EmbeddingWeights()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Word, ew.Word) || !slices.Equal(got.Position, ew.Position) || !slices.Equal(got.TokenType, ew.TokenType) ||
			!slices.Equal(got.Norm.Gamma, ew.Norm.Gamma) || !slices.Equal(got.Norm.Beta, ew.Norm.Beta) || got.Norm.Eps != ew.Norm.Eps {
			t.Fatal("embedding tables read back differ from those written")
		}
	}
	before, _ := m.Marshal()
	short := ew
	short.Position = short.Position[:384]
	if err := m.SetEmbeddingWeights(short); !errors.Is(err, ErrBadWeights) {
		t.Fatalf("a 1-row position table: %v; want ErrBadWeights", err)
	}
	nan := ew
	nan.Norm.Beta = slices.Clone(ew.Norm.Beta)
	nan.Norm.Beta[2] = float32(math.NaN())
	if err := m.SetEmbeddingWeights(nan); !errors.Is(err, ErrBadWeights) {
		t.Fatalf("a NaN beta: %v; want ErrBadWeights", err)
	}
	if after, _ := m.Marshal(); !slices.Equal(before, after) {
		t.Fatal("a refused write changed the model")
	}

	// A graph whose node already computes a tensor of a name the write would add.
	clash, err := ParseModel(before)
	if err != nil {
		t.Fatal(err)
	}
	g := clash.Proto.GetGraph()
	g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String("clash"), OpType: proto.String("Identity"),
		Input: []string{"input_ids"}, Output: []string{embeddingsWritePrefix + "LayerNorm.bias"}})
	before, _ = clash.Marshal()
	if err := clash.SetEmbeddingWeights(ew); !errors.Is(err, ErrUnsupportedGraph) || !strings.Contains(err.Error(), "already computes") {
		t.Fatalf("a node computing %sLayerNorm.bias: %v; want ErrUnsupportedGraph naming the clash", embeddingsWritePrefix, err)
	}
	if after, _ := clash.Marshal(); !slices.Equal(before, after) {
		t.Fatal("a refused write changed the model")
	}
}

func nanValue() float64 { var z float64; return z / z }
