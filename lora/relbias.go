package lora

import (
	"fmt"
	"math"
)

// RelativeBias is MPNet's relative position bias: one learned scalar per
// head and bucket of the signed distance between a query and a key,
// computed once by the encoder and added to the attention scores of every
// block (HuggingFace transformers' MPNetEncoder.compute_position_bias). For
// the tokens i (query) and j (key) of one sequence, at positions 0..L−1,
// head h scores
//
//	s_hij = q_hi·k_hj / √d + Table[bucket(j − i)·Heads + h]
//
// before the softmax. The bias is frozen: it has no gradient, and the
// scores' backward is that of the plain block (adding a constant leaves
// ∂s/∂q and ∂s/∂k as they are).
//
// The bucket of a relative position r = j − i (MPNetEncoder.
// relative_position_bucket, Raffel et al. 2020's T5 scheme, bidirectional)
// with B = Buckets/2, E = B/2 exact buckets and M = MaxDistance is
//
//	n      = −r
//	bucket = B·[n < 0] + |n|                                   if |n| < E
//	bucket = B·[n < 0] + min(B−1, E + ⌊log(|n|/E) / log(M/E) · (B−E)⌋)   otherwise
//
// evaluated in float32 as PyTorch (and onnxruntime on a torch.onnx export)
// evaluate it.
type RelativeBias[F Float] struct {
	// Table is relative_attention_bias.weight, (Buckets, Heads) row-major.
	Table []F
	// Buckets is relative_attention_num_buckets (32 in MPNet); MaxDistance
	// the distance from which all get the last bucket (128, a constant of
	// transformers' relative_position_bucket).
	Buckets, MaxDistance int
}

// DefaultMaxDistance is transformers' max_distance of MPNet's
// relative_position_bucket.
const DefaultMaxDistance = 128

// check checks the table against the head count.
func (r *RelativeBias[F]) check(heads int) error {
	if r.Buckets < 4 || r.Buckets%4 != 0 {
		return fmt.Errorf("%w: relative position bias of %d buckets; want a positive multiple of 4", ErrBadWeights, r.Buckets)
	}
	if r.MaxDistance <= r.Buckets/4 {
		return fmt.Errorf("%w: relative position bias max distance %d; want more than buckets/4 = %d", ErrBadWeights, r.MaxDistance, r.Buckets/4)
	}
	if len(r.Table) != r.Buckets*heads {
		return fmt.Errorf("%w: relative position bias table of %d values; want %d buckets × %d heads", ErrBadWeights, len(r.Table), r.Buckets, heads)
	}
	return nil
}

// RelativeBucket returns the bucket of the relative position rel = key −
// query among buckets buckets (see RelativeBias).
func RelativeBucket(rel, buckets, maxDistance int) int {
	half := buckets / 2
	ret := 0
	n := -rel
	if n < 0 {
		ret, n = half, -n
	}
	exact := half / 2
	if n < exact {
		return ret + n
	}
	// float32 throughout, as torch.log(n.float() / max_exact) / math.log(...) * ...
	v := float32(n) / float32(exact)
	l := float32(math.Log(float64(v)))
	q := l / float32(math.Log(float64(maxDistance)/float64(exact))) * float32(half-exact)
	return ret + min(half-1, exact+int(q))
}

// fill fills dst (H, 2L−1) with the bias of every head and relative
// position −(L−1)..L−1: dst[h·(2L−1) + r + L−1].
func (r *RelativeBias[F]) fill(dst []F, heads, l int) {
	w := 2*l - 1
	for k := range w {
		b := RelativeBucket(k-(l-1), r.Buckets, r.MaxDistance)
		for h := range heads {
			dst[h*w+k] = r.Table[b*heads+h]
		}
	}
}

// addRelBias adds one head's bias to the scores p (L,L) of one sequence;
// rel is that head's row of fill's output for some lmax ≥ L, 2·lmax−1
// values.
func addRelBias[F Float](p, rel []F, l, lmax int) {
	for i := range l {
		// Key j of query i has relative position j − i: rel[j − i + lmax − 1].
		row, src := p[i*l:(i+1)*l], rel[lmax-1-i:lmax-1-i+l]
		for j := range row {
			row[j] += src[j]
		}
	}
}
