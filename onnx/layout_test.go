package onnx

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// layoutFixture is a random-weight encoder of scripts/make_layout_fixtures.py.
func layoutFixture(name string) string {
	return filepath.Join("..", "testdata", "layouts", name, "model.onnx")
}

// TestLayoutRandomWeightFixtures: on the random-weight RoBERTa, XLM-R, DistilBERT and
// MPNet exports (and the tiny BERT; legacy and dynamo forms), Layout names the family and its embedding conventions,
// the blocks are found under the family's module names with their geometry, the
// embedding tables are read with or without a token type table, and block and
// embedding weights written with SetBlockWeights and SetEmbeddingWeights read back
// exactly, in a reparsed copy too.
func TestLayoutRandomWeightFixtures(t *testing.T) {
	for _, c := range []struct {
		path  string
		want  Layout
		vocab int
		rows  int // position table rows
		types int
	}{
		{tinyForm("legacy"), Layout{Family: FamilyBERT, TokenTypes: true}, 219, 128, 2},
		{layoutFixture("roberta-random"), Layout{Family: FamilyRoBERTa, TokenTypes: true, PadPositions: true, PaddingIdx: 1}, 3000, 514, 1},
		{layoutFixture("xlmr-random"), Layout{Family: FamilyRoBERTa, TokenTypes: true, PadPositions: true, PaddingIdx: 1}, 4002, 514, 1},
		{layoutFixture("distilbert-random"), Layout{Family: FamilyDistilBERT}, 219, 512, 0},
		{layoutFixture("mpnet-random"), Layout{Family: FamilyMPNet, PadPositions: true, PaddingIdx: 1, RelativeBias: true}, 227, 514, 0},
		// dynamo exports: module names rebuilt from parameter names.
		{tinyForm("dynamo"), Layout{Family: FamilyBERT, TokenTypes: true}, 219, 128, 2},
		{layoutFixture("distilbert-random-dynamo"), Layout{Family: FamilyDistilBERT}, 219, 512, 0},
		{layoutFixture("distilbert-random-optimum"), Layout{Family: FamilyDistilBERT}, 219, 512, 0},
		{layoutFixture("mpnet-random-dynamo"), Layout{Family: FamilyMPNet, PadPositions: true, PaddingIdx: 1, RelativeBias: true}, 227, 514, 0},
		{layoutFixture("mpnet-random-optimum"), Layout{Family: FamilyMPNet, PadPositions: true, PaddingIdx: 1, RelativeBias: true}, 227, 514, 0},
	} {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(c.path)))+"/"+filepath.Base(filepath.Dir(c.path)), func(t *testing.T) {
			m, err := LoadModel(c.path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Layout()
			if err != nil || got != c.want {
				t.Fatalf("Layout() = %+v, %v; want %+v", got, err, c.want)
			}
			if n, err := m.NumLayers(); err != nil || n != 2 {
				t.Fatalf("NumLayers = %d, %v; want 2", n, err)
			}
			hs, err := m.HiddenStates()
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				bw, err := m.BlockWeights(i)
				if err != nil {
					t.Fatal(err)
				}
				if bw.Hidden != 32 || bw.Heads != 4 || bw.HeadSize != 8 || bw.IntermediateSize != 64 {
					t.Fatalf("block %d: hidden %d, %d heads of %d, intermediate %d; want 32, 4 of 8, 64", i, bw.Hidden, bw.Heads, bw.HeadSize, bw.IntermediateSize)
				}
				if enter, _ := m.HiddenStateEntering(i); enter != hs[i] {
					t.Fatalf("HiddenStateEntering(%d) = %q; HiddenStates()[%d] = %q", i, enter, i, hs[i])
				}
			}
			ew, err := m.EmbeddingWeights()
			if err != nil {
				t.Fatal(err)
			}
			if ew.Vocab != c.vocab || ew.Positions != c.rows || ew.Types != c.types || len(ew.TokenType) != c.types*32 ||
				ew.PadPositions != c.want.PadPositions || ew.PaddingIdx != c.want.PaddingIdx {
				t.Fatalf("embeddings: %d words, %d positions, %d types (%d values), pad positions %v from %d", ew.Vocab, ew.Positions, ew.Types, len(ew.TokenType), ew.PadPositions, ew.PaddingIdx)
			}

			// Write both blocks and the embeddings, read them back.
			want := []BlockWeights{perturbBlock(mustBlock(t, m, 0), 1), perturbBlock(mustBlock(t, m, 1), 2)}
			for _, bw := range want {
				if err := m.SetBlockWeights(bw); err != nil {
					t.Fatal(err)
				}
			}
			ew.Word[5*32+7] += 1
			ew.Position[3] -= 0.5
			ew.Norm.Gamma[0] = 1.5
			if err := m.SetEmbeddingWeights(ew); err != nil {
				t.Fatal(err)
			}
			for _, mm := range []*Model{m, reparse(t, m)} {
				for i, bw := range want {
					if d := weightsDiffer(mustBlock(t, mm, i), bw); d != "" {
						t.Fatalf("block %d read back: %s", i, d)
					}
				}
				got, err := mm.EmbeddingWeights()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Word, ew.Word) || !slices.Equal(got.Position, ew.Position) || !slices.Equal(got.TokenType, ew.TokenType) || !slices.Equal(got.Norm.Gamma, ew.Norm.Gamma) {
					t.Fatal("embedding tables read back differ from those written")
				}
			}
			if c.types == 0 {
				bad := ew
				bad.TokenType = make([]float32, 32)
				if err := m.SetEmbeddingWeights(bad); !errors.Is(err, ErrBadWeights) {
					t.Fatalf("a token type table for a model without one: %v; want ErrBadWeights", err)
				}
			}
		})
	}
}

