package features

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// handTol bounds the error of hand-computed pooling values: they are exact in float32
// except for one division (mean) or one rounding of the norm (normalize).
const handTol = 1e-6

func TestPoolHand(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name   string
		hidden []float32 // (T,C), C = 2
		mask   []int64
		want   map[Pooling][]float32
	}{
		{
			name:   "right padding ignored",
			hidden: []float32{1, 2, 3, -4, 100, -100},
			mask:   []int64{1, 1, 0},
			want: map[Pooling][]float32{
				PoolMean: {2, -1}, PoolCLS: {1, 2}, PoolMax: {3, 2}, PoolLast: {3, -4},
			},
		},
		{
			name:   "NaN and Inf in padding do not leak",
			hidden: []float32{1, 2, 5, 6, nan, float32(math.Inf(1))},
			mask:   []int64{1, 1, 0},
			want: map[Pooling][]float32{
				PoolMean: {3, 4}, PoolCLS: {1, 2}, PoolMax: {5, 6}, PoolLast: {5, 6},
			},
		},
		{
			name:   "no padding",
			hidden: []float32{1, 0, 0, 1, 2, 2},
			mask:   []int64{1, 1, 1},
			want: map[Pooling][]float32{
				PoolMean: {1, 1}, PoolCLS: {1, 0}, PoolMax: {2, 2}, PoolLast: {2, 2},
			},
		},
		{
			name:   "left padding",
			hidden: []float32{9, 9, 1, -2, 3, -1},
			mask:   []int64{0, 1, 1},
			want: map[Pooling][]float32{
				PoolMean: {2, -1.5}, PoolCLS: {9, 9}, PoolMax: {3, -1}, PoolLast: {3, -1},
			},
		},
		{
			name:   "all padding (sentence-transformers edge cases)",
			hidden: []float32{1, 2, 3, 4},
			mask:   []int64{0, 0},
			want: map[Pooling][]float32{
				PoolMean: {0, 0}, PoolCLS: {1, 2}, PoolMax: {-1e9, -1e9}, PoolLast: {1, 2},
			},
		},
		{
			name:   "max below the padding fill stays when nothing is padded",
			hidden: []float32{-2e9, -3e9},
			mask:   []int64{1},
			want:   map[Pooling][]float32{PoolMax: {-2e9, -3e9}, PoolMean: {-2e9, -3e9}},
		},
		{
			name:   "max below the padding fill is clipped when a position is padded",
			hidden: []float32{-2e9, -3e9, 0, 0},
			mask:   []int64{1, 0},
			want:   map[Pooling][]float32{PoolMax: {-1e9, -1e9}},
		},
		{
			name:   "mean over three tokens",
			hidden: []float32{1, 1, 1, 2, 1, 4, 7, 7},
			mask:   []int64{1, 1, 1, 0},
			want:   map[Pooling][]float32{PoolMean: {1, 7.0 / 3}},
		},
	} {
		for p, want := range tc.want {
			t.Run(tc.name+"/"+p.String(), func(t *testing.T) {
				hidden, mask := slices.Clone(tc.hidden), slices.Clone(tc.mask)
				T := len(tc.mask)
				dst := []float32{-7, -7}
				Pool(dst, hidden, mask, T, 2, p)
				if d := testutil.MaxAbsDiff(dst, want); !(d <= handTol) {
					t.Errorf("got %v; want %v", dst, want)
				}
				if !slices.Equal(mask, tc.mask) || testutil.MaxAbsDiff(hidden, tc.hidden) != 0 && !hasNaN(tc.hidden) {
					t.Error("inputs modified")
				}
			})
		}
	}
}

func hasNaN(v []float32) bool {
	return slices.ContainsFunc(v, func(x float32) bool { return x != x })
}

func TestNormalize(t *testing.T) {
	v := []float32{3, 4}
	Normalize(v)
	if d := testutil.MaxAbsDiff(v, []float32{0.6, 0.8}); !(d <= handTol) {
		t.Errorf("Normalize([3 4]) = %v", v)
	}
	z := []float32{0, 0, 0}
	Normalize(z)
	if !slices.Equal(z, []float32{0, 0, 0}) {
		t.Errorf("Normalize(0) = %v; want zeros", z)
	}
	// Tiny vectors: the norm is clamped to 1e-12, as in torch.
	tiny := []float32{1e-13, 0}
	Normalize(tiny)
	if d := testutil.MaxAbsDiff(tiny, []float32{0.1, 0}); !(d <= handTol) {
		t.Errorf("Normalize([1e-13 0]) = %v; want [0.1 0]", tiny)
	}
	rows := []float32{3, 4, 0, 2}
	NormalizeRows(rows, 2)
	if d := testutil.MaxAbsDiff(rows, []float32{0.6, 0.8, 0, 1}); !(d <= handTol) {
		t.Errorf("NormalizeRows = %v", rows)
	}
}

