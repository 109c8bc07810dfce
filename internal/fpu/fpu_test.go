package fpu

import (
	"math"
	"runtime"
	"testing"
)

// tiny returns x * y computed at run time (the compiler cannot fold it).
//
//go:noinline
func tiny(x, y float32) float32 { return x * y }

// TestFlush: between Flush and Restore a product below float32's smallest normal
// number is 0; before and after, it is the subnormal IEEE 754 gives; the control word
// is back as it was.
func TestFlush(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("flushing is implemented on amd64 only")
	}
	small := float32(math.SmallestNonzeroFloat32) * (1 << 20) // subnormal
	if got := tiny(small, 0.5); got == 0 {
		t.Fatalf("without Flush %g * 0.5 = 0; want a subnormal", small)
	}
	before := Control()
	s := Flush()
	flushed := tiny(small, 0.5)
	Restore(s)
	if flushed != 0 {
		t.Errorf("with Flush %g * 0.5 = %g; want 0", small, flushed)
	}
	if got := tiny(small, 0.5); got == 0 {
		t.Errorf("after Restore %g * 0.5 = 0; want a subnormal", small)
	}
	if after := Control(); after != before {
		t.Errorf("control word %#x after Restore, %#x before", after, before)
	}
}
