package head

import (
	"math"

	igemm "github.com/headstart-ml/headstart/internal/gemm"
)

// softmaxRow32 overwrites the logits z (length K >= 1) with w times their softmax and
// returns their maximum m and s = Σ_c exp(z_c − m), so that log Σ_c exp(z_c) = m + log s:
//
//	z_c ← w · exp(z_c − m) / s
//
// The exponentials are float32 and s is summed in float64, as scikit-learn's
// HalfMultinomialLoss does for float32 data (sklearn/_loss/_loss.pyx.tp,
// sum_exp_minus_max). With AVX2 and FMA it runs in assembly, eight classes at a time,
// with the Cephes float32 exponential (relative error within 2 ulp; exp(x) = 0 for
// x < −87, where it is below 1.7e−38); otherwise in Go with math.Exp rounded to
// float32. The two agree to a few float32 ulps; either one gives the same bits for
// the same row every time.
func softmaxRow32(z []float32, w float64) (m float32, s float64) {
	if len(z) == 0 {
		panic("head: softmaxRow32: no classes")
	}
	if igemm.HaveKernel && !igemm.NoAssembly {
		return softmaxRow32Asm(z, w)
	}
	return softmaxRow32Go(z, w)
}

// softmaxRow32Go is softmaxRow32 in Go.
func softmaxRow32Go(z []float32, w float64) (m float32, s float64) {
	m = z[0]
	for _, v := range z[1:] {
		m = max(m, v)
	}
	for c, v := range z {
		e := float32(math.Exp(float64(v - m)))
		z[c] = e
		s += float64(e)
	}
	f := float32(w / s)
	for c := range z {
		z[c] *= f
	}
	return m, s
}

// softmaxRow64 overwrites the logits z (length K >= 1) with w times their softmax and
// returns their maximum m and s = Σ_c exp(z_c − m), in float64:
//
//	z_c ← exp(z_c − m) · (w / s)
//
// s summed in class order, each exponential math.Exp's. With AVX2 and FMA it runs in
// assembly, four classes at a time, with math.Exp's own method and operations (see
// softmax_amd64.s), so it gives the same bits as the Go loop; rows with a logit more
// than 708 below the maximum, or not finite, take the Go loop.
func softmaxRow64(z []float64, w float64) (m, s float64) {
	if len(z) == 0 {
		panic("head: softmaxRow64: no classes")
	}
	if igemm.HaveKernel && !igemm.NoAssembly {
		if m, s, ok := softmaxRow64Asm(z, w); ok {
			return m, s
		}
	}
	return softmaxRow64Go(z, w)
}

// softmaxRow64Go is softmaxRow64 in Go.
func softmaxRow64Go(z []float64, w float64) (m, s float64) {
	m = z[0]
	for _, v := range z[1:] {
		if v > m {
			m = v
		}
	}
	for c, v := range z {
		e := math.Exp(v - m)
		z[c] = e
		s += e
	}
	ws := w / s
	for c := range z {
		z[c] *= ws
	}
	return m, s
}
