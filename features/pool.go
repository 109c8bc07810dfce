package features

import (
	"math"
	"strconv"
	"strings"
)

// Pooling is the way a row's token vectors become one vector. The zero value is
// PoolMean, the pooling of sentence-transformers models such as all-MiniLM-L6-v2.
type Pooling int

const (
	// PoolMean averages the vectors of the unpadded tokens.
	PoolMean Pooling = iota
	// PoolCLS takes the first token's vector ([CLS] for BERT models).
	PoolCLS
	// PoolMax takes the element-wise maximum over the unpadded tokens.
	PoolMax
	// PoolLast takes the last unpadded token's vector (decoder-style models).
	PoolLast
)

var poolingNames = [...]string{PoolMean: "mean", PoolCLS: "cls", PoolMax: "max", PoolLast: "last"}

// String returns the pooling's name: mean, cls, max or last.
func (p Pooling) String() string {
	if p < 0 || int(p) >= len(poolingNames) {
		return "Pooling(" + strconv.Itoa(int(p)) + ")"
	}
	return poolingNames[p]
}

// ParsePooling parses a pooling name (mean, cls, max, last; any case). The empty string
// is mean, the default.
func ParsePooling(s string) (Pooling, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return PoolMean, nil
	}
	for p, name := range poolingNames {
		if t == name {
			return Pooling(p), nil
		}
	}
	return PoolMean, errorf(ErrUnknownPooling, "pooling %q unknown; want one of %s", s, strings.Join(poolingNames[:], ", "))
}

// MarshalText implements encoding.TextMarshaler (the pooling's name).
func (p Pooling) MarshalText() ([]byte, error) {
	if p < 0 || int(p) >= len(poolingNames) {
		return nil, errorf(ErrUnknownPooling, "pooling %d unknown; want one of %s", int(p), strings.Join(poolingNames[:], ", "))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, as ParsePooling.
func (p *Pooling) UnmarshalText(b []byte) error {
	q, err := ParsePooling(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// maxPoolFill is what sentence-transformers writes into padded positions before it takes
// the maximum over tokens (Pooling.forward, pooling_mode_max_tokens).
const maxPoolFill = -1e9

// Pool pools one row's hidden states into dst.
//
// hidden is the row's (T,C) row-major float32 hidden states, mask its (T) attention mask
// (1 on tokens, 0 on padding; any nonzero value counts as 1), dst has length C. hidden
// and mask are not modified. With m_t the mask and h_t the token vectors, matching
// sentence_transformers.models.Pooling (v3):
//
//	mean:  dst = (Σ_t m_t·h_t) / max(Σ_t m_t, 1e-9)   (zeros when every position is padding)
//	cls:   dst = h_0                                  (whatever the mask)
//	max:   dst_c = max_t (m_t ? h_tc : -1e9)
//	last:  dst = h_k, k = the last t with m_t ≠ 0     (0 when there is none)
//
// The mean sum is accumulated in float32, token by token in position order, then divided
// by the float32 token count: the same operations, in the same order, as numpy's
// (h*m).sum(1) / np.clip(m.sum(1), 1e-9, None) on float32 arrays, so the result matches
// that reference to the last bit (scripts/ref_pooling.py checks it). Padded positions are
// skipped rather than multiplied by 0, so a NaN or Inf in padding does not leak into the
// result (torch would give NaN). last handles left and right padding alike.
//
// Pool panics if the lengths of hidden, mask and dst do not match T and C.
func Pool(dst, hidden []float32, mask []int64, T, C int, p Pooling) {
	if len(dst) != C || len(hidden) != T*C || len(mask) != T {
		panic("features: Pool: shape mismatch")
	}
	switch p {
	case PoolMean:
		clear(dst)
		var n float32
		for t, m := range mask {
			if m == 0 {
				continue
			}
			n++
			h := hidden[t*C : (t+1)*C]
			for c, v := range h {
				dst[c] += v
			}
		}
		n = max(n, 1e-9)
		for c := range dst {
			dst[c] /= n
		}
	case PoolCLS:
		copy(dst, hidden[:C])
	case PoolMax:
		padded := false
		for c := range dst {
			dst[c] = float32(math.Inf(-1))
		}
		for t, m := range mask {
			if m == 0 {
				padded = true
				continue
			}
			h := hidden[t*C : (t+1)*C]
			for c, v := range h {
				if v > dst[c] || v != v { // NaN propagates, as in torch.max
					dst[c] = v
				}
			}
		}
		if padded {
			for c, v := range dst {
				if v < maxPoolFill {
					dst[c] = maxPoolFill
				}
			}
		}
	case PoolLast:
		k := 0
		for t := T - 1; t >= 0; t-- {
			if mask[t] != 0 {
				k = t
				break
			}
		}
		copy(dst, hidden[k*C:(k+1)*C])
	default:
		panic("features: Pool: unknown pooling " + p.String())
	}
}

// PoolBatch pools each row of a batch: hidden is (B,T,C), mask (B,T), dst (B,C).
func PoolBatch(dst, hidden []float32, mask []int64, B, T, C int, p Pooling) {
	if len(dst) != B*C || len(hidden) != B*T*C || len(mask) != B*T {
		panic("features: PoolBatch: shape mismatch")
	}
	for b := range B {
		Pool(dst[b*C:(b+1)*C], hidden[b*T*C:(b+1)*T*C], mask[b*T:(b+1)*T], T, C, p)
	}
}

// PoolLayers pools several layers' hidden states of a batch and concatenates them per
// row, in the order the layers are given: layers[l] is layer l's (B,T,C) hidden states,
// mask is (B,T) and dst is (B, L·C), row b being
//
//	[pool(layers[0][b]), pool(layers[1][b]), ..., pool(layers[L-1][b])]
//
// Normalisation, if wanted, is a separate step over the whole concatenated row.
func PoolLayers(dst []float32, layers [][]float32, mask []int64, B, T, C int, p Pooling) {
	L := len(layers)
	if len(dst) != B*L*C || len(mask) != B*T {
		panic("features: PoolLayers: shape mismatch")
	}
	for l, hidden := range layers {
		if len(hidden) != B*T*C {
			panic("features: PoolLayers: shape mismatch")
		}
		for b := range B {
			off := b*L*C + l*C
			Pool(dst[off:off+C], hidden[b*T*C:(b+1)*T*C], mask[b*T:(b+1)*T], T, C, p)
		}
	}
}

// normEps is torch.nn.functional.normalize's default eps.
const normEps = 1e-12

// Normalize scales v in place to unit L2 norm, as torch.nn.functional.normalize(v, p=2,
// eps=1e-12) does (sentence-transformers' Normalize module):
//
//	v ← v / max(‖v‖₂, 1e-12)
//
// The norm is accumulated in float64 and rounded to float32 once; each element is then
// divided (not multiplied by a reciprocal) by it, as torch does. A zero vector stays zero.
func Normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	n := max(float32(math.Sqrt(ss)), normEps)
	for i := range v {
		v[i] /= n
	}
}

// NormalizeRows applies Normalize to each row of v, a row-major (N,D) matrix.
func NormalizeRows(v []float32, d int) {
	if d <= 0 || len(v)%d != 0 {
		panic("features: NormalizeRows: length not a multiple of d")
	}
	for i := 0; i < len(v); i += d {
		Normalize(v[i : i+d])
	}
}
