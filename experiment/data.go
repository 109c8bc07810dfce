package experiment

import (
	"fmt"
	"slices"
	"strings"

	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/lora"
)

// Data holds the labelled features of one extraction: the training and test splits and
// optionally a validation split, whose columns are the pooled hidden states of Layers
// concatenated in that order, the same number of columns each. Use head.FromStore to
// make the data sets of feature stores. Data is not modified by this package.
type Data struct {
	// Layers are the hidden states of the column blocks, as negative indices from the
	// last block (see Strategy.Layers).
	Layers []int
	Train  head.Dataset
	Test   head.Dataset
	Valid  *head.Dataset // nil: the MLP holds out part of its training rows
	// Tokens holds the activation caches of the splits for the top-block strategies
	// (nil when none is asked for).
	Tokens *TokenData
}

// TokenData are the splits' activation caches, row for row the rows of the Data's
// splits, with their labels indexing Data.Train.Classes, and the pretrained weights of
// the blocks above the cut.
type TokenData struct {
	Blocks             []lora.Weights[float32]
	Heads              int
	Train, Test, Valid *lora.Examples
	// Embeddings are the pretrained embedding tables, for the strategies that train
	// them ("+emb"; the caches must then be cut below every block, holding the input
	// ids); nil when none does.
	Embeddings *lora.EmbeddingWeights[float32]
	// Normalize is the model card's normalisation of the sentence embeddings, which
	// SetFit's logistic regression fits on.
	Normalize bool

	// shallower holds the last TokenData made for fewer top blocks (Data.advanced).
	shallower *TokenData
}

// advanced returns the token data of the top k blocks, k at most len(Tokens.Blocks):
// the frozen blocks between run once over every split (lora.Advance), and the result is
// kept for the next cells of the same k (one depth at a time, to bound memory).
func (d *Data) advanced(k int) (*TokenData, error) {
	t := d.Tokens
	if k == len(t.Blocks) {
		return t, nil
	}
	if s := t.shallower; s != nil && len(s.Blocks) == k {
		return s, nil
	}
	t.shallower = nil
	frozen := t.Blocks[:len(t.Blocks)-k]
	out := &TokenData{Blocks: t.Blocks[len(t.Blocks)-k:], Heads: t.Heads, Normalize: t.Normalize}
	for _, x := range []struct {
		dst **lora.Examples
		src *lora.Examples
	}{{&out.Train, t.Train}, {&out.Test, t.Test}, {&out.Valid, t.Valid}} {
		if x.src == nil {
			continue
		}
		ex := *x.src
		ex.Hidden = make([]float32, len(x.src.Hidden))
		if err := lora.Advance(ex.Hidden, frozen, t.Heads, x.src, 0); err != nil {
			return nil, err
		}
		*x.dst = &ex
	}
	t.shallower = out
	return out, nil
}

// checkTop verifies, before any cell is computed, that the activation caches serve
// the top-block strategies: present, cut deep enough, with the input ids and the
// embedding weights where the embeddings train.
func (d *Data) checkTop(strategies []Strategy) error {
	for _, s := range strategies {
		if s.Top == nil {
			continue
		}
		t := d.Tokens
		switch {
		case t == nil:
			return fmt.Errorf("%w: strategy %s needs the activation caches (Data.Tokens)", ErrData, s.Name)
		case s.Top.TopK < 1:
			return fmt.Errorf("%w: strategy %s: top %d blocks; resolve MODE-all with ResolveBlocks", ErrBadGrid, s.Name, s.Top.TopK)
		case s.Top.TopK > len(t.Blocks):
			return fmt.Errorf("%w: strategy %s trains the top %d blocks; the activation caches are cut below the top %d (extract again with --cut-top %d or more)",
				ErrData, s.Name, s.Top.TopK, len(t.Blocks), s.Top.TopK)
		case s.Top.Embeddings && s.Top.TopK != len(t.Blocks):
			return fmt.Errorf("%w: strategy %s trains the embeddings: it needs every block trained from caches cut below them all; the caches hold %d blocks, the strategy trains %d",
				ErrData, s.Name, len(t.Blocks), s.Top.TopK)
		case s.Top.Embeddings && (t.Embeddings == nil || t.Train.IDs == nil || t.Test.IDs == nil):
			return fmt.Errorf("%w: strategy %s trains the embeddings: the caches must hold the input ids (cut below every block) and Data.Tokens.Embeddings the tables", ErrData, s.Name)
		}
	}
	return nil
}

