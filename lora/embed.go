package lora

import (
	"fmt"
	"slices"
)

// EmbeddingWeights are the parameters of BERT's embeddings (HuggingFace
// transformers' BertEmbeddings; RobertaEmbeddings and DistilBERT's
// Embeddings with the options below), which turn a sequence's token ids into
// the hidden states entering block 0:
//
//	e_t = Word[id_t] + TokenType[type_t] + Position[p_t]      t = 0..L−1
//	y_t = LN(e_t)
//
// with LN the LayerNorm over the C features and p_t the absolute position:
// t, counted from 0 in each sequence (BERT, DistilBERT), or with
// PadPositions RoBERTa's create_position_ids_from_input_ids,
//
//	p_t = PaddingIdx + Σ_{u≤t} [id_u ≠ PaddingIdx]   if id_t ≠ PaddingIdx
//	p_t = PaddingIdx                                   if id_t = PaddingIdx
//
// (RoBERTa, XLM-R, MPNet: the first token has position padding_idx+1).
// Without a TokenType table (DistilBERT, MPNet) the term is left out. Dropout is not applied
// (evaluation mode, as the blocks' own dropout).
type EmbeddingWeights[F Float] struct {
	// Word is (V, C) row-major, word_embeddings.weight; Position (P, C),
	// position_embeddings.weight; TokenType (T, C),
	// token_type_embeddings.weight, or nil for a model without token types.
	Word, Position, TokenType []F
	// Norm is the LayerNorm, embeddings.LayerNorm.
	Norm LayerNorm[F]
	// PadPositions selects RoBERTa's positions, counted from PaddingIdx+1
	// over the tokens whose id is not PaddingIdx (the <pad> id). Default
	// false: positions 0, 1, 2...
	PadPositions bool
	PaddingIdx   int
}

// Hidden returns C, the width of the tables (that of Norm).
func (w *EmbeddingWeights[F]) Hidden() int { return len(w.Norm.Gamma) }

// check validates the tables' shapes.
func (w *EmbeddingWeights[F]) check() error {
	c := w.Hidden()
	switch {
	case c < 1 || len(w.Norm.Beta) != c:
		return fmt.Errorf("%w: embeddings LayerNorm has %d gammas and %d betas; want C >= 1 each", ErrBadWeights, len(w.Norm.Gamma), len(w.Norm.Beta))
	case len(w.Word) == 0 || len(w.Word)%c != 0:
		return fmt.Errorf("%w: word embeddings hold %d values; want V·%d", ErrBadWeights, len(w.Word), c)
	case len(w.Position) == 0 || len(w.Position)%c != 0:
		return fmt.Errorf("%w: position embeddings hold %d values; want P·%d", ErrBadWeights, len(w.Position), c)
	case len(w.TokenType)%c != 0:
		return fmt.Errorf("%w: token type embeddings hold %d values; want T·%d (or none)", ErrBadWeights, len(w.TokenType), c)
	case w.PadPositions && (w.PaddingIdx < 0 || w.PaddingIdx >= len(w.Position)/c):
		return fmt.Errorf("%w: padding_idx %d outside the %d-row position table", ErrBadWeights, w.PaddingIdx, len(w.Position)/c)
	case !(w.Norm.Eps >= 0):
		return fmt.Errorf("%w: embeddings LayerNorm epsilon %v; want >= 0", ErrBadWeights, w.Norm.Eps)
	}
	return nil
}

// clone returns a deep copy.
func (w *EmbeddingWeights[F]) clone() EmbeddingWeights[F] {
	return EmbeddingWeights[F]{Word: slices.Clone(w.Word), Position: slices.Clone(w.Position), TokenType: slices.Clone(w.TokenType),
		Norm:         LayerNorm[F]{Gamma: slices.Clone(w.Norm.Gamma), Beta: slices.Clone(w.Norm.Beta), Eps: w.Norm.Eps},
		PadPositions: w.PadPositions, PaddingIdx: w.PaddingIdx}
}

