package onnx

import "strings"

// MaxPositions returns the number of rows of the model's learned position-embedding
// table, the most tokens a text may have: HuggingFace exports name the table
// "...position_embeddings.weight" (dynamic quantisation: "..._quantized"), an initializer
// of shape (positions, hidden). ok is false when the graph has no such table (rotary or
// relative positions, or a naming this does not know); the caller then cannot check.
// A RoBERTa-style table reserves its first padding_idx+1 rows, so it holds that many
// fewer usable positions than rows; this returns the rows.
func (m *Model) MaxPositions() (n int, ok bool) {
	for _, t := range m.Proto.GetGraph().GetInitializer() {
		dims := t.GetDims()
		if len(dims) != 2 || dims[0] < 1 || !strings.Contains(t.GetName(), "position_embeddings") {
			continue
		}
		if !ok || int(dims[0]) < n {
			n, ok = int(dims[0]), true
		}
	}
	return n, ok
}
