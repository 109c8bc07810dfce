//go:build unix

package headstart

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) the process has used so far, or 0
// where getrusage fails. FitHead reports the fit's share (FitHeadSummary.FitCPU): on a
// machine shared with other work it measures the fit better than the wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