// check verifies that the splits fit together and that the test and validation
// labels occur in the training data.
func (d *Data) check() error {
	if len(d.Layers) == 0 || d.Train.D%len(d.Layers) != 0 {
		return fmt.Errorf("%w: training features %s have %d columns, not a multiple of the %d layers %v", ErrData, d.Train.Name, d.Train.D, len(d.Layers), d.Layers)
	}
	if t := d.Tokens; t != nil {
		if t.Train == nil || t.Test == nil || t.Train.Len() != d.Train.N || t.Test.Len() != d.Test.N ||
			(d.Valid != nil && (t.Valid == nil || t.Valid.Len() != d.Valid.N)) {
			return fmt.Errorf("%w: the activation caches do not hold the splits' rows", ErrData)
		}
		if !slices.Equal(t.Train.Labels, d.Train.Labels) || !slices.Equal(t.Test.Labels, mapLabels(&d.Test, d.Train.Classes)) {
			return fmt.Errorf("%w: the activation caches' labels differ from the features'", ErrData)
		}
	}
	splits := []*head.Dataset{&d.Test}
	if d.Valid != nil {
		splits = append(splits, d.Valid)
	}
	for _, s := range splits {
		if s.D != d.Train.D {
			return fmt.Errorf("%w: features %s have %d columns; the training features %s have %d", ErrData, s.Name, s.D, d.Train.Name, d.Train.D)
		}
		if err := d.Train.Fingerprint.Compare(s.Fingerprint); err != nil {
			return fmt.Errorf("%w: features %s were extracted differently from %s: %w", ErrData, s.Name, d.Train.Name, err)
		}
		if err := UnseenLabels(d.Train.Classes, s.Classes, s.Name, d.Train.Name); err != nil {
			return err
		}
	}
	return nil
}

// UnseenLabels returns an error wrapping ErrUnseenLabel that lists the labels of have
// (of the data named name) missing from train (of the data named trainName), or nil.
func UnseenLabels(train, have []string, name, trainName string) error {
	var unseen []string
	for _, c := range have {
		if !slices.Contains(train, c) {
			unseen = append(unseen, fmt.Sprintf("%q", c))
		}
	}
	if len(unseen) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s has %d label(s) that the training data %s lacks: %s; a head cannot predict a class it was not trained on",
		ErrUnseenLabel, name, len(unseen), trainName, strings.Join(unseen, ", "))
}

// view returns ds restricted to the column blocks of layers (each one of d.Layers), in
// that order; ds itself when that is every block in order. The fingerprint's layers
// follow.
func (d *Data) view(ds *head.Dataset, layers []int) (head.Dataset, error) {
	if slices.Equal(layers, d.Layers) {
		return *ds, nil
	}
	block := ds.D / len(d.Layers)
	pos := make([]int, len(layers))
	for i, l := range layers {
		pos[i] = slices.Index(d.Layers, l)
		if pos[i] < 0 {
			return head.Dataset{}, fmt.Errorf("%w: layer %d is not among the extracted layers %v", ErrData, l, d.Layers)
		}
	}
	v := *ds
	v.D = block * len(layers)
	v.X = make([]float32, ds.N*v.D)
	for r := range ds.N {
		src := ds.X[r*ds.D : (r+1)*ds.D]
		dst := v.X[r*v.D : (r+1)*v.D]
		for i, p := range pos {
			copy(dst[i*block:(i+1)*block], src[p*block:(p+1)*block])
		}
	}
	fp := ds.Fingerprint
	if len(fp.Layers) == len(d.Layers) {
		fp.Layers = make([]int, len(pos))
		for i, p := range pos {
			fp.Layers[i] = ds.Fingerprint.Layers[p]
		}
	}
	if fp.Dim != 0 {
		fp.Dim = v.D
	}
	v.Fingerprint = fp
	return v, nil
}

// subset returns the rows of ds (copied), in the order given.
func subset(ds *head.Dataset, rows []int) head.Dataset {
	s := *ds
	s.N = len(rows)
	s.X = make([]float32, len(rows)*ds.D)
	s.Labels = make([]int, len(rows))
	if ds.RowIDs != nil {
		s.RowIDs = make([]int64, len(rows))
	}
	for r, i := range rows {
		copy(s.X[r*ds.D:(r+1)*ds.D], ds.X[i*ds.D:(i+1)*ds.D])
		s.Labels[r] = ds.Labels[i]
		if ds.RowIDs != nil {
			s.RowIDs[r] = ds.RowIDs[i]
		}
	}
	return s
}

// classCounts counts the rows of each class.
func classCounts(labels []int, classes int) []int {
	counts := make([]int, classes)
	for _, l := range labels {
		counts[l]++
	}
	return counts
}

// mapLabels returns ds's labels as indices into classes (-1 for a class not there).
func mapLabels(ds *head.Dataset, classes []string) []int {
	out := make([]int, len(ds.Labels))
	for i, l := range ds.Labels {
		out[i] = slices.Index(classes, ds.Classes[l])
	}
	return out
}

// subsetExamples returns the sequences rows of ex.
func subsetExamples(ex *lora.Examples, rows []int, c int) *lora.Examples {
	s := &lora.Examples{Offsets: make([]int64, 1, len(rows)+1), Labels: make([]int, len(rows))}
	for r, i := range rows {
		if ex.Hidden != nil {
			s.Hidden = append(s.Hidden, ex.Hidden[ex.Offsets[i]*int64(c):ex.Offsets[i+1]*int64(c)]...)
		}
		if ex.IDs != nil { // the embeddings train from them
			s.IDs = append(s.IDs, ex.IDs[ex.Offsets[i]:ex.Offsets[i+1]]...)
		}
		s.Offsets = append(s.Offsets, s.Offsets[r]+ex.Offsets[i+1]-ex.Offsets[i])
		s.Labels[r] = ex.Labels[i]
	}
	return s
}
