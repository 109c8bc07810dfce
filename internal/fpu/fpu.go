// Package fpu sets the calling thread's floating-point control for a stretch of C code.
//
// onnxruntime's CPU kernels slow down by an order of magnitude on subnormal floats: a
// masked attention score (the mask adds float32's lowest value) goes through the
// kernel's exp as a subnormal, and every later operation on it takes a microcode assist
// on x86. A batch whose rows attend to few of its positions (padding, or several texts
// packed in one row) spends most of its softmax there (BENCHMARKS.md, serving design
// choices). Flushing subnormals to zero (the MXCSR's FTZ and DAZ bits) removes that cost
// and changes results only below float32's smallest normal number (1.2e-38).
//
// Go itself neither reads nor restores the MXCSR, so a flag set on a thread stays for
// whatever goroutine runs there next: Flush locks the goroutine to its thread, and the
// returned state must be passed to Restore by the same goroutine, which unlocks it.
package fpu

import "runtime"

// State is a thread's floating-point control word, as Flush found it.
type State struct{ mxcsr uint32 }

// Flush locks the calling goroutine to its OS thread and sets the thread to flush
// subnormal results and inputs to zero. Pass the result to Restore on the same
// goroutine. Where the architecture has no such control (anything but amd64) it only
// locks the thread.
func Flush() State {
	runtime.LockOSThread()
	old := getControl()
	setControl(old | flushBits)
	return State{old}
}

// Restore puts back the control word Flush found and unlocks the goroutine's thread.
func Restore(s State) {
	setControl(s.mxcsr)
	runtime.UnlockOSThread()
}

// Control returns the calling thread's control word (MXCSR on amd64, else 0).
func Control() uint32 { return getControl() }
