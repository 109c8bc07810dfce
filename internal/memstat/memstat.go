// Package memstat measures the peak memory of a stretch of work in this process: the
// peak resident set size where Linux lets it be reset (/proc/self/clear_refs, "5"
// resets VmHWM to the current RSS), otherwise the high-water mark of the Go heap,
// sampled.
package memstat

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

// Kind names what a Probe measured.
type Kind string

const (
	// RSS is the process's peak resident set size (Linux VmHWM, reset at Start).
	RSS Kind = "rss"
	// GoHeap is the largest Go heap (live and unswept objects) seen by sampling every
	// millisecond: it misses memory outside the Go heap and peaks shorter than that.
	GoHeap Kind = "go-heap"
)

// Probe measures from Start to Stop.
type Probe struct {
	kind  Kind
	start uint64 // bytes at Start
	stop  chan struct{}
	done  sync.WaitGroup
	peak  uint64 // GoHeap: the largest sample
}

// Start returns the unused memory to the operating system (a garbage collection, so
// that what earlier work left does not count), resets the peak and starts measuring.
func Start() *Probe {
	debug.FreeOSMemory()
	p := &Probe{stop: make(chan struct{})}
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err == nil {
		if rss, ok := status("VmRSS:"); ok {
			p.kind, p.start = RSS, rss
			return p
		}
	}
	p.kind, p.start = GoHeap, heap()
	p.peak = p.start
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.peak = max(p.peak, heap())
			}
		}
	}()
	return p
}

// Stop ends the measurement and returns the peak and the value at Start, in bytes,
// and what they measure.
func (p *Probe) Stop() (peak, start uint64, kind Kind) {
	if p.kind == RSS {
		hwm, ok := status("VmHWM:")
		if ok {
			return max(hwm, p.start), p.start, RSS
		}
		return p.start, p.start, RSS
	}
	close(p.stop)
	p.done.Wait()
	return max(p.peak, heap()), p.start, GoHeap
}

// status reads a "Name: N kB" line of /proc/self/status, in bytes.
func status(name string) (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		f := bytes.Fields(line[len(name):])
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		n, err := strconv.ParseUint(string(f[0]), 10, 64)
		return n << 10, err == nil
	}
	return 0, false
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

// heap returns the bytes of Go heap objects (live and not yet swept).
func heap() uint64 {
	s := make([]metrics.Sample, 1)
	copy(s, heapSample)
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	return s[0].Value.Uint64()
}
