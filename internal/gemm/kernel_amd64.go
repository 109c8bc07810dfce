package gemm

import (
	"os"

	"golang.org/x/sys/cpu"
)

// HaveKernel reports whether the assembly kernels (kern6x8, kern6x16, softmaxRow32)
// can run: AVX2 and FMA.
var HaveKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Have512 reports whether the products use the AVX-512 kernels, kern6x16d (float64)
// and kern6x32 (float32) (AVX-512F, with the OS saving the 512-bit registers, which
// golang.org/x/sys/cpu checks). The environment variable HEADSTART_NO_AVX512=1 turns
// it off, to compare the kernels; they give the same bits.
var Have512 = HaveKernel && cpu.X86.HasAVX512F && os.Getenv("HEADSTART_NO_AVX512") != "1"

// kern6x8 computes C += A·B for a 6×k panel A packed depth by depth (a[6p+i]), a k×8
// panel B packed depth by depth (b[8p+j]), and C 6×8 with row stride ldc (elements).
//
//go:noescape
func kern6x8(k int, a, b, c *float64, ldc int)

// kern6x16 is kern6x8 in float32 with a k×16 panel B (b[16p+j]) and C 6×16.
//
//go:noescape
func kern6x16(k int, a, b, c *float32, ldc int)

// kern6x32 is kern6x16 on AVX-512 with a k×32 panel B (b[32p+j]) and C 6×32.
//
//go:noescape
func kern6x32(k int, a, b, c *float32, ldc int)

// kern6x16d is kern6x8 on AVX-512 with a k×16 panel B (b[16p+j]) and C 6×16.
//
//go:noescape
func kern6x16d(k int, a, b, c *float64, ldc int)

// dot4x32 sets z[r] = Σ_{j<n} x[r·ld+j]·w[j] for r < 4; n is a multiple of 16.
//
//go:noescape
func dot4x32(n int, x *float32, ld int, w, z *float32)

// axpy4x32 adds Σ_{r<4} alpha[r]·x[r·ld+j] to dst[j] for j < n; n is a multiple of 16.
//
//go:noescape
func axpy4x32(n int, x *float32, ld int, dst, alpha *float32)

// dot4x64 is dot4x32 in float64; n is a multiple of 8.
//
//go:noescape
func dot4x64(n int, x *float64, ld int, w, z *float64)

// axpy4x64 is axpy4x32 in float64; n is a multiple of 8.
//
//go:noescape
func axpy4x64(n int, x *float64, ld int, dst, alpha *float64)

// dot4x32to64 is dot4x64 on float32 rows, widened to float64 as they are read: the
// same bits as dot4x64 on a float64 copy of them. n is a multiple of 8.
//
//go:noescape
func dot4x32to64(n int, x *float32, ld int, w, z *float64)

// axpy4x32to64 is axpy4x64 on float32 rows, widened as they are read. n is a
// multiple of 8.
//
//go:noescape
func axpy4x32to64(n int, x *float32, ld int, dst, alpha *float64)
