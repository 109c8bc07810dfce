package head

import (
	"math"
	"testing"
)

// TestAllFinite puts each edge value at every position of slices of several lengths
// (the unrolled loop and its tail) among finite values.
func TestAllFinite(t *testing.T) {
	finite := []float32{0, float32(math.Copysign(0, -1)), 1, -1, math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.Float32frombits(0x007fffff)}
	nonFinite := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00000), math.Float32frombits(0xffffffff)}
	for n := 1; n <= 9; n++ {
		for pos := range n {
			for _, v := range finite {
				x := make([]float32, n)
				for i := range x {
					x[i] = finite[i%len(finite)]
				}
				x[pos] = v
				if !allFinite(x) {
					t.Fatalf("allFinite(%v) = false with %v at %d", x, v, pos)
				}
			}
			for _, v := range nonFinite {
				x := make([]float32, n)
				x[pos] = v
				if allFinite(x) {
					t.Fatalf("allFinite = true with %v (bits %#x) at %d of %d", v, math.Float32bits(v), pos, n)
				}
			}
		}
	}
	if !allFinite(nil) {
		t.Fatal("allFinite(nil) = false")
	}
}
