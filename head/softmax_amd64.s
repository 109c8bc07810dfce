#include "textflag.h"

// Constants of the float32 exponential (Cephes expf: S. L. Moshier, Methods and Programs
// for Mathematical Functions, 1989): e^x = 2^n · e^r with n = round(x·log2 e) and
// r = x − n·ln 2 in [−ln2/2, ln2/2], e^r by a degree-7 polynomial. Each is 8 copies (one
// AVX register).

// expLo: -87: inputs below it give 0; above, 2^n stays a normal number.
DATA expLo<>+0(SB)/4, $0xc2ae0000
DATA expLo<>+4(SB)/4, $0xc2ae0000
DATA expLo<>+8(SB)/4, $0xc2ae0000
DATA expLo<>+12(SB)/4, $0xc2ae0000
DATA expLo<>+16(SB)/4, $0xc2ae0000
DATA expLo<>+20(SB)/4, $0xc2ae0000
DATA expLo<>+24(SB)/4, $0xc2ae0000
DATA expLo<>+28(SB)/4, $0xc2ae0000
GLOBL expLo<>(SB), RODATA|NOPTR, $32

// expLog2e: log2(e).
DATA expLog2e<>+0(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+4(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+8(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+12(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+16(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+20(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+24(SB)/4, $0x3fb8aa3b
DATA expLog2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL expLog2e<>(SB), RODATA|NOPTR, $32

// expC1: ln 2 split in two: the high part.
DATA expC1<>+0(SB)/4, $0x3f318000
DATA expC1<>+4(SB)/4, $0x3f318000
DATA expC1<>+8(SB)/4, $0x3f318000
DATA expC1<>+12(SB)/4, $0x3f318000
DATA expC1<>+16(SB)/4, $0x3f318000
DATA expC1<>+20(SB)/4, $0x3f318000
DATA expC1<>+24(SB)/4, $0x3f318000
DATA expC1<>+28(SB)/4, $0x3f318000
GLOBL expC1<>(SB), RODATA|NOPTR, $32

// expC2: and the low part (C1 + C2 = ln 2 to float32 precision twice over).
DATA expC2<>+0(SB)/4, $0xb95e8083
DATA expC2<>+4(SB)/4, $0xb95e8083
DATA expC2<>+8(SB)/4, $0xb95e8083
DATA expC2<>+12(SB)/4, $0xb95e8083
DATA expC2<>+16(SB)/4, $0xb95e8083
DATA expC2<>+20(SB)/4, $0xb95e8083
DATA expC2<>+24(SB)/4, $0xb95e8083
DATA expC2<>+28(SB)/4, $0xb95e8083
GLOBL expC2<>(SB), RODATA|NOPTR, $32

// expP0: the polynomial e^r ≈ 1 + r + r²·(p5 + r·(p4 + ... + r·p0)).
DATA expP0<>+0(SB)/4, $0x39506967
DATA expP0<>+4(SB)/4, $0x39506967
DATA expP0<>+8(SB)/4, $0x39506967
DATA expP0<>+12(SB)/4, $0x39506967
DATA expP0<>+16(SB)/4, $0x39506967
DATA expP0<>+20(SB)/4, $0x39506967
DATA expP0<>+24(SB)/4, $0x39506967
DATA expP0<>+28(SB)/4, $0x39506967
GLOBL expP0<>(SB), RODATA|NOPTR, $32

DATA expP1<>+0(SB)/4, $0x3ab743ce
DATA expP1<>+4(SB)/4, $0x3ab743ce
DATA expP1<>+8(SB)/4, $0x3ab743ce
DATA expP1<>+12(SB)/4, $0x3ab743ce
DATA expP1<>+16(SB)/4, $0x3ab743ce
DATA expP1<>+20(SB)/4, $0x3ab743ce
DATA expP1<>+24(SB)/4, $0x3ab743ce
DATA expP1<>+28(SB)/4, $0x3ab743ce
GLOBL expP1<>(SB), RODATA|NOPTR, $32

DATA expP2<>+0(SB)/4, $0x3c088908
DATA expP2<>+4(SB)/4, $0x3c088908
DATA expP2<>+8(SB)/4, $0x3c088908
DATA expP2<>+12(SB)/4, $0x3c088908
DATA expP2<>+16(SB)/4, $0x3c088908
DATA expP2<>+20(SB)/4, $0x3c088908
DATA expP2<>+24(SB)/4, $0x3c088908
DATA expP2<>+28(SB)/4, $0x3c088908
GLOBL expP2<>(SB), RODATA|NOPTR, $32

DATA expP3<>+0(SB)/4, $0x3d2aa9c1
DATA expP3<>+4(SB)/4, $0x3d2aa9c1
DATA expP3<>+8(SB)/4, $0x3d2aa9c1
DATA expP3<>+12(SB)/4, $0x3d2aa9c1
DATA expP3<>+16(SB)/4, $0x3d2aa9c1
DATA expP3<>+20(SB)/4, $0x3d2aa9c1
DATA expP3<>+24(SB)/4, $0x3d2aa9c1
DATA expP3<>+28(SB)/4, $0x3d2aa9c1
GLOBL expP3<>(SB), RODATA|NOPTR, $32

DATA expP4<>+0(SB)/4, $0x3e2aaaaa
DATA expP4<>+4(SB)/4, $0x3e2aaaaa
DATA expP4<>+8(SB)/4, $0x3e2aaaaa
DATA expP4<>+12(SB)/4, $0x3e2aaaaa
DATA expP4<>+16(SB)/4, $0x3e2aaaaa
DATA expP4<>+20(SB)/4, $0x3e2aaaaa
DATA expP4<>+24(SB)/4, $0x3e2aaaaa
DATA expP4<>+28(SB)/4, $0x3e2aaaaa
GLOBL expP4<>(SB), RODATA|NOPTR, $32

DATA expP5<>+0(SB)/4, $0x3f000000
DATA expP5<>+4(SB)/4, $0x3f000000
DATA expP5<>+8(SB)/4, $0x3f000000
DATA expP5<>+12(SB)/4, $0x3f000000
DATA expP5<>+16(SB)/4, $0x3f000000
DATA expP5<>+20(SB)/4, $0x3f000000
DATA expP5<>+24(SB)/4, $0x3f000000
DATA expP5<>+28(SB)/4, $0x3f000000
GLOBL expP5<>(SB), RODATA|NOPTR, $32

// expOne: 1.
DATA expOne<>+0(SB)/4, $0x3f800000
DATA expOne<>+4(SB)/4, $0x3f800000
DATA expOne<>+8(SB)/4, $0x3f800000
DATA expOne<>+12(SB)/4, $0x3f800000
DATA expOne<>+16(SB)/4, $0x3f800000
DATA expOne<>+20(SB)/4, $0x3f800000
DATA expOne<>+24(SB)/4, $0x3f800000
DATA expOne<>+28(SB)/4, $0x3f800000
GLOBL expOne<>(SB), RODATA|NOPTR, $32

// expBias: the float32 exponent bias, 127 (int32).
DATA expBias<>+0(SB)/4, $0x0000007f
DATA expBias<>+4(SB)/4, $0x0000007f
DATA expBias<>+8(SB)/4, $0x0000007f
DATA expBias<>+12(SB)/4, $0x0000007f
DATA expBias<>+16(SB)/4, $0x0000007f
DATA expBias<>+20(SB)/4, $0x0000007f
DATA expBias<>+24(SB)/4, $0x0000007f
DATA expBias<>+28(SB)/4, $0x0000007f
GLOBL expBias<>(SB), RODATA|NOPTR, $32

// softmaxMask: 8 all-ones lanes then 8 zero lanes; the 8 lanes from 8−r have the first r set.
DATA softmaxMask<>+0(SB)/4, $0xffffffff
DATA softmaxMask<>+4(SB)/4, $0xffffffff
DATA softmaxMask<>+8(SB)/4, $0xffffffff
DATA softmaxMask<>+12(SB)/4, $0xffffffff
DATA softmaxMask<>+16(SB)/4, $0xffffffff
DATA softmaxMask<>+20(SB)/4, $0xffffffff
DATA softmaxMask<>+24(SB)/4, $0xffffffff
DATA softmaxMask<>+28(SB)/4, $0xffffffff
DATA softmaxMask<>+32(SB)/4, $0x00000000
DATA softmaxMask<>+36(SB)/4, $0x00000000
DATA softmaxMask<>+40(SB)/4, $0x00000000
DATA softmaxMask<>+44(SB)/4, $0x00000000
DATA softmaxMask<>+48(SB)/4, $0x00000000
DATA softmaxMask<>+52(SB)/4, $0x00000000
DATA softmaxMask<>+56(SB)/4, $0x00000000
DATA softmaxMask<>+60(SB)/4, $0x00000000
GLOBL softmaxMask<>(SB), RODATA|NOPTR, $64

// EXP8 sets Y3 = e^Y1 (8 float32 lanes), 0 where Y1 < −87; it uses Y1, Y2, Y4, Y5.
#define EXP8 \
	VCMPPS $1, expLo<>(SB), Y1, Y5; \
	VMAXPS expLo<>(SB), Y1, Y1; \
	VMULPS expLog2e<>(SB), Y1, Y2; \
	VROUNDPS $0, Y2, Y2; \
	VFNMADD231PS expC1<>(SB), Y2, Y1; \
	VFNMADD231PS expC2<>(SB), Y2, Y1; \
	VMOVUPS expP0<>(SB), Y3; \
	VFMADD213PS expP1<>(SB), Y1, Y3; \
	VFMADD213PS expP2<>(SB), Y1, Y3; \
	VFMADD213PS expP3<>(SB), Y1, Y3; \
	VFMADD213PS expP4<>(SB), Y1, Y3; \
	VFMADD213PS expP5<>(SB), Y1, Y3; \
	VMULPS Y1, Y1, Y4; \
	VFMADD213PS Y1, Y4, Y3; \
	VADDPS expOne<>(SB), Y3, Y3; \
	VCVTPS2DQ Y2, Y2; \
	VPADDD expBias<>(SB), Y2, Y2; \
	VPSLLD $23, Y2, Y2; \
	VMULPS Y2, Y3, Y3; \
	VANDNPS Y3, Y5, Y3

// SUM8 adds the 8 float32 lanes of Y3, widened to float64, to Y8 (lanes 0-3) and Y9
// (lanes 4-7); it uses Y4.
#define SUM8 \
	VCVTPS2PD X3, Y4; \
	VADDPD Y4, Y8, Y8; \
	VEXTRACTF128 $1, Y3, X4; \
	VCVTPS2PD X4, Y4; \
	VADDPD Y4, Y9, Y9

// func softmaxRow32Asm(z []float32, w float64) (m float32, s float64)
TEXT ·softmaxRow32Asm(SB), NOSPLIT, $0-48
	MOVQ z_base+0(FP), SI
	MOVQ z_len+8(FP), CX
	MOVQ CX, BX
	SHRQ $3, BX // whole registers
	ANDQ $7, CX // the rest, r
	LEAQ softmaxMask<>(SB), AX
	MOVQ $8, DX
	SUBQ CX, DX
	VMOVDQU (AX)(DX*4), Y15 // the first r lanes set

	// m = max z, in Y0 (the tail's masked lanes take the running maximum).
	VBROADCASTSS (SI), Y0
	MOVQ SI, DI
	MOVQ BX, R9
	TESTQ R9, R9
	JEQ maxtail

maxloop:
	VMAXPS (DI), Y0, Y0
	ADDQ $32, DI
	DECQ R9
	JNZ maxloop

maxtail:
	TESTQ CX, CX
	JEQ maxreduce
	VMASKMOVPS (DI), Y15, Y1
	VBLENDVPS Y15, Y1, Y0, Y1
	VMAXPS Y1, Y0, Y0

maxreduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, m+32(FP)
	VBROADCASTSS X0, Y0

	// z = e^(z−m), s = Σ z in float64.
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	MOVQ SI, DI
	MOVQ BX, R9
	TESTQ R9, R9
	JEQ exptail

exploop:
	VMOVUPS (DI), Y1
	VSUBPS Y0, Y1, Y1
	EXP8
	VMOVUPS Y3, (DI)
	SUM8
	ADDQ $32, DI
	DECQ R9
	JNZ exploop

exptail:
	TESTQ CX, CX
	JEQ expreduce
	VMASKMOVPS (DI), Y15, Y1
	VSUBPS Y0, Y1, Y1
	EXP8
	VANDPS Y15, Y3, Y3
	VMASKMOVPS Y3, Y15, (DI)
	SUM8

expreduce:
	VADDPD Y9, Y8, Y8
	VEXTRACTF128 $1, Y8, X9
	VADDPD X9, X8, X8
	VPERMILPD $1, X8, X9
	VADDSD X9, X8, X8
	VMOVSD X8, s+40(FP)

	// z *= float32(w/s).
	VMOVSD w+24(FP), X1
	VDIVSD X8, X1, X1
	VCVTSD2SS X1, X1, X1
	VBROADCASTSS X1, Y1
	MOVQ SI, DI
	MOVQ BX, R9
	TESTQ R9, R9
	JEQ scaletail

scaleloop:
	VMULPS (DI), Y1, Y2
	VMOVUPS Y2, (DI)
	ADDQ $32, DI
	DECQ R9
	JNZ scaleloop

scaletail:
	TESTQ CX, CX
	JEQ done
	VMASKMOVPS (DI), Y15, Y2
	VMULPS Y2, Y1, Y2
	VMASKMOVPS Y2, Y15, (DI)

done:
	VZEROUPPER
	RET

// The float64 softmax's exponential is math.Exp's on amd64 with FMA (the method of
// N. Shibata, Efficient evaluation methods of elementary functions suitable for SIMD
// computation, ISC 2010), four lanes at a time: n = round(x·log2 e), r = x − n·ln 2 in
// two fused steps, e^(r/16) by its Taylor series to degree 8, squared back four times
// as (e^t − 1)·(e^t + 1) = e^2t − 1, then scaled by 2^n. The operations and their order
// are those of the scalar code, so each lane gives math.Exp's bits for x in [−708, 0]
// (2^n stays a normal number there), the only inputs it is given. Each constant is
// four copies (one AVX register).

// log2(e).
DATA exp64Log2e<>+0(SB)/8, $0x3ff71547652b82fe
DATA exp64Log2e<>+8(SB)/8, $0x3ff71547652b82fe
DATA exp64Log2e<>+16(SB)/8, $0x3ff71547652b82fe
DATA exp64Log2e<>+24(SB)/8, $0x3ff71547652b82fe
GLOBL exp64Log2e<>(SB), RODATA|NOPTR, $32

// ln 2 split in two: the high part,
DATA exp64Ln2U<>+0(SB)/8, $0x3fe62e42fefa3000
DATA exp64Ln2U<>+8(SB)/8, $0x3fe62e42fefa3000
DATA exp64Ln2U<>+16(SB)/8, $0x3fe62e42fefa3000
DATA exp64Ln2U<>+24(SB)/8, $0x3fe62e42fefa3000
GLOBL exp64Ln2U<>(SB), RODATA|NOPTR, $32

// and the low part.
DATA exp64Ln2L<>+0(SB)/8, $0x3d53de6af278ece6
DATA exp64Ln2L<>+8(SB)/8, $0x3d53de6af278ece6
DATA exp64Ln2L<>+16(SB)/8, $0x3d53de6af278ece6
DATA exp64Ln2L<>+24(SB)/8, $0x3d53de6af278ece6
GLOBL exp64Ln2L<>(SB), RODATA|NOPTR, $32

// 1/16: the reduced argument is r/16, squared back four times.
DATA exp64Sixteenth<>+0(SB)/8, $0x3fb0000000000000
DATA exp64Sixteenth<>+8(SB)/8, $0x3fb0000000000000
DATA exp64Sixteenth<>+16(SB)/8, $0x3fb0000000000000
DATA exp64Sixteenth<>+24(SB)/8, $0x3fb0000000000000
GLOBL exp64Sixteenth<>(SB), RODATA|NOPTR, $32

// Taylor coefficients 1/8!, 1/7!, ..., 1/3!, 1/2, 1.
DATA exp64C8<>+0(SB)/8, $0x3efa01a01a01a01a
DATA exp64C8<>+8(SB)/8, $0x3efa01a01a01a01a
DATA exp64C8<>+16(SB)/8, $0x3efa01a01a01a01a
DATA exp64C8<>+24(SB)/8, $0x3efa01a01a01a01a
GLOBL exp64C8<>(SB), RODATA|NOPTR, $32

DATA exp64C7<>+0(SB)/8, $0x3f2a01a01a01a01a
DATA exp64C7<>+8(SB)/8, $0x3f2a01a01a01a01a
DATA exp64C7<>+16(SB)/8, $0x3f2a01a01a01a01a
DATA exp64C7<>+24(SB)/8, $0x3f2a01a01a01a01a
GLOBL exp64C7<>(SB), RODATA|NOPTR, $32

DATA exp64C6<>+0(SB)/8, $0x3f56c16c16c16c17
DATA exp64C6<>+8(SB)/8, $0x3f56c16c16c16c17
DATA exp64C6<>+16(SB)/8, $0x3f56c16c16c16c17
DATA exp64C6<>+24(SB)/8, $0x3f56c16c16c16c17
GLOBL exp64C6<>(SB), RODATA|NOPTR, $32

DATA exp64C5<>+0(SB)/8, $0x3f81111111111111
DATA exp64C5<>+8(SB)/8, $0x3f81111111111111
DATA exp64C5<>+16(SB)/8, $0x3f81111111111111
DATA exp64C5<>+24(SB)/8, $0x3f81111111111111
GLOBL exp64C5<>(SB), RODATA|NOPTR, $32

DATA exp64C4<>+0(SB)/8, $0x3fa5555555555555
DATA exp64C4<>+8(SB)/8, $0x3fa5555555555555
DATA exp64C4<>+16(SB)/8, $0x3fa5555555555555
DATA exp64C4<>+24(SB)/8, $0x3fa5555555555555
GLOBL exp64C4<>(SB), RODATA|NOPTR, $32

DATA exp64C3<>+0(SB)/8, $0x3fc5555555555555
DATA exp64C3<>+8(SB)/8, $0x3fc5555555555555
DATA exp64C3<>+16(SB)/8, $0x3fc5555555555555
DATA exp64C3<>+24(SB)/8, $0x3fc5555555555555
GLOBL exp64C3<>(SB), RODATA|NOPTR, $32

DATA exp64Half<>+0(SB)/8, $0x3fe0000000000000
DATA exp64Half<>+8(SB)/8, $0x3fe0000000000000
DATA exp64Half<>+16(SB)/8, $0x3fe0000000000000
DATA exp64Half<>+24(SB)/8, $0x3fe0000000000000
GLOBL exp64Half<>(SB), RODATA|NOPTR, $32

DATA exp64One<>+0(SB)/8, $0x3ff0000000000000
DATA exp64One<>+8(SB)/8, $0x3ff0000000000000
DATA exp64One<>+16(SB)/8, $0x3ff0000000000000
DATA exp64One<>+24(SB)/8, $0x3ff0000000000000
GLOBL exp64One<>(SB), RODATA|NOPTR, $32

// 2.
DATA exp64Two<>+0(SB)/8, $0x4000000000000000
DATA exp64Two<>+8(SB)/8, $0x4000000000000000
DATA exp64Two<>+16(SB)/8, $0x4000000000000000
DATA exp64Two<>+24(SB)/8, $0x4000000000000000
GLOBL exp64Two<>(SB), RODATA|NOPTR, $32

// the float64 exponent bias, 1023 (int64).
DATA exp64Bias<>+0(SB)/8, $0x00000000000003ff
DATA exp64Bias<>+8(SB)/8, $0x00000000000003ff
DATA exp64Bias<>+16(SB)/8, $0x00000000000003ff
DATA exp64Bias<>+24(SB)/8, $0x00000000000003ff
GLOBL exp64Bias<>(SB), RODATA|NOPTR, $32

// softmax64Mask: 4 all-ones lanes then 4 zero lanes; the 4 lanes from 4−r have the first r set.
DATA softmax64Mask<>+0(SB)/8, $0xffffffffffffffff
DATA softmax64Mask<>+8(SB)/8, $0xffffffffffffffff
DATA softmax64Mask<>+16(SB)/8, $0xffffffffffffffff
DATA softmax64Mask<>+24(SB)/8, $0xffffffffffffffff
DATA softmax64Mask<>+32(SB)/8, $0x0000000000000000
DATA softmax64Mask<>+40(SB)/8, $0x0000000000000000
DATA softmax64Mask<>+48(SB)/8, $0x0000000000000000
DATA softmax64Mask<>+56(SB)/8, $0x0000000000000000
GLOBL softmax64Mask<>(SB), RODATA|NOPTR, $64

// exp64Floor: −708, the lowest x = z − max the assembly takes (below it math.Exp's 2^n
// would be subnormal, a path the vector code does not have).
DATA exp64Floor<>+0(SB)/8, $0xc086200000000000
GLOBL exp64Floor<>(SB), RODATA|NOPTR, $8

// EXP4 sets Y1 = e^Y1 (4 float64 lanes, each in [−708, 0]) as math.Exp does; it uses
// Y2, Y3, Y4, Y5.
#define EXP4 \
	VMULPD exp64Log2e<>(SB), Y1, Y2; \
	VCVTPD2DQY Y2, X2; \
	VCVTDQ2PD X2, Y3; \
	VFNMADD231PD exp64Ln2U<>(SB), Y3, Y1; \
	VFNMADD231PD exp64Ln2L<>(SB), Y3, Y1; \
	VMULPD exp64Sixteenth<>(SB), Y1, Y1; \
	VMOVUPD exp64C8<>(SB), Y4; \
	VFMADD213PD exp64C7<>(SB), Y1, Y4; \
	VFMADD213PD exp64C6<>(SB), Y1, Y4; \
	VFMADD213PD exp64C5<>(SB), Y1, Y4; \
	VFMADD213PD exp64C4<>(SB), Y1, Y4; \
	VFMADD213PD exp64C3<>(SB), Y1, Y4; \
	VFMADD213PD exp64Half<>(SB), Y1, Y4; \
	VFMADD213PD exp64One<>(SB), Y1, Y4; \
	VMULPD Y4, Y1, Y1; \
	VADDPD exp64Two<>(SB), Y1, Y4; \
	VMULPD Y4, Y1, Y1; \
	VADDPD exp64Two<>(SB), Y1, Y4; \
	VMULPD Y4, Y1, Y1; \
	VADDPD exp64Two<>(SB), Y1, Y4; \
	VMULPD Y4, Y1, Y1; \
	VADDPD exp64Two<>(SB), Y1, Y4; \
	VFMADD213PD exp64One<>(SB), Y4, Y1; \
	VPMOVSXDQ X2, Y5; \
	VPADDQ exp64Bias<>(SB), Y5, Y5; \
	VPSLLQ $52, Y5, Y5; \
	VMULPD Y5, Y1, Y1

// func softmaxRow64Asm(z []float64, w float64) (m, s float64, ok bool)
TEXT ·softmaxRow64Asm(SB), NOSPLIT, $0-49
	MOVQ z_base+0(FP), SI
	MOVQ z_len+8(FP), CX
	MOVQ CX, BX
	SHRQ $2, BX // whole registers
	ANDQ $3, CX // the rest, r
	LEAQ softmax64Mask<>(SB), AX
	MOVQ $4, DX
	SUBQ CX, DX
	VMOVDQU (AX)(DX*8), Y15 // the first r lanes set

	// m = max z in Y0, min z in Y6, NaN lanes flagged in Y7 (the tail's masked lanes
	// take z[0]).
	VBROADCASTSD (SI), Y0
	VMOVAPD Y0, Y6
	VXORPD Y7, Y7, Y7
	MOVQ SI, DI
	MOVQ BX, R9
	TESTQ R9, R9
	JEQ maxtail

maxloop:
	VMOVUPD (DI), Y1
	VMAXPD Y1, Y0, Y0
	VMINPD Y1, Y6, Y6
	VCMPPD $3, Y1, Y1, Y2
	VORPD Y2, Y7, Y7
	ADDQ $32, DI
	DECQ R9
	JNZ maxloop

maxtail:
	TESTQ CX, CX
	JEQ maxreduce
	VMASKMOVPD (DI), Y15, Y1
	VBROADCASTSD (SI), Y2
	VBLENDVPD Y15, Y1, Y2, Y1
	VMAXPD Y1, Y0, Y0
	VMINPD Y1, Y6, Y6
	VCMPPD $3, Y1, Y1, Y2
	VORPD Y2, Y7, Y7

maxreduce:
	VMOVMSKPD Y7, AX
	TESTQ AX, AX
	JNE fallback
	VEXTRACTF128 $1, Y0, X1
	VMAXPD X1, X0, X0
	VPERMILPD $1, X0, X1
	VMAXSD X1, X0, X0
	VEXTRACTF128 $1, Y6, X1
	VMINPD X1, X6, X6
	VPERMILPD $1, X6, X1
	VMINSD X1, X6, X6
	// Every x = z − m must be in [−708, 0]: min − m >= −708 (false for infinities).
	VSUBSD X0, X6, X6
	VUCOMISD exp64Floor<>(SB), X6
	JCS fallback
	JPS fallback
	VMOVSD X0, m+32(FP)
	VBROADCASTSD X0, Y0

	// z = e^(z−m).
	MOVQ SI, DI
	MOVQ BX, R9
	TESTQ R9, R9
	JEQ exptail

exploop:
	VMOVUPD (DI), Y1
	VSUBPD Y0, Y1, Y1
	EXP4
	VMOVUPD Y1, (DI)
	ADDQ $32, DI
	DECQ R9
	JNZ exploop

exptail:
	TESTQ CX, CX
	JEQ sum
	VMASKMOVPD (DI), Y15, Y1
	VBLENDVPD Y15, Y1, Y0, Y1 // masked lanes: z = m, x = 0
	VSUBPD Y0, Y1, Y1
	EXP4
	VMASKMOVPD Y1, Y15, (DI)

sum:
	// s = Σ z in order, as the Go loop sums.
	VXORPD X8, X8, X8
	MOVQ z_len+8(FP), R9
	MOVQ SI, DI

sumloop:
	VADDSD (DI), X8, X8
	ADDQ $8, DI
	DECQ R9
	JNZ sumloop
	VMOVSD X8, s+40(FP)

	// z *= w/s.
	VMOVSD w+24(FP), X1
	VDIVSD X8, X1, X1
	VBROADCASTSD X1, Y1
	MOVQ SI, DI
	MOVQ BX, R9
	TESTQ R9, R9
	JEQ scaletail

scaleloop:
	VMULPD (DI), Y1, Y2
	VMOVUPD Y2, (DI)
	ADDQ $32, DI
	DECQ R9
	JNZ scaleloop

scaletail:
	TESTQ CX, CX
	JEQ done
	VMASKMOVPD (DI), Y15, Y2
	VMULPD Y2, Y1, Y2
	VMASKMOVPD Y2, Y15, (DI)

done:
	MOVB $1, ok+48(FP)
	VZEROUPPER
	RET

fallback:
	MOVB $0, ok+48(FP)
	VZEROUPPER
	RET
