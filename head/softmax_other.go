//go:build !amd64

package head

func softmaxRow32Asm(z []float32, w float64) (m float32, s float64) {
	panic("head: softmaxRow32Asm needs amd64")
}
