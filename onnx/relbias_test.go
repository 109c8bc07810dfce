package onnx

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// mpnetFixture is the randomly initialised MPNet encoder of
// scripts/make_layout_fixtures.py: its block math is what the tests check.
var mpnetFixture = filepath.Join("..", "testdata", "layouts", "mpnet-random")

// mpnetRelativeBias loads the random MPNet fixture (LoadModel) and reads its relative
// position bias.
func mpnetRelativeBias(t *testing.T) (*Model, RelativeBias) {
	t.Helper()
	m, err := LoadModel(filepath.Join(mpnetFixture, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	rb, ok, err := m.RelativeBias()
	if err != nil || !ok {
		t.Fatalf("RelativeBias: ok %v, %v", ok, err)
	}
	return m, rb
}

// TestRelativeBiasRandomMPNet reads the relative position bias of the
// random-weight MPNet fixture: the table PyTorch holds (bit for bit), 32
// buckets, 4 heads, and the max distance 128 recovered from the bucket
// function's constants. A BERT graph has none.
func TestRelativeBiasRandomMPNet(t *testing.T) {
	m, rb := mpnetRelativeBias(t)
	var all struct {
		Families map[string]struct {
			Table [][]float32 `json:"relative_attention_bias"`
		} `json:"families"`
	}
	data, err := os.ReadFile(filepath.Join(mpnetFixture, "..", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	ref := all.Families["mpnet"]
	if rb.Buckets != 32 || rb.Heads != 4 || rb.MaxDistance != 128 {
		t.Errorf("buckets %d, heads %d, max distance %d; want 32, 4, 128", rb.Buckets, rb.Heads, rb.MaxDistance)
	}
	if want := slices.Concat(ref.Table...); !slices.Equal(rb.Table, want) {
		t.Errorf("table differs from PyTorch's relative_attention_bias.weight")
	}

	// Sequence packing would number a packed row's tokens across texts (the bias
	// and RoBERTa-style positions both): refused, the model unchanged.
	if err := m.EnablePacking(); !errors.Is(err, ErrPackingUnsupported) {
		t.Errorf("EnablePacking on MPNet: %v; want ErrPackingUnsupported", err)
	}

	bert, err := LoadModel(filepath.Join("..", "testdata", "exportforms", "legacy", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := bert.RelativeBias(); ok || err != nil {
		t.Errorf("BERT graph: RelativeBias ok %v, err %v; want false, nil", ok, err)
	}

	// The table without the bucket function is refused, naming what is missing.
	g := m.Proto.GetGraph()
	for _, n := range g.GetNode() {
		if relBiasLogPattern.MatchString(n.GetName()) {
			n.Name = new(string)
		}
	}
	if _, _, err := m.RelativeBias(); !errors.Is(err, ErrUnsupportedGraph) {
		t.Errorf("graph without */encoder/Log: err %v; want ErrUnsupportedGraph", err)
	}
}

// TestRelativeBiasOpenModel: on a model from OpenModel, RelativeBias reads the table,
// here made a stub (a long doc_string puts its encoding over stubMin), and leaves every
// other weight in the file; the bias equals LoadModel's.
func TestRelativeBiasOpenModel(t *testing.T) {
	full, want := mpnetRelativeBias(t)
	for _, init := range full.Proto.GetGraph().GetInitializer() {
		if init.GetName() == want.Name {
			init.DocString = proto.String(strings.Repeat("padding ", stubMin/8+1))
		}
	}
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := full.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	m, err := OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	stubs := len(m.lazy.stubs)
	if !slices.ContainsFunc(m.Proto.GetGraph().GetInitializer(), func(init *onnxpb.TensorProto) bool {
		_, stub := m.lazy.stubs[init]
		return stub && init.GetName() == want.Name
	}) || stubs < 2 {
		t.Fatalf("the fixture opened with %d stubs, the table not among them: the test needs it a stub and others", stubs)
	}
	got, ok, err := m.RelativeBias()
	if err != nil || !ok {
		t.Fatalf("RelativeBias of the opened model: ok %v, %v", ok, err)
	}
	if got.Buckets != want.Buckets || got.Heads != want.Heads || got.MaxDistance != want.MaxDistance || got.Name != want.Name || !slices.Equal(got.Table, want.Table) {
		t.Errorf("opened model's bias differs from LoadModel's")
	}
	if n := len(m.lazy.stubs); n != stubs-1 {
		t.Errorf("RelativeBias left %d of %d stubs in the file; want all but the table's (%d)", n, stubs, stubs-1)
	}
}
