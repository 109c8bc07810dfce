package memstat

import (
	"testing"
	"time"
)

// TestProbeSeesAllocation checks that a 64 MiB buffer touched between Start and Stop
// shows in the peak, whichever kind of measurement the machine allows, and that the
// peak is not below the start.
func TestProbeSeesAllocation(t *testing.T) {
	const size = 64 << 20
	p := Start()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	if p.kind == GoHeap {
		// The sampler runs every millisecond: give it a sample with the buffer live.
		for range 20 {
			buf[len(buf)-1]++
			time.Sleep(2 * time.Millisecond)
		}
	}
	peak, start, kind := p.Stop()
	sink = buf
	if peak < start {
		t.Fatalf("%s: peak %d below start %d", kind, peak, start)
	}
	// Other allocations may come and go; the buffer alone is 64 MiB, so at least
	// 7/8 of it must show.
	if got := peak - start; got < size/8*7 {
		t.Fatalf("%s: peak - start = %d bytes with a %d-byte buffer touched", kind, got, size)
	}
}

var sink []byte
