#include "textflag.h"

// Matrix-vector kernels on four rows of X at once (rows ld bytes apart, the first at
// x), over n columns, n a multiple of twice the register width (16 float32, 8 float64).
//
// dot4: z[r] = Σ_j x_r[j]·w[j] for r = 0..3. Each row sums into two accumulators (even
// and odd register blocks of columns), added at the end, then reduced across lanes in
// a fixed order.
//
// axpy4: dst[j] += g0·x0[j] + g1·x1[j] + g2·x2[j] + g3·x3[j], as four fused
// multiply-adds in row order (the order of four one-row updates).

// DOTSTEP multiplies one register block of w (at off) by the four rows' blocks.
#define DOTSTEP(LOAD, FMA, off, W, r0, r1, r2, r3) \
	LOAD off(DI), W; \
	FMA off(SI), W, r0; \
	FMA off(SI)(R10*1), W, r1; \
	FMA off(R11), W, r2; \
	FMA off(R11)(R10*1), W, r3

#define AXPYSTEP(LOAD, FMA, STORE, off, D) \
	LOAD off(DI), D; \
	FMA off(SI), Y4, D; \
	FMA off(SI)(R10*1), Y5, D; \
	FMA off(R11), Y6, D; \
	FMA off(R11)(R10*1), Y7, D; \
	STORE D, off(DI)

// PREFETCH asks for the cache lines of the four rows PFROWS rows below the ones being
// read, at the same columns (R12 and R13 track them as SI and R11 do the rows): the
// binary objective's sweep (DotAxpyRows) spends time on each block of rows after its
// dot products, and the lines asked for here arrive meanwhile. Prefetches do not fault,
// so asking past the end of X is harmless.
#define PFROWS 4
#define PREFETCH \
	PREFETCHT0 (R12); \
	PREFETCHT0 (R12)(R10*1); \
	PREFETCHT0 (R13); \
	PREFETCHT0 (R13)(R10*1)

#define PFSETUP \
	MOVQ R10, R12; \
	IMULQ $PFROWS, R12; \
	LEAQ (R11)(R12*1), R13; \
	ADDQ SI, R12

// Arguments: n+0(FP) columns, x+8(FP), ld+16(FP) (elements), then the vector V
// (w or dst) at +24(FP) and z or alpha at +32(FP). SHIFT is log2 of the element size.
#define SETUP(SHIFT, V) \
	MOVQ n+0(FP), CX; \
	MOVQ x+8(FP), SI; \
	MOVQ ld+16(FP), R10; \
	SHLQ $SHIFT, R10; \
	LEAQ (SI)(R10*2), R11; \
	MOVQ V+24(FP), DI

// func dot4x32(n int, x *float32, ld int, w *float32, z *float32)
TEXT ·dot4x32(SB), NOSPLIT, $0-40
	SETUP(2, w)
	PFSETUP
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	SHRQ $4, CX
	JEQ dot32done
dot32loop:
	PREFETCH
	DOTSTEP(VMOVUPS, VFMADD231PS, 0, Y8, Y0, Y1, Y2, Y3)
	DOTSTEP(VMOVUPS, VFMADD231PS, 32, Y9, Y4, Y5, Y6, Y7)
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, R12
	ADDQ $64, R13
	ADDQ $64, DI
	DECQ CX
	JNZ dot32loop
dot32done:
	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	// Lanes: hadd pairs, then the two 128-bit halves: z = [Σ row0, Σ row1, Σ row2, Σ row3].
	VHADDPS Y1, Y0, Y0
	VHADDPS Y3, Y2, Y2
	VHADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	MOVQ z+32(FP), DX
	VMOVUPS X0, (DX)
	VZEROUPPER
	RET

// func axpy4x32(n int, x *float32, ld int, dst *float32, alpha *float32)
TEXT ·axpy4x32(SB), NOSPLIT, $0-40
	SETUP(2, dst)
	MOVQ alpha+32(FP), DX
	VBROADCASTSS 0(DX), Y4
	VBROADCASTSS 4(DX), Y5
	VBROADCASTSS 8(DX), Y6
	VBROADCASTSS 12(DX), Y7
	SHRQ $4, CX
	JEQ axpy32done
axpy32loop:
	AXPYSTEP(VMOVUPS, VFMADD231PS, VMOVUPS, 0, Y0)
	AXPYSTEP(VMOVUPS, VFMADD231PS, VMOVUPS, 32, Y1)
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, DI
	DECQ CX
	JNZ axpy32loop
axpy32done:
	VZEROUPPER
	RET

// func dot4x64(n int, x *float64, ld int, w *float64, z *float64)
TEXT ·dot4x64(SB), NOSPLIT, $0-40
	SETUP(3, w)
	PFSETUP
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	SHRQ $3, CX
	JEQ dot64done
dot64loop:
	PREFETCH
	DOTSTEP(VMOVUPD, VFMADD231PD, 0, Y8, Y0, Y1, Y2, Y3)
	DOTSTEP(VMOVUPD, VFMADD231PD, 32, Y9, Y4, Y5, Y6, Y7)
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, R12
	ADDQ $64, R13
	ADDQ $64, DI
	DECQ CX
	JNZ dot64loop
