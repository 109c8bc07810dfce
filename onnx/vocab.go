package onnx

// WordEmbeddingRows returns the number of rows of the word embedding table:
// the first input of the Gather that looks input_ids up, as an initializer of
// rank 2 or the output of a DequantizeLinear of one (dynamic quantisation).
// ok is false when the graph has no such Gather; then nothing can be checked.
func (m *Model) WordEmbeddingRows() (rows int, ok bool) {
	g := m.Proto.GetGraph()
	inits := m.initializers()
	producer := map[string]string{} // tensor -> first input of the DequantizeLinear making it
	for _, n := range g.GetNode() {
		if n.GetOpType() == "DequantizeLinear" && len(n.GetInput()) > 0 && len(n.GetOutput()) > 0 {
			producer[n.GetOutput()[0]] = n.GetInput()[0]
		}
	}
	// Tensors that carry input_ids unchanged in value (a Cast to int32 or int64).
	ids := map[string]bool{"input_ids": true}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "Cast" && len(n.GetInput()) == 1 && ids[n.GetInput()[0]] {
			for _, o := range n.GetOutput() {
				ids[o] = true
			}
		}
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Gather" || len(n.GetInput()) != 2 || !ids[n.GetInput()[1]] {
			continue
		}
		table := n.GetInput()[0]
		if src, q := producer[table]; q {
			table = src
		}
		if t, found := inits[table]; found && len(t.GetDims()) == 2 {
			return int(t.GetDims()[0]), true
		}
	}
	return 0, false
}
