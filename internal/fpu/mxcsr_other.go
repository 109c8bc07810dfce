//go:build !amd64

package fpu

const flushBits = 0

func getControl() uint32  { return 0 }
func setControl(v uint32) {}
