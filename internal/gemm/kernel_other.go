//go:build !amd64

package gemm

const HaveKernel = false

func kern6x8(k int, a, b, c *float64, ldc int) { panic("gemm: kern6x8 needs amd64") }

func kern6x16(k int, a, b, c *float32, ldc int) { panic("gemm: kern6x16 needs amd64") }

const Have512 = false

func kern6x16d(k int, a, b, c *float64, ldc int) { panic("gemm: kern6x16d needs amd64") }

func kern6x32(k int, a, b, c *float32, ldc int) { panic("gemm: kern6x32 needs amd64") }

func dot4x32(n int, x *float32, ld int, w, z *float32) { panic("gemm: dot4x32 needs amd64") }

func axpy4x32(n int, x *float32, ld int, dst, alpha *float32) { panic("gemm: axpy4x32 needs amd64") }

func dot4x64(n int, x *float64, ld int, w, z *float64) { panic("gemm: dot4x64 needs amd64") }

func axpy4x64(n int, x *float64, ld int, dst, alpha *float64) { panic("gemm: axpy4x64 needs amd64") }

func dot4x32to64(n int, x *float32, ld int, w, z *float64) { panic("gemm: dot4x32to64 needs amd64") }

func axpy4x32to64(n int, x *float32, ld int, dst, alpha *float64) {
	panic("gemm: axpy4x32to64 needs amd64")
}
