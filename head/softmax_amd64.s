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
