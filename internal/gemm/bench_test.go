package gemm

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkGemm(b *testing.B) {
	b.Run("float64", benchmarkGemm[float64])
	b.Run("float32", benchmarkGemm[float32])
}

func benchmarkGemm[T Float](b *testing.B) {
	const m, n, k = 2000, 77, 385
	rng := rand.New(rand.NewPCG(1, 2))
	a, w, c := randSliceOf[T](rng, m*k), randSliceOf[T](rng, n*k), make([]T, m*n)
	for _, impl := range []string{"kernel", "blas"} {
		b.Run(impl, func(b *testing.B) {
			NoAssembly = impl == "blas"
			defer func() { NoAssembly = false }()
			for b.Loop() {
				Gemm(false, true, m, n, k, a, k, w, k, 0, c, n, 1)
			}
			b.ReportMetric(2*m*n*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
