package onnx

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// mpnetFixture is the randomly initialised MPNet encoder of
// scripts/make_layout_fixtures.py: its block math is what the tests check.
var mpnetFixture = filepath.Join("..", "testdata", "layouts", "mpnet-random")

// TestRelativeBiasRandomMPNet reads the relative position bias of the
// random-weight MPNet fixture: the table PyTorch holds (bit for bit), 32
// buckets, 4 heads, and the max distance 128 recovered from the bucket
// function's constants. A BERT graph has none.
func TestRelativeBiasRandomMPNet(t *testing.T) {
	m, err := LoadModel(filepath.Join(mpnetFixture, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	rb, ok, err := m.RelativeBias()
	if err != nil || !ok {
		t.Fatalf("RelativeBias: ok %v, %v", ok, err)
	}
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
