package lora

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The block's work outside the matrix products (the GELU's erf and exp, the
// per-sequence attention with its softmax) is split over goroutines, one per
// GOMAXPROCS, so that it does not become the serial part that the BLAS's own
// parallelism leaves. Each piece of work writes its own part of the output,
// so results do not depend on the number of goroutines or their order.

// parallelRange calls f(lo, hi) on consecutive chunks covering [0, n), at
// least grain long, on up to GOMAXPROCS goroutines, and waits for them.
func parallelRange(n, grain int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+grain-1)/grain)
	if workers <= 1 {
		f(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		hi := min(n, lo+chunk)
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// parallelItems calls f(i, worker) for every i in [0, n), handing the items
// out one at a time to up to GOMAXPROCS goroutines (worker in [0, workers)
// identifies the goroutine, for per-goroutine scratch; it is below
// maxWorkers()), and waits.
func parallelItems(n int, f func(i, worker int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			f(i, 0)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i, w)
			}
		})
	}
	wg.Wait()
}

// maxWorkers is the number of goroutines parallelItems may use.
func maxWorkers() int { return runtime.GOMAXPROCS(0) }
