//go:build !amd64

package head

const haveKernel = false

func kern6x8(k int, a, b, c *float64, ldc int) { panic("head: kern6x8 needs amd64") }
