package onnx

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// tinyForm is the tiny BERT of scripts/make_export_fixtures.py in one export form.
func tinyForm(form string) string {
	return filepath.Join("..", "testdata", "exportforms", form, "model.onnx")
}

// TestModuleNamesFromNameScopes: a dynamo export read through its name_scopes metadata
// alone (parameters renamed so that they say nothing) gives the same hidden states and
// block weights as read through its parameter names. The metadata is written in the
// three forms name_scopes takes: full paths per level, full paths then the operation's
// own name (torch 2.15 at opset 18), and one name per level.
func TestModuleNamesFromNameScopes(t *testing.T) {
	ref, err := LoadModel(tinyForm("dynamo"))
	if err != nil {
		t.Fatal(err)
	}
	wantStates, err := ref.HiddenStates()
	if err != nil {
		t.Fatal(err)
	}
	wantBlock, err := ref.BlockWeights(1)
	if err != nil {
		t.Fatal(err)
	}
	names := moduleNames(ref.Proto.GetGraph())
	for _, form := range []struct{ cumulative, opName bool }{{true, false}, {true, true}, {false, false}} {
		cumulative := form.cumulative
		t.Run(fmt.Sprintf("cumulative=%v,op=%v", cumulative, form.opName), func(t *testing.T) {
			m := &Model{Proto: proto.Clone(ref.Proto).(*onnxpb.ModelProto)}
			g := m.Proto.GetGraph()
			// Metadata from the rebuilt names of the reference: /encoder/layer.0/output/LayerNorm/LayerNormalization
			// -> ["", "encoder", "encoder.layer", "encoder.layer.0", ...] or ["", "encoder", "layer", "0", ...].
			for i, n := range g.GetNode() {
				name := names[ref.Proto.GetGraph().GetNode()[i]]
				if !strings.HasPrefix(name, "/") {
					continue
				}
				path := strings.Split(strings.TrimPrefix(name[:strings.LastIndex(name, "/")], "/"), "/")
				var parts []string
				for _, p := range path {
					parts = append(parts, strings.Split(p, ".")...)
				}
				items := []string{`""`}
				for k := range parts {
					if cumulative {
						items = append(items, `"`+strings.Join(parts[:k+1], ".")+`"`)
					} else {
						items = append(items, `"`+parts[k]+`"`)
					}
				}
				if form.opName {
					items = append(items, `"`+strings.ToLower(n.GetOpType())+`"`)
				}
				n.MetadataProps = append(n.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(nameScopesKey), Value: proto.String("[" + strings.Join(items, ", ") + "]")})
			}
			rename := make(map[string]string)
			for k, init := range g.GetInitializer() {
				rename[init.GetName()] = fmt.Sprintf("param_%d", k)
				init.Name = proto.String(rename[init.GetName()])
			}
			for _, n := range g.GetNode() {
				for i, in := range n.Input {
					if r, ok := rename[in]; ok {
						n.Input[i] = r
					}
				}
			}
			states, err := m.HiddenStates()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(states, wantStates) {
				t.Fatalf("hidden states %q; from parameter names %q", states, wantStates)
			}
			bw, err := m.BlockWeights(1)
			if err != nil {
				t.Fatal(err)
			}
			if bw.Heads != wantBlock.Heads || !slices.Equal(bw.Query.W, wantBlock.Query.W) || !slices.Equal(bw.OutputNorm.Beta, wantBlock.OutputNorm.Beta) || !slices.Equal(bw.Output.B, wantBlock.Output.B) {
				t.Fatal("block 1 read through name_scopes differs from block 1 read through parameter names")
			}
		})
	}
}

// TestExportFormsGraphs: what the graph reader makes of each tiny export form.
func TestExportFormsGraphs(t *testing.T) {
	for _, c := range []struct {
		form       string
		layers     int
		heads      int
		lastOutput string
		err        string // of NumLayers and BlockWeights; "" if they work
	}{
		{"legacy", 2, 4, "last_hidden_state", ""},
		{"optimum", 2, 4, "last_hidden_state", ""},
		{"tf5", 2, 4, "last_hidden_state", ""},
		{"dynamo", 2, 4, "last_hidden_state", ""},
		{"st", 2, 4, "token_embeddings", ""},
		{"fused", 0, 0, "last_hidden_state", "com.microsoft.SkipLayerNormalization ×4"},
	} {
		t.Run(c.form, func(t *testing.T) {
			m, err := LoadModel(tinyForm(c.form))
			if err != nil {
				t.Fatal(err)
			}
			last, hidden, err := m.LastHiddenState()
			if err != nil || last != c.lastOutput || hidden != 32 {
				t.Fatalf("LastHiddenState = %q, %d, %v; want %q, 32", last, hidden, err, c.lastOutput)
			}
			if err := m.CheckEncoder(32); err != nil {
				t.Fatal(err)
			}
			n, err := m.NumLayers()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("NumLayers error %v; want one mentioning %q", err, c.err)
				}
				if _, err := m.BlockWeights(0); err == nil {
					t.Fatal("BlockWeights read a fused block")
				}
				return
			}
			if err != nil || n != c.layers {
				t.Fatalf("NumLayers = %d, %v; want %d", n, err, c.layers)
			}
			for i := range n {
				bw, err := m.BlockWeights(i)
				if err != nil {
					t.Fatal(err)
				}
				if bw.Heads != c.heads || bw.HeadSize != 32/c.heads || bw.IntermediateSize != 64 {
					t.Fatalf("block %d: %d heads of %d, intermediate %d; want %d of %d, 64", i, bw.Heads, bw.HeadSize, bw.IntermediateSize, c.heads, 32/c.heads)
				}
			}
		})
	}
	m, err := LoadModel(tinyForm("classifier"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckEncoder(32); err == nil || !strings.Contains(err.Error(), "logits") {
		t.Fatalf("CheckEncoder on a classifier: %v; want ErrNotEncoder naming logits", err)
	}
}
