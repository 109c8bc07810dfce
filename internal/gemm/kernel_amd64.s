#include "textflag.h"

// One depth step: broadcast the 6 values of A's column and multiply-add them with
// B's 8-value row into the 12 accumulators Y0..Y11 (row i in Y(2i), Y(2i+1)).
#define STEP(aoff, boff) \
	VMOVUPD boff(DI), Y12; \
	VMOVUPD boff+32(DI), Y13; \
	VBROADCASTSD aoff(SI), Y14; \
	VFMADD231PD Y12, Y14, Y0; \
	VFMADD231PD Y13, Y14, Y1; \
	VBROADCASTSD aoff+8(SI), Y14; \
	VFMADD231PD Y12, Y14, Y2; \
	VFMADD231PD Y13, Y14, Y3; \
	VBROADCASTSD aoff+16(SI), Y14; \
	VFMADD231PD Y12, Y14, Y4; \
	VFMADD231PD Y13, Y14, Y5; \
	VBROADCASTSD aoff+24(SI), Y14; \
	VFMADD231PD Y12, Y14, Y6; \
	VFMADD231PD Y13, Y14, Y7; \
	VBROADCASTSD aoff+32(SI), Y14; \
	VFMADD231PD Y12, Y14, Y8; \
	VFMADD231PD Y13, Y14, Y9; \
	VBROADCASTSD aoff+40(SI), Y14; \
	VFMADD231PD Y12, Y14, Y10; \
	VFMADD231PD Y13, Y14, Y11

// Add one accumulator row pair to C's row at DX, then step DX to the next row.
#define STORE(r0, r1) \
	VADDPD (DX), r0, r0; \
	VMOVUPD r0, (DX); \
	VADDPD 32(DX), r1, r1; \
	VMOVUPD r1, 32(DX); \
	ADDQ R8, DX