// TestLayoutUnsupported: a graph whose blocks match no family is refused with an error
// that names the scopes the graph has and the layouts supported; RoBERTa's position ids
// are not numbered from 0, so EnablePacking refuses them.
func TestLayoutUnsupported(t *testing.T) {
	m, err := LoadModel(layoutFixture("distilbert-random"))
	if err != nil {
		t.Fatal(err)
	}
	// The DistilBERT blocks renamed as a GPT-2-style list: /h.0/attention/q_lin/MatMul.
	for _, n := range m.Proto.GetGraph().GetNode() {
		n.Name = proto.String(strings.ReplaceAll(n.GetName(), "/transformer/layer.", "/h."))
	}
	for i, f := range []func() error{
		func() error { _, err := m.NumLayers(); return err },
		func() error { _, err := m.BlockWeights(0); return err },
		func() error { _, err := m.Layout(); return err },
	} {
		err := f()
		if !errors.Is(err, ErrUnsupportedGraph) {
			t.Fatalf("call %d: %v; want ErrUnsupportedGraph", i, err)
		}
		for _, w := range []string{"*/h.N/*", "*/encoder/layer.N/output/LayerNorm/* (BERT, RoBERTa, XLM-RoBERTa)", "*/transformer/layer.N/output_layer_norm/* (DistilBERT)"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("call %d: %q does not mention %q", i, err, w)
			}
		}
	}

	r, err := LoadModel(layoutFixture("roberta-random"))
	if err != nil {
		t.Fatal(err)
	}
	before := proto.Clone(r.Proto).(*onnxpb.ModelProto)
	if err := r.EnablePacking(); !errors.Is(err, ErrPackingUnsupported) || !strings.Contains(err.Error(), "padding_idx") {
		t.Fatalf("EnablePacking on RoBERTa: %v; want ErrPackingUnsupported naming padding_idx", err)
	}
	if !proto.Equal(before, r.Proto) {
		t.Fatal("a refused EnablePacking changed the model")
	}
}