func TestParsePooling(t *testing.T) {
	for in, want := range map[string]Pooling{"": PoolMean, "mean": PoolMean, "CLS": PoolCLS, " max ": PoolMax, "last": PoolLast} {
		if got, err := ParsePooling(in); err != nil || got != want {
			t.Errorf("ParsePooling(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	_, err := ParsePooling("avg")
	if !errors.Is(err, ErrUnknownPooling) || err.Error() != `pooling "avg" unknown; want one of mean, cls, max, last` {
		t.Errorf("ParsePooling(avg): %v", err)
	}
	var p Pooling
	if err := p.UnmarshalText([]byte("max")); err != nil || p != PoolMax {
		t.Errorf("UnmarshalText(max) = %v, %v", p, err)
	}
	if b, err := PoolLast.MarshalText(); err != nil || string(b) != "last" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}
	if _, err := Pooling(9).MarshalText(); !errors.Is(err, ErrUnknownPooling) {
		t.Errorf("MarshalText(9): %v", err)
	}
}

func TestPoolLayers(t *testing.T) {
	// B=2, T=2, C=1, two layers.
	l0 := []float32{1, 3 /* row 1 */, 10, 99}
	l1 := []float32{-1, -3, -10, 99}
	mask := []int64{1, 1, 1, 0}
	dst := make([]float32, 4)
	PoolLayers(dst, [][]float32{l0, l1}, mask, 2, 2, 1, PoolMean)
	want := []float32{2, -2, 10, -10}
	if !slices.Equal(dst, want) {
		t.Errorf("PoolLayers = %v; want %v", dst, want)
	}
	one := make([]float32, 2)
	PoolBatch(one, l1, mask, 2, 2, 1, PoolMax)
	if !slices.Equal(one, []float32{-1, -10}) {
		t.Errorf("PoolBatch max = %v", one)
	}
}

// Tolerances against the numpy reference. Pool performs the reference's float32
// operations in the same order (numpy sums over the token axis sequentially, as it is
// not the contiguous axis), so poolings agree to the bit. Normalize accumulates the norm
// in float64 where numpy's linalg.norm works in float32: a few ulp of a unit vector's
// elements, far below 1e-6.
const (
	poolParityTol = 0
	normParityTol = 1e-6
)

// TestPoolParity compares every pooling, and Normalize after mean, with numpy run by
// scripts/ref_pooling.py on random hidden states with random right padding.
func TestPoolParity(t *testing.T) {
	const B, T, C = 6, 37, 384
	rng := rand.New(rand.NewPCG(7, 8))
	hidden := make([]float32, B*T*C)
	for i := range hidden {
		hidden[i] = float32(rng.NormFloat64())
	}
	mask := make([]int64, B*T)
	lengths := []int{T, 1, 2, 17, 36, 0}
	for b, n := range lengths {
		for t := range n {
			mask[b*T+t] = 1
		}
	}
	dir := t.TempDir()
	writeF32(t, filepath.Join(dir, "hidden.f32"), hidden)
	writeI64(t, filepath.Join(dir, "mask.i64"), mask)
	runScript(t, "ref_pooling.py", dir, fmt.Sprint(B), fmt.Sprint(T), fmt.Sprint(C))

	got := make([]float32, B*C)
	for _, p := range []Pooling{PoolMean, PoolCLS, PoolMax, PoolLast} {
		PoolBatch(got, hidden, mask, B, T, C, p)
		want := readF32(t, filepath.Join(dir, p.String()+".f32"))
		d := testutil.MaxAbsDiff(got, want)
		if !(d <= poolParityTol) {
			t.Errorf("%v: max |Go - numpy| = %g > %g", p, d, float64(poolParityTol))
		}
		t.Logf("%v: max |Go - numpy| = %g", p, d)
	}
	PoolBatch(got, hidden, mask, B, T, C, PoolMean)
	NormalizeRows(got, C)
	want := readF32(t, filepath.Join(dir, "mean_norm.f32"))
	if d := testutil.MaxAbsDiff(got, want); !(d <= normParityTol) {
		t.Errorf("normalized mean: max |Go - numpy| = %g > %g", d, normParityTol)
	} else {
		t.Logf("normalized mean: max |Go - numpy| = %g", d)
	}
}

// TestPoolPaddingInvariance: a row's pooled vector does not change with extra padding.
func TestPoolPaddingInvariance(t *testing.T) {
	const C = 16
	rng := rand.New(rand.NewPCG(1, 1))
	row := make([]float32, 5*C)
	for i := range row {
		row[i] = float32(rng.NormFloat64())
	}
	for _, p := range []Pooling{PoolMean, PoolCLS, PoolMax, PoolLast} {
		ref := make([]float32, C)
		Pool(ref, row, []int64{1, 1, 1, 1, 1}, 5, C, p)
		padded := append(slices.Clone(row), make([]float32, 7*C)...)
		for i := 5 * C; i < len(padded); i++ {
			padded[i] = float32(rng.NormFloat64()) * 100
		}
		mask := append([]int64{1, 1, 1, 1, 1}, make([]int64, 7)...)
		got := make([]float32, C)
		Pool(got, padded, mask, 12, C, p)
		if !slices.Equal(got, ref) {
			t.Errorf("%v: pooled vector changed with padding", p)
		}
	}
}

func BenchmarkPool(b *testing.B) {
	const C = 384
	for _, T := range []int{32, 128, 512} {
		rng := rand.New(rand.NewPCG(3, 4))
		hidden := make([]float32, T*C)
		for i := range hidden {
			hidden[i] = float32(rng.NormFloat64())
		}
		mask := make([]int64, T)
		for t := range T * 3 / 4 {
			mask[t] = 1
		}
		dst := make([]float32, C)
		for _, p := range []Pooling{PoolMean, PoolMax, PoolCLS} {
			b.Run(fmt.Sprintf("%v/T=%d", p, T), func(b *testing.B) {
				b.SetBytes(int64(4 * T * C))
				for b.Loop() {
					Pool(dst, hidden, mask, T, C, p)
				}
			})
		}
	}
}

func ExampleParsePooling() {
	p, err := ParsePooling("avg")
	fmt.Println(p, err)
	p, _ = ParsePooling("CLS")
	fmt.Println(p)
	// Output:
	// mean pooling "avg" unknown; want one of mean, cls, max, last
	// cls
}