// func kern6x8(k int, a, b, c *float64, ldc int)
TEXT ·kern6x8(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $3, R8
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	MOVQ CX, R9
	SHRQ $2, R9
	ANDQ $3, CX
	TESTQ R9, R9
	JEQ tail

loop4:
	STEP(0, 0)
	STEP(48, 64)
	STEP(96, 128)
	STEP(144, 192)
	ADDQ $192, SI
	ADDQ $256, DI
	DECQ R9
	JNZ loop4

tail:
	TESTQ CX, CX
	JEQ store

loop1:
	STEP(0, 0)
	ADDQ $48, SI
	ADDQ $64, DI
	DECQ CX
	JNZ loop1

store:
	STORE(Y0, Y1)
	STORE(Y2, Y3)
	STORE(Y4, Y5)
	STORE(Y6, Y7)
	STORE(Y8, Y9)
	STORE(Y10, Y11)
	VZEROUPPER
	RET

// The float32 kernel: one depth step broadcasts the 6 values of A's column and
// multiply-adds them with B's 16-value row (two registers of 8) into Y0..Y11.
#define STEP32(aoff, boff) \
	VMOVUPS boff(DI), Y12; \
	VMOVUPS boff+32(DI), Y13; \
	VBROADCASTSS aoff(SI), Y14; \
	VFMADD231PS Y12, Y14, Y0; \
	VFMADD231PS Y13, Y14, Y1; \
	VBROADCASTSS aoff+4(SI), Y14; \
	VFMADD231PS Y12, Y14, Y2; \
	VFMADD231PS Y13, Y14, Y3; \
	VBROADCASTSS aoff+8(SI), Y14; \
	VFMADD231PS Y12, Y14, Y4; \
	VFMADD231PS Y13, Y14, Y5; \
	VBROADCASTSS aoff+12(SI), Y14; \
	VFMADD231PS Y12, Y14, Y6; \
	VFMADD231PS Y13, Y14, Y7; \
	VBROADCASTSS aoff+16(SI), Y14; \
	VFMADD231PS Y12, Y14, Y8; \
	VFMADD231PS Y13, Y14, Y9; \
	VBROADCASTSS aoff+20(SI), Y14; \
	VFMADD231PS Y12, Y14, Y10; \
	VFMADD231PS Y13, Y14, Y11

#define STORE32(r0, r1) \
	VADDPS (DX), r0, r0; \
	VMOVUPS r0, (DX); \
	VADDPS 32(DX), r1, r1; \
	VMOVUPS r1, 32(DX); \
	ADDQ R8, DX

// func kern6x16(k int, a, b, c *float32, ldc int)
TEXT ·kern6x16(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ CX, R9
	SHRQ $2, R9
	ANDQ $3, CX
	TESTQ R9, R9
	JEQ tail32

loop32x4:
	STEP32(0, 0)
	STEP32(24, 64)
	STEP32(48, 128)
	STEP32(72, 192)
	ADDQ $96, SI
	ADDQ $256, DI
	DECQ R9
	JNZ loop32x4

tail32:
	TESTQ CX, CX
	JEQ store32

loop32x1:
	STEP32(0, 0)
	ADDQ $24, SI
	ADDQ $64, DI
	DECQ CX
	JNZ loop32x1

store32:
	STORE32(Y0, Y1)
	STORE32(Y2, Y3)
	STORE32(Y4, Y5)
	STORE32(Y6, Y7)
	STORE32(Y8, Y9)
	STORE32(Y10, Y11)
	VZEROUPPER
	RET

// The AVX-512 float32 kernel, 6×32: as kern6x16 with 512-bit registers, B's 32-value
// row in Z12, Z13 and the 12 accumulators in Z0..Z11 (row i in Z(2i), Z(2i+1)). Each
// element of C is accumulated over the depth in the same order, with the same fused
// multiply-adds, as in kern6x16, so the two give the same bits.
#define STEP512(aoff, boff) \
	VMOVUPS boff(DI), Z12; \
	VMOVUPS boff+64(DI), Z13; \
	VBROADCASTSS aoff(SI), Z14; \
	VFMADD231PS Z12, Z14, Z0; \
	VFMADD231PS Z13, Z14, Z1; \
	VBROADCASTSS aoff+4(SI), Z14; \
	VFMADD231PS Z12, Z14, Z2; \
	VFMADD231PS Z13, Z14, Z3; \
	VBROADCASTSS aoff+8(SI), Z14; \
	VFMADD231PS Z12, Z14, Z4; \
	VFMADD231PS Z13, Z14, Z5; \
	VBROADCASTSS aoff+12(SI), Z14; \
	VFMADD231PS Z12, Z14, Z6; \
	VFMADD231PS Z13, Z14, Z7; \
	VBROADCASTSS aoff+16(SI), Z14; \
	VFMADD231PS Z12, Z14, Z8; \
	VFMADD231PS Z13, Z14, Z9; \
	VBROADCASTSS aoff+20(SI), Z14; \
	VFMADD231PS Z12, Z14, Z10; \
	VFMADD231PS Z13, Z14, Z11

#define STORE512(r0, r1) \
	VADDPS (DX), r0, r0; \
	VMOVUPS r0, (DX); \
	VADDPS 64(DX), r1, r1; \
	VMOVUPS r1, 64(DX); \
	ADDQ R8, DX

// func kern6x32(k int, a, b, c *float32, ldc int)
TEXT ·kern6x32(SB), NOSPLIT, $0-40
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DI
	MOVQ c+24(FP), DX
	MOVQ ldc+32(FP), R8
	SHLQ $2, R8
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	MOVQ CX, R9
	SHRQ $2, R9
	ANDQ $3, CX
	TESTQ R9, R9
	JEQ tail512

loop512x4:
	STEP512(0, 0)
	STEP512(24, 128)
	STEP512(48, 256)
	STEP512(72, 384)
	ADDQ $96, SI
	ADDQ $512, DI
	DECQ R9
	JNZ loop512x4

tail512:
	TESTQ CX, CX
	JEQ store512

loop512x1:
	STEP512(0, 0)
	ADDQ $24, SI
	ADDQ $128, DI
	DECQ CX
	JNZ loop512x1

store512:
	STORE512(Z0, Z1)
	STORE512(Z2, Z3)
	STORE512(Z4, Z5)
	STORE512(Z6, Z7)
	STORE512(Z8, Z9)
	STORE512(Z10, Z11)
	VZEROUPPER
	RET
