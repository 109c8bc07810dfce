//go:build !unix

package main

import "time"

// processCPU is not measured here: fit-head reports "cpu_seconds" 0.
func processCPU() time.Duration { return 0 }
