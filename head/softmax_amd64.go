package head

// softmaxRow32Asm is softmaxRow32 on AVX2 and FMA (softmax_amd64.s); z must not be empty.
//
//go:noescape
func softmaxRow32Asm(z []float32, w float64) (m float32, s float64)
