//go:build !unix

package headstart

import "time"

// processCPU is not measured here: FitHeadSummary.FitCPU is 0.
func processCPU() time.Duration { return 0 }
