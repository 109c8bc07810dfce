#include "textflag.h"

// The three micro-kernels compute C += A·B for a 6×k panel of A and a k×NR panel of B,
// both packed depth by depth, into 12 accumulators (row i of the tile in registers 2i
// and 2i+1), then add them to C. They differ only in element type, register width and
// strides, so they are written once here: KERNEL is the body, and each kernel names
// its depth step (STEPn), its zeroing (ZEROn) and its store (STOREn).

// ROW multiplies B's row (B0, B1) by one broadcast value of A's column at aoff(SI)
// and adds the products into one accumulator row (r0, r1).
#define ROW(BCAST, FMA, aoff, BC, B0, B1, r0, r1) \
	BCAST aoff(SI), BC; \
	FMA B0, BC, r0; \
	FMA B1, BC, r1

// STEP is one depth step: load B's row (its second half bw bytes after the first) and
// multiply-add it with the 6 values of A's column (es bytes apart) into r0..r11.
#define STEP(LOAD, BCAST, FMA, es, bw, aoff, boff, B0, B1, BC, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11) \
	LOAD boff(DI), B0; \
	LOAD boff+bw(DI), B1; \
	ROW(BCAST, FMA, aoff, BC, B0, B1, r0, r1); \
	ROW(BCAST, FMA, aoff+es, BC, B0, B1, r2, r3); \
	ROW(BCAST, FMA, aoff+2*es, BC, B0, B1, r4, r5); \
	ROW(BCAST, FMA, aoff+3*es, BC, B0, B1, r6, r7); \
	ROW(BCAST, FMA, aoff+4*es, BC, B0, B1, r8, r9); \
	ROW(BCAST, FMA, aoff+5*es, BC, B0, B1, r10, r11)

#define ZERO(XOR, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11) \
	XOR r0, r0, r0; \
	XOR r1, r1, r1; \
	XOR r2, r2, r2; \
	XOR r3, r3, r3; \
	XOR r4, r4, r4; \
	XOR r5, r5, r5; \
	XOR r6, r6, r6; \
	XOR r7, r7, r7; \
	XOR r8, r8, r8; \
	XOR r9, r9, r9; \
	XOR r10, r10, r10; \
	XOR r11, r11, r11

// STOREROW adds one accumulator row (r0, r1; r1 holds C's columns bw bytes on) to C's
// row at DX, then steps DX to the next row (R8: C's row stride in bytes).
#define STOREROW(ADD, MOV, bw, r0, r1) \
	ADD (DX), r0, r0; \
	MOV r0, (DX); \
	ADD bw(DX), r1, r1; \
	MOV r1, bw(DX); \
	ADDQ R8, DX

#define STORE(ADD, MOV, bw, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11) \
	STOREROW(ADD, MOV, bw, r0, r1); \
	STOREROW(ADD, MOV, bw, r2, r3); \
	STOREROW(ADD, MOV, bw, r4, r5); \
	STOREROW(ADD, MOV, bw, r6, r7); \
	STOREROW(ADD, MOV, bw, r8, r9); \
	STOREROW(ADD, MOV, bw, r10, r11)

// KERNEL is the body of func(k int, a, b, c *T, ldc int) for elements of 1<<shift
// bytes: A advances as bytes per depth step, B bs.
#define KERNEL(STEPK, ZEROK, STOREK, shift, as, bs) \
	MOVQ k+0(FP), CX; \
	MOVQ a+8(FP), SI; \
	MOVQ b+16(FP), DI; \
	MOVQ c+24(FP), DX; \
	MOVQ ldc+32(FP), R8; \
	SHLQ $shift, R8; \
	ZEROK; \
	MOVQ CX, R9; \
	SHRQ $2, R9; \
	ANDQ $3, CX; \
	TESTQ R9, R9; \
	JEQ tail; \
loop4: \
	STEPK(0, 0); \
	STEPK(as, bs); \
	STEPK(2*as, 2*bs); \
	STEPK(3*as, 3*bs); \
	ADDQ $(4*as), SI; \
	ADDQ $(4*bs), DI; \
	DECQ R9; \
	JNZ loop4; \
tail: \
	TESTQ CX, CX; \
	JEQ store; \
loop1: \
	STEPK(0, 0); \
	ADDQ $as, SI; \
	ADDQ $bs, DI; \
	DECQ CX; \
	JNZ loop1; \
store: \
	STOREK; \
	VZEROUPPER; \
	RET

// float64, 6×8: B's 8-value row in Y12, Y13.
#define STEP64(aoff, boff) STEP(VMOVUPD, VBROADCASTSD, VFMADD231PD, 8, 32, aoff, boff, Y12, Y13, Y14, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)
#define ZERO64 ZERO(VXORPD, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)
#define STORE64 STORE(VADDPD, VMOVUPD, 32, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)

// func kern6x8(k int, a, b, c *float64, ldc int)
TEXT ·kern6x8(SB), NOSPLIT, $0-40
	KERNEL(STEP64, ZERO64, STORE64, 3, 48, 64)

// float32, 6×16: B's 16-value row in Y12, Y13.
#define STEP32(aoff, boff) STEP(VMOVUPS, VBROADCASTSS, VFMADD231PS, 4, 32, aoff, boff, Y12, Y13, Y14, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)
#define ZERO32 ZERO(VXORPS, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)
#define STORE32 STORE(VADDPS, VMOVUPS, 32, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11)

// func kern6x16(k int, a, b, c *float32, ldc int)
TEXT ·kern6x16(SB), NOSPLIT, $0-40
	KERNEL(STEP32, ZERO32, STORE32, 2, 24, 64)

// AVX-512 float32, 6×32: kern6x16 with 512-bit registers, B's 32-value row in Z12,
// Z13. Each element of C is accumulated over the depth in the same order, with the
// same fused multiply-adds, as in kern6x16, so the two give the same bits.
#define STEP512(aoff, boff) STEP(VMOVUPS, VBROADCASTSS, VFMADD231PS, 4, 64, aoff, boff, Z12, Z13, Z14, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
#define ZERO512 ZERO(VPXORD, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
#define STORE512 STORE(VADDPS, VMOVUPS, 64, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)

// func kern6x32(k int, a, b, c *float32, ldc int)
TEXT ·kern6x32(SB), NOSPLIT, $0-40
	KERNEL(STEP512, ZERO512, STORE512, 2, 24, 128)

// AVX-512 float64, 6×16: kern6x8 with 512-bit registers, B's 16-value row in Z12,
// Z13; the same bits as kern6x8 (each element accumulated over the depth in the same
// order, with the same fused multiply-adds).
#define STEP512D(aoff, boff) STEP(VMOVUPD, VBROADCASTSD, VFMADD231PD, 8, 64, aoff, boff, Z12, Z13, Z14, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
#define ZERO512D ZERO(VPXORQ, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)
#define STORE512D STORE(VADDPD, VMOVUPD, 64, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11)

// func kern6x16d(k int, a, b, c *float64, ldc int)
TEXT ·kern6x16d(SB), NOSPLIT, $0-40
	KERNEL(STEP512D, ZERO512D, STORE512D, 3, 48, 128)
