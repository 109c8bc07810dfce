package onnx

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// TestOpenModel: a model opened without its weights is, once written out, the model
// LoadModel decodes (as a protobuf message, weights included), before and after graph
// edits; its block weights are the same; its stubs hold no values; a changed file is
// refused.
func TestOpenModel(t *testing.T) {
	path := requireModel(t, defaultModel)
	full, err := LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	lazy, err := OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if !lazy.hasStubs() {
		t.Fatal("OpenModel kept every weight in memory")
	}
	if got := proto.Size(lazy.Proto); got > 1<<20 {
		t.Errorf("OpenModel's model is %d bytes in memory; want under 1 MiB", got)
	}
	roundTrip := func(what string, m *Model) *Model {
		t.Helper()
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("%s: Marshal: %v", what, err)
		}
		back, err := ParseModel(b)
		if err != nil {
			t.Fatalf("%s: ParseModel: %v", what, err)
		}
		file := filepath.Join(t.TempDir(), "m.onnx")
		if err := m.WriteFile(file); err != nil {
			t.Fatalf("%s: WriteFile: %v", what, err)
		}
		fromFile, err := LoadModel(file)
		if err != nil {
			t.Fatalf("%s: LoadModel(WriteFile): %v", what, err)
		}
		if !sameModel(back, fromFile) {
			t.Fatalf("%s: Marshal and WriteFile differ", what)
		}
		return back
	}
	if got := roundTrip("opened", lazy); !sameModel(got, full) {
		t.Fatal("opened model, written out, differs from LoadModel's")
	}
	states, err := lazy.HiddenStates()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Model{full, lazy} {
		if err := m.ExposeOutputs(states[1], states[3]); err != nil {
			t.Fatal(err)
		}
		if err := m.EnablePacking(); err != nil {
			t.Fatal(err)
		}
	}
	if got := roundTrip("edited", lazy); !sameModel(got, full) {
		t.Fatal("edited opened model, written out, differs from the edited LoadModel one")
	}

	lazy2, err := OpenModel(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := full.BlockWeights(2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := lazy2.BlockWeights(2)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "Intermediate.W", got.Intermediate.W, want.Intermediate.W, 0)
	if lazy2.hasStubs() {
		t.Error("BlockWeights left stubs")
	}

	// A file that changes after OpenModel is refused when the weights are read.
	copyPath := filepath.Join(t.TempDir(), "model.onnx")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	lazy3, err := OpenModel(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data[:len(data)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(copyPath, time.Now(), time.Now().Add(time.Hour))
	if _, err := lazy3.Marshal(); err == nil {
		t.Error("Marshal of a model whose file changed: no error")
	}
}

// sameModel reports whether a and b are the same message once each graph's
// initialisers are in name order (a written OpenModel model lists its stubs last;
// the order of initialisers means nothing to a runtime).
func sameModel(a, b *Model) bool {
	sorted := func(m *Model) *onnxpb.ModelProto {
		c := proto.Clone(m.Proto).(*onnxpb.ModelProto)
		slices.SortStableFunc(c.Graph.Initializer, func(x, y *onnxpb.TensorProto) int { return strings.Compare(x.GetName(), y.GetName()) })
		return c
	}
	return proto.Equal(sorted(a), sorted(b))
}
