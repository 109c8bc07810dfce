package onnx

import (
	"testing"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// TestWordEmbeddingRows: all-MiniLM-L6-v2's word embedding table has BERT's
// 30,522 rows; a graph without a Gather on input_ids reports nothing.
func TestWordEmbeddingRows(t *testing.T) {
	for _, name := range []string{defaultModel, defaultModel + "-q"} {
		m, err := LoadModel(requireModel(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if rows, ok := m.WordEmbeddingRows(); !ok || rows != 30522 {
			t.Errorf("%s: WordEmbeddingRows = %d, %v; want 30522, true", name, rows, ok)
		}
	}
	empty := &Model{Proto: &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{}}}
	if rows, ok := empty.WordEmbeddingRows(); ok {
		t.Errorf("empty graph: WordEmbeddingRows = %d, true; want false", rows)
	}
}
