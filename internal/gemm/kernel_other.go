//go:build !amd64

package gemm

const HaveKernel = false

func kern6x8(k int, a, b, c *float64, ldc int) { panic("gemm: kern6x8 needs amd64") }

func kern6x16(k int, a, b, c *float32, ldc int) { panic("gemm: kern6x16 needs amd64") }

const Have512 = false

func kern6x32(k int, a, b, c *float32, ldc int) { panic("gemm: kern6x32 needs amd64") }
