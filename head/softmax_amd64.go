package head

// softmaxRow32Asm is softmaxRow32 on AVX2 and FMA (softmax_amd64.s); z must not be empty.
//
//go:noescape
func softmaxRow32Asm(z []float32, w float64) (m float32, s float64)

// softmaxRow64Asm is softmaxRow64 on AVX2 and FMA (softmax_amd64.s), for rows whose
// logits are all within 708 of their maximum (none NaN or infinite): ok is false, and
// z untouched, otherwise. z must not be empty.
//
//go:noescape
func softmaxRow64Asm(z []float64, w float64) (m, s float64, ok bool)