// Embeddings is BERT's embedding layer with its gradients and the
// activations of the last Forward. It is not safe for concurrent use.
type Embeddings[F Float] struct {
	// W are the tables (used in place, not copied); G their gradients, of
	// the same shapes.
	W, G EmbeddingWeights[F]

	c int

	// Forward cache, packed: n tokens.
	rows       Rows
	ids, types []int // (n) ids; (n) type ids
	pos        []int // (n) positions
	xhat       []F   // (n,C)
	rstd       []F   // (n)
	y, dy      []F   // (n,C)
	done       bool
}

// NewEmbeddings returns an embedding layer on the tables w (used in place);
// its gradients start at zero. Tables whose shapes disagree give an error
// wrapping ErrBadWeights.
func NewEmbeddings[F Float](w EmbeddingWeights[F]) (*Embeddings[F], error) {
	if err := w.check(); err != nil {
		return nil, err
	}
	c := w.Hidden()
	g := EmbeddingWeights[F]{
		Word: make([]F, len(w.Word)), Position: make([]F, len(w.Position)),
		Norm: LayerNorm[F]{Gamma: make([]F, c), Beta: make([]F, c), Eps: w.Norm.Eps}, PadPositions: w.PadPositions, PaddingIdx: w.PaddingIdx,
	}
	if w.TokenType != nil {
		g.TokenType = make([]F, len(w.TokenType))
	}
	return &Embeddings[F]{W: w, c: c, G: g}, nil
}

// Params returns the tables and the LayerNorm with their gradients, named
// as HuggingFace's BertEmbeddings parameters (no token_type_embeddings
// without a TokenType table).
func (e *Embeddings[F]) Params() []Param[F] {
	p := []Param[F]{
		{"word_embeddings.weight", e.W.Word, e.G.Word},
		{"position_embeddings.weight", e.W.Position, e.G.Position},
		{"token_type_embeddings.weight", e.W.TokenType, e.G.TokenType},
		{"LayerNorm.weight", e.W.Norm.Gamma, e.G.Norm.Gamma},
		{"LayerNorm.bias", e.W.Norm.Beta, e.G.Norm.Beta},
	}
	if e.W.TokenType == nil {
		p = slices.Delete(p, 2, 3)
	}
	return p
}

// ZeroGrad sets every gradient to zero.
func (e *Embeddings[F]) ZeroGrad() {
	for _, p := range e.Params() {
		clear(p.Grad)
	}
}

// CheckIDs returns an error wrapping ErrBadData if an id, or a sequence
// length, is out of the tables' range.
func (e *Embeddings[F]) CheckIDs(ids []int64, rows Rows) error {
	v, p := len(e.W.Word)/e.c, len(e.W.Position)/e.c
	if e.W.PadPositions { // rows 0..PaddingIdx are not positions of tokens
		p -= e.W.PaddingIdx + 1
	}
	for s, st := range rows.Start {
		if l := rows.Len[s]; l > p {
			return fmt.Errorf("%w: sequence %d has %d tokens; the position table has %d positions", ErrBadData, s, l, p)
		}
		for t := st; t < st+rows.Len[s]; t++ {
			if ids[t] < 0 || ids[t] >= int64(v) {
				return fmt.Errorf("%w: token %d has id %d; the vocabulary has %d", ErrBadData, t, ids[t], v)
			}
		}
	}
	return nil
}