dot64done:
	VADDPD Y4, Y0, Y0
	VADDPD Y5, Y1, Y1
	VADDPD Y6, Y2, Y2
	VADDPD Y7, Y3, Y3
	// Lanes: hadd pairs gives [r0 01, r1 01 | r0 23, r1 23] and [r2.., r3..]; then swap
	// and add the halves: z = [Σ row0, Σ row1, Σ row2, Σ row3].
	VHADDPD Y1, Y0, Y0
	VHADDPD Y3, Y2, Y2
	VPERM2F128 $0x20, Y2, Y0, Y8
	VPERM2F128 $0x31, Y2, Y0, Y9
	VADDPD Y9, Y8, Y8
	MOVQ z+32(FP), DX
	VMOVUPD Y8, (DX)
	VZEROUPPER
	RET

// func axpy4x64(n int, x *float64, ld int, dst *float64, alpha *float64)
TEXT ·axpy4x64(SB), NOSPLIT, $0-40
	SETUP(3, dst)
	MOVQ alpha+32(FP), DX
	VBROADCASTSD 0(DX), Y4
	VBROADCASTSD 8(DX), Y5
	VBROADCASTSD 16(DX), Y6
	VBROADCASTSD 24(DX), Y7
	SHRQ $3, CX
	JEQ axpy64done
axpy64loop:
	AXPYSTEP(VMOVUPD, VFMADD231PD, VMOVUPD, 0, Y0)
	AXPYSTEP(VMOVUPD, VFMADD231PD, VMOVUPD, 32, Y1)
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, DI
	DECQ CX
	JNZ axpy64loop
axpy64done:
	VZEROUPPER
	RET

// Widening kernels: X is float32, read four values at a time and widened exactly to
// float64 (VCVTPS2PD), then multiplied and summed in float64 in the order of dot4x64 and
// axpy4x64, so that they give the bits those give on a float64 copy of X while reading
// half the bytes. n is a multiple of 8; ld counts float32 elements.

// WDOTSTEP is DOTSTEP for float32 rows: xoff is the block's byte offset in the rows,
// woff in w.
#define WDOTSTEP(xoff, woff, W, r0, r1, r2, r3) \
	VMOVUPD woff(DI), W; \
	VCVTPS2PD xoff(SI), Y10; \
	VCVTPS2PD xoff(SI)(R10*1), Y11; \
	VCVTPS2PD xoff(R11), Y12; \
	VCVTPS2PD xoff(R11)(R10*1), Y13; \
	VFMADD231PD Y10, W, r0; \
	VFMADD231PD Y11, W, r1; \
	VFMADD231PD Y12, W, r2; \
	VFMADD231PD Y13, W, r3

#define WAXPYSTEP(xoff, doff, D) \
	VMOVUPD doff(DI), D; \
	VCVTPS2PD xoff(SI), Y10; \
	VCVTPS2PD xoff(SI)(R10*1), Y11; \
	VCVTPS2PD xoff(R11), Y12; \
	VCVTPS2PD xoff(R11)(R10*1), Y13; \
	VFMADD231PD Y10, Y4, D; \
	VFMADD231PD Y11, Y5, D; \
	VFMADD231PD Y12, Y6, D; \
	VFMADD231PD Y13, Y7, D; \
	VMOVUPD D, doff(DI)

// func dot4x32to64(n int, x *float32, ld int, w *float64, z *float64)
TEXT ·dot4x32to64(SB), NOSPLIT, $0-40
	SETUP(2, w)
	PFSETUP
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	SHRQ $3, CX
	JEQ wdotdone
wdotloop:
	// One prefetch per two steps: a step reads 32 bytes of each row.
	TESTQ $1, CX
	JEQ wdotnopf
	PREFETCH
	ADDQ $64, R12
	ADDQ $64, R13
wdotnopf:
	WDOTSTEP(0, 0, Y8, Y0, Y1, Y2, Y3)
	WDOTSTEP(16, 32, Y9, Y4, Y5, Y6, Y7)
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $64, DI
	DECQ CX
	JNZ wdotloop
wdotdone:
	VADDPD Y4, Y0, Y0
	VADDPD Y5, Y1, Y1
	VADDPD Y6, Y2, Y2
	VADDPD Y7, Y3, Y3
	VHADDPD Y1, Y0, Y0
	VHADDPD Y3, Y2, Y2
	VPERM2F128 $0x20, Y2, Y0, Y8
	VPERM2F128 $0x31, Y2, Y0, Y9
	VADDPD Y9, Y8, Y8
	MOVQ z+32(FP), DX
	VMOVUPD Y8, (DX)
	VZEROUPPER
	RET

// func axpy4x32to64(n int, x *float32, ld int, dst *float64, alpha *float64)
TEXT ·axpy4x32to64(SB), NOSPLIT, $0-40
	SETUP(2, dst)
	MOVQ alpha+32(FP), DX
	VBROADCASTSD 0(DX), Y4
	VBROADCASTSD 8(DX), Y5
	VBROADCASTSD 16(DX), Y6
	VBROADCASTSD 24(DX), Y7
	SHRQ $3, CX
	JEQ waxpydone
waxpyloop:
	WAXPYSTEP(0, 0, Y0)
	WAXPYSTEP(16, 32, Y1)
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $64, DI
	DECQ CX
	JNZ waxpyloop
waxpydone:
	VZEROUPPER
	RET
