package onnx

import (
	"fmt"
	"math"
	"regexp"
	"slices"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// This file reads and writes the embedding tables of a BERT-family graph, as
// block.go and blockwrite.go do an encoder block's weights, so that the
// embeddings can be fine-tuned natively with the blocks (package lora).

// EmbeddingWeights are the parameters of BERT's embeddings (HuggingFace
// transformers' BertEmbeddings, RobertaEmbeddings, DistilBERT's
// Embeddings), which compute the hidden state entering block 0 from the
// input ids, positions and token type ids:
//
//	y_t = LN(Word[input_ids_t] + TokenType[token_type_ids_t] + Position[p_t])
//
// with p_t = t (BERT, DistilBERT) or RoBERTa's positions (see
// PadPositions; MPNet's too), and no TokenType term where the model has none
// (DistilBERT, MPNet). Every table is (rows, Hidden) row-major, as the graph's
// Gather reads it.
type EmbeddingWeights struct {
	// Hidden is C; Vocab, Positions and Types the rows of Word, Position and
	// TokenType (Types 0: no token type table).
	Hidden, Vocab, Positions, Types int
	// Word, Position and TokenType are the tables
	// (embeddings.{word,position,token_type}_embeddings.weight); TokenType
	// is nil for a model without one.
	Word, Position, TokenType []float32
	// Norm is embeddings.LayerNorm.
	Norm LayerNormWeights
	// PadPositions and PaddingIdx are Layout's: RoBERTa's position ids,
	// PaddingIdx + the count of non-pad tokens up to the token. They are
	// read from the graph; SetEmbeddingWeights ignores them.
	PadPositions bool
	PaddingIdx   int
}

// embeddingsWritePrefix starts the names of the initialisers that
// SetEmbeddingWeights adds: headstart/embeddings/word_embeddings.weight.
const embeddingsWritePrefix = "headstart/embeddings/"

// embeddingTables are the Gathers of the three tables, by module; the last
// is optional.
var embeddingTables = []string{"word_embeddings", "position_embeddings", "token_type_embeddings"}

// newEmbeddingsReader returns a reader over the nodes named */embeddings/*
// (module names, as moduleNames gives them: a dynamo export's are rebuilt); names
// are the graph's moduleNames.
func newEmbeddingsReader(m *Model, names map[*onnxpb.NodeProto]string) (*blockReader, error) {
	g := m.Proto.GetGraph()
	pat := regexp.MustCompile(`(?:^|/)embeddings/(.+)$`)
	r := newGraphReader(m, names, nil, -1)
	for _, n := range g.GetNode() {
		if sm := pat.FindStringSubmatch(names[n]); sm != nil {
			if prev, dup := r.nodes[sm[1]]; dup {
				return nil, fmt.Errorf("%w: nodes %q and %q both end in embeddings/%s (two encoders?)", ErrUnsupportedGraph, names[prev], names[n], sm[1])
			}
			r.nodes[sm[1]] = n
		}
	}
	return r, nil
}

// readEmbeddings reads the tables through r.
func (m *Model) readEmbeddings() (EmbeddingWeights, *blockReader, error) {
	var ew EmbeddingWeights
	if err := m.loadStubs(); err != nil { // a model from OpenModel holds no weights yet
		return ew, nil, err
	}
	l, err := m.encoderLayout()
	if err != nil {
		return ew, nil, err
	}
	c, err := m.hiddenSize(l)
	if err != nil {
		return ew, nil, err
	}
	r, err := newEmbeddingsReader(m, l.names)
	if err != nil {
		return ew, nil, err
	}
	lay, err := m.layout(l)
	if err != nil {
		return ew, nil, err
	}
	ew.Hidden, ew.PadPositions, ew.PaddingIdx = c, lay.PadPositions, lay.PaddingIdx
	dst := []*[]float32{&ew.Word, &ew.Position, &ew.TokenType}
	rows := []*int{&ew.Vocab, &ew.Positions, &ew.Types}
	for i, module := range embeddingTables {
		n := r.nodes[module+"/Gather"]
		if n == nil && module == "token_type_embeddings" && !lay.TokenTypes {
			continue
		}
		if n == nil || n.GetOpType() != "Gather" || len(n.GetInput()) != 2 {
			return ew, nil, fmt.Errorf("%w: no Gather node named */embeddings/%s/Gather reading the table (BertEmbeddings exported by torch.onnx)", ErrUnsupportedGraph, module)
		}
		t, err := r.constant(n.GetInput()[0])
		if err != nil {
			return ew, nil, fmt.Errorf("%w: */embeddings/%s/Gather: %v", ErrUnsupportedGraph, module, err)
		}
		v, dims, err := floatsOf(t)
		if err != nil {
			return ew, nil, fmt.Errorf("%w: */embeddings/%s table %q: %v", ErrUnsupportedGraph, module, n.GetInput()[0], err)
		}
		if len(dims) != 2 || dims[1] != c {
			return ew, nil, fmt.Errorf("%w: */embeddings/%s table %q has shape %v; want [rows %d]", ErrUnsupportedGraph, module, n.GetInput()[0], dims, c)
		}
		*dst[i], *rows[i] = v, dims[0]
		r.slots[module+slotWeight] = inputSlot{n, 0}
	}
	if ew.Norm, err = r.layerNorm("LayerNorm", c); err != nil {
		return ew, nil, err
	}
	return ew, r, nil
}

// EmbeddingWeights reads the embedding tables and their LayerNorm of a
// BERT-family encoder exported by torch.onnx: the tables are the first input
// of the Gather nodes */embeddings/{word,position,token_type}_embeddings/Gather
// (no token_type_embeddings in DistilBERT), the LayerNorm is
// */embeddings/LayerNorm (decomposed or one LayerNormalization), and the
// position convention is Layout's. The slices are the caller's. A graph
// without them gives an error wrapping ErrUnsupportedGraph that names what
// was not found.
func (m *Model) EmbeddingWeights() (EmbeddingWeights, error) {
	ew, _, err := m.readEmbeddings()
	return ew, err
}

// SetEmbeddingWeights writes ew's tables and LayerNorm into the graph, the
// inverse of EmbeddingWeights, as SetBlockWeights does for a block: each
// becomes a new initialiser named headstart/embeddings/<module>.weight (or
// LayerNorm.bias) and the node input that read the old one is rewired to it;
// what nothing reads any more is removed. ew's shapes must equal the graph's
// (an error wrapping ErrBadWeights names the field otherwise) and every value
// must be finite. On error the model is not changed.
func (m *Model) SetEmbeddingWeights(ew EmbeddingWeights) error {
	g := m.Proto.GetGraph()
	if g == nil {
		return fmt.Errorf("%w: model has no graph", ErrNotONNX)
	}
	cur, r, err := m.readEmbeddings()
	if err != nil {
		return err
	}
	var writes []blockTensor
	for _, t := range []struct {
		field, module string
		got, cur      []float32
		rows          int
	}{
		{"Word", "word_embeddings", ew.Word, cur.Word, cur.Vocab},
		{"Position", "position_embeddings", ew.Position, cur.Position, cur.Positions},
		{"TokenType", "token_type_embeddings", ew.TokenType, cur.TokenType, cur.Types},
	} {
		if t.rows == 0 && len(t.got) == 0 { // no token type table
			continue
		}
		if len(t.got) != len(t.cur) {
			return fmt.Errorf("%w: embeddings %s has %d values; the graph's table is [%d %d]", ErrBadWeights, t.field, len(t.got), t.rows, cur.Hidden)
		}
		writes = append(writes, blockTensor{field: t.field, name: embeddingsWritePrefix + t.module + ".weight", slot: r.slots[t.module+slotWeight],
			dims: []int64{int64(t.rows), int64(cur.Hidden)}, data: slices.Clone(t.got)})
	}
	for _, v := range []struct {
		field, name, slot string
		got, cur          []float32
	}{
		{"Norm.Gamma", "LayerNorm.weight", "LayerNorm" + slotGamma, ew.Norm.Gamma, cur.Norm.Gamma},
		{"Norm.Beta", "LayerNorm.bias", "LayerNorm" + slotBeta, ew.Norm.Beta, cur.Norm.Beta},
	} {
		if len(v.got) != len(v.cur) {
			return fmt.Errorf("%w: embeddings %s has %d values; the graph's has %d (the hidden size)", ErrBadWeights, v.field, len(v.got), len(v.cur))
		}
		writes = append(writes, blockTensor{field: v.field, name: embeddingsWritePrefix + v.name, slot: r.slots[v.slot], dims: []int64{int64(len(v.got))}, data: slices.Clone(v.got)})
	}
	for _, w := range writes {
		for i, x := range w.data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%w: embeddings %s[%d] = %v; want a finite value", ErrBadWeights, w.field, i, x)
			}
		}
		if w.slot.node == nil {
			panic("onnx: SetEmbeddingWeights: reader recorded no input for " + w.field)
		}
		if r.producer[w.name] != nil { // r indexed g, not yet changed
			return fmt.Errorf("%w: cannot write embeddings %s: the graph already computes a tensor named %q", ErrUnsupportedGraph, w.field, w.name)
		}
	}

	// Commit: nothing above changed the model.
	commitWrites(m, r.names, writes)
	return nil
}