// Forward writes into y (N,C) the embeddings of the tokens ids (N), laid out
// by rows (N = len(ids)), with token type ids types (nil: all 0; ignored
// without a TokenType table). Slots of y outside every sequence are set to
// zero. ids and types are not modified.
// It panics if an id, type or position is out of range (check user data with
// CheckIDs first) or if the lengths disagree.
func (e *Embeddings[F]) Forward(y []F, ids, types []int64, rows Rows) {
	c := e.c
	if len(y) != len(ids)*c || (types != nil && len(types) != len(ids)) {
		panic("lora: Embeddings.Forward: len(y) != len(ids)·C, or len(types) != len(ids)")
	}
	rows.check(len(ids))
	e.rows.Start = append(e.rows.Start[:0], rows.Start...)
	e.rows.Len = append(e.rows.Len[:0], rows.Len...)
	e.ids, e.types, e.pos = e.ids[:0], e.types[:0], e.pos[:0]
	for s, st := range rows.Start {
		p := 0 // RoBERTa: the count of non-pad tokens so far
		for t := range rows.Len[s] {
			id := int(ids[st+t])
			e.ids = append(e.ids, id)
			ty := 0
			if types != nil && e.W.TokenType != nil {
				ty = int(types[st+t])
			}
			e.types = append(e.types, ty)
			switch {
			case !e.W.PadPositions:
				e.pos = append(e.pos, t)
			case id == e.W.PaddingIdx:
				e.pos = append(e.pos, e.W.PaddingIdx)
			default:
				p++
				e.pos = append(e.pos, e.W.PaddingIdx+p)
			}
		}
	}
	n := len(e.ids)
	e.xhat, e.rstd, e.y = grow(e.xhat, n*c), grow(e.rstd, n), grow(e.y, n*c)
	z := e.xhat // summed in place, then normalised
	for t := range n {
		zt := z[t*c : (t+1)*c]
		w := e.W.Word[e.ids[t]*c : (e.ids[t]+1)*c]
		p := e.W.Position[e.pos[t]*c : (e.pos[t]+1)*c]
		if e.W.TokenType == nil {
			for j := range zt {
				zt[j] = w[j] + p[j]
			}
			continue
		}
		ty := e.W.TokenType[e.types[t]*c : (e.types[t]+1)*c]
		for j := range zt {
			zt[j] = w[j] + ty[j] + p[j] // the order of BertEmbeddings' additions
		}
	}
	layerNormForward(e.y, e.xhat, e.rstd, z, e.W.Norm.Gamma, e.W.Norm.Beta, n, c, e.W.Norm.Eps)
	clear(y)
	at := 0
	for s, st := range rows.Start {
		l := rows.Len[s]
		copy(y[st*c:(st+l)*c], e.y[at*c:])
		at += l
	}
	e.done = true
}

// Backward accumulates (+=) into G the gradients of a loss whose gradient
// with respect to the last Forward's output is dy (laid out as that output,
// with the same rows; padding slots are ignored). dy is not modified. It
// panics if no Forward came before or the rows differ.
func (e *Embeddings[F]) Backward(dy []F, rows Rows) {
	c := e.c
	if !e.done {
		panic("lora: Embeddings.Backward without Forward")
	}
	if !rows.equal(e.rows) || len(dy)%c != 0 {
		panic("lora: Embeddings.Backward: rows differ from the last Forward's")
	}
	n := len(e.ids)
	e.dy = grow(e.dy, n*c)
	at := 0
	for s, st := range rows.Start {
		l := rows.Len[s]
		copy(e.dy[at*c:(at+l)*c], dy[st*c:(st+l)*c])
		at += l
	}
	dz := e.dy // in place
	layerNormBackward(dz, e.G.Norm.Gamma, e.G.Norm.Beta, e.dy, e.xhat, e.rstd, e.W.Norm.Gamma, n, c)
	for t := range n {
		d := dz[t*c : (t+1)*c]
		addRow(e.G.Word[e.ids[t]*c:(e.ids[t]+1)*c], d)
		addRow(e.G.Position[e.pos[t]*c:(e.pos[t]+1)*c], d)
		if e.G.TokenType != nil {
			addRow(e.G.TokenType[e.types[t]*c:(e.types[t]+1)*c], d)
		}
	}
}

// addRow adds d to the table row g (g += d); d is not modified.
func addRow[F Float](g, d []F) {
	for j, v := range d {
		g[j] += v
	}
}
