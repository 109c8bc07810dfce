package testutil

import (
	"math"
	"testing"
)

// TestNaNFails: the comparisons fail on NaN and on length mismatches.
func TestNaNFails(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		a, b []float32
		want float64
	}{
		{[]float32{1, 2}, []float32{1, 2.5}, 0.5},
		{nil, nil, 0},
		{[]float32{1, nan}, []float32{1, 2}, math.Inf(1)},
		{[]float32{nan}, []float32{nan}, math.Inf(1)},
		{[]float32{1}, []float32{1, 2}, math.Inf(1)},
	} {
		if got := MaxAbsDiff(tc.a, tc.b); got != tc.want {
			t.Errorf("MaxAbsDiff(%v, %v) = %v; want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if got := MaxAbsDiff([]float64{1, math.Inf(1)}, []float64{1, math.Inf(1)}); !math.IsInf(got, 1) {
		t.Errorf("MaxAbsDiff of equal infinities = %v; want +Inf (Inf − Inf is NaN)", got)
	}
	if !Within(1, 1.0005, 1e-3) || Within(1, 1.1, 1e-3) || Within(math.NaN(), 1, 1e-3) || Within(1, math.NaN(), math.Inf(1)) {
		t.Error("Within: wrong answer for a near value, a far value or a NaN")
	}
}
