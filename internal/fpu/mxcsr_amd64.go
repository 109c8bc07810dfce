package fpu

// flushBits are MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
const flushBits = 1<<15 | 1<<6

func getControl() uint32
func setControl(v uint32)
