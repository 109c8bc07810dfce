//go:build !amd64

package head

func softmaxRow32Asm(z []float32, w float64) (m float32, s float64) {
	panic("head: softmaxRow32Asm needs amd64")
}

func softmaxRow64Asm(z []float64, w float64) (m, s float64, ok bool) {
	panic("head: softmaxRow64Asm needs amd64")
}
