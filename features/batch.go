package features

import (
	"cmp"
	"slices"
)

// Buckets groups a window of rows into batches of at most batchSize rows of similar
// length, so that padding each batch to its own longest row wastes little compute.
// lengths[i] is the token count of row i of the window; each batch holds indices into
// the window.
//
// Rows are sorted by length, longest first (as sentence-transformers' encode does, so
// that the largest batch, and any out-of-memory error, comes first), ties keeping window
// order; the sorted order is cut into batches. The result depends only on lengths and
// batchSize. The concatenated batches are a permutation of 0..len(lengths)-1: to restore
// the window's order, write the output of row j of a batch to position batch[j]:
//
//	for _, batch := range features.Buckets(lengths, 32) {
//		// ... run the model on rows batch[0], batch[1], ...
//		for j, i := range batch {
//			copy(out[i*D:(i+1)*D], pooled[j*D:(j+1)*D])
//		}
//	}
//
// The batches share one backing array. Buckets panics if batchSize < 1.
func Buckets(lengths []int, batchSize int) [][]int {
	if batchSize < 1 {
		panic("features: Buckets: batch size < 1")
	}
	order := make([]int, len(lengths))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(lengths[b], lengths[a]) })
	batches := make([][]int, 0, (len(order)+batchSize-1)/batchSize)
	for start := 0; start < len(order); start += batchSize {
		end := min(start+batchSize, len(order))
		batches = append(batches, order[start:end:end])
	}
	return batches
}

// PaddingEfficiency returns the fraction of computed token positions that hold real
// tokens when each batch is padded to its own longest row:
//
//	sum_i lengths[i] / sum_b len(b)·max_{i in b} lengths[i]
//
// It is 1 for no rows or no tokens.
func PaddingEfficiency(lengths []int, batches [][]int) float64 {
	var real, computed int
	for _, b := range batches {
		longest := 0
		for _, i := range b {
			real += lengths[i]
			longest = max(longest, lengths[i])
		}
		computed += len(b) * longest
	}
	if computed == 0 {
		return 1
	}
	return float64(real) / float64(computed)
}

// Batch holds the model inputs of one batch as flat row-major (B,T) int64 tensors, the
// layout the encoder's input_ids, attention_mask and token_type_ids take. Pad fills it;
// its slices are reused from one call to the next, so the data must be consumed (or
// copied) before the next Pad.
type Batch struct {
	B, T          int
	InputIDs      []int64 // (B,T): token ids, padID after each row's end
	AttentionMask []int64 // (B,T): 1 on tokens, 0 on padding
	TokenTypeIDs  []int64 // (B,T): segment ids, 0 on padding
}

// Pad fills dst with rows ids[0..B-1] right-padded to the longest row T: positions past
// a row's end get padID, attention mask 0 and token type 0. typeIDs gives each row's
// token type ids, the same lengths as ids; nil means all zeros. dst's slices are grown
// only when too small; ids and typeIDs are not modified. Pad panics if typeIDs does not
// match ids in shape.
func Pad[I ~int | ~int32 | ~int64 | ~uint32](dst *Batch, ids, typeIDs [][]I, padID int64) {
	if typeIDs != nil && len(typeIDs) != len(ids) {
		panic("features: Pad: typeIDs and ids have different row counts")
	}
	B, T := len(ids), 0
	for _, row := range ids {
		T = max(T, len(row))
	}
	n := B * T
	dst.B, dst.T = B, T
	dst.InputIDs = resize(dst.InputIDs, n)
	dst.AttentionMask = resize(dst.AttentionMask, n)
	dst.TokenTypeIDs = resize(dst.TokenTypeIDs, n)
	for b, row := range ids {
		in := dst.InputIDs[b*T : (b+1)*T]
		mask := dst.AttentionMask[b*T : (b+1)*T]
		types := dst.TokenTypeIDs[b*T : (b+1)*T]
		for t, id := range row {
			in[t] = int64(id)
			mask[t] = 1
		}
		for t := len(row); t < T; t++ {
			in[t], mask[t] = padID, 0
		}
		if typeIDs == nil {
			clear(types)
			continue
		}
		if len(typeIDs[b]) != len(row) {
			panic("features: Pad: typeIDs row length differs from ids")
		}
		for t, id := range typeIDs[b] {
			types[t] = int64(id)
		}
		clear(types[len(row):])
	}
}

// resize returns s with length n, reusing its array when large enough.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
