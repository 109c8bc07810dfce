package head

import (
	"fmt"
	"testing"
)

// BenchmarkFitLogReg fits scikit-learn's default logistic regression (C=1, tol=1e-4,
// max_iter=100) on synthetic embeddings of Banking77's shape and smaller ones, in both
// precisions, on one thread and on GOMAXPROCS.
func BenchmarkFitLogReg(b *testing.B) {
	for _, sz := range []struct{ n, d, k int }{{1000, 384, 10}, {2000, 384, 77}, {10000, 384, 77}} {
		d := synthetic(sz.n, sz.d, sz.k, 1.5, false, 1)
		for _, run := range []struct {
			prec    Precision
			threads int
		}{{Float32, 1}, {Float64, 1}, {Float32, 0}, {Float64, 0}} {
			name := fmt.Sprintf("n=%d/d=%d/k=%d/%v/threads=%d", sz.n, sz.d, sz.k, run.prec, run.threads)
			if run.threads == 0 {
				name = fmt.Sprintf("n=%d/d=%d/k=%d/%v/threads=max", sz.n, sz.d, sz.k, run.prec)
			}
			b.Run(name, func(b *testing.B) {
				var iters int
				for b.Loop() {
					h, err := FitLogReg(d, LogRegSettings{Precision: run.prec, Threads: run.threads})
					if err != nil {
						b.Fatal(err)
					}
					iters = h.Summary.Iterations
				}
				b.ReportMetric(float64(iters), "iterations")
			})
		}
	}
}

// BenchmarkLossGrad is one evaluation of the multinomial objective and its gradient.
func BenchmarkLossGrad(b *testing.B) {
	for _, sz := range []struct{ n, d, k int }{{2000, 384, 77}, {10000, 384, 77}} {
		d := synthetic(sz.n, sz.d, sz.k, 1.5, false, 1)
		theta := make([]float64, sz.k*(sz.d+1))
		for i := range theta {
			theta[i] = float64(i%7) * 1e-3
		}
		grad := make([]float64, len(theta))
		for _, prec := range []Precision{Float32, Float64} {
			var p *linProblem
			if prec == Float32 {
				p = newLinProblem(nil, designMatrix32(d.X, d.N, d.D, nil, nil, true), d.N, d.D, true, d.Labels, nil, sz.k, Uniform, 1, 1)
			} else {
				p = newLinProblem(designMatrix(d.X, d.N, d.D, nil, nil, true), nil, d.N, d.D, true, d.Labels, nil, sz.k, Uniform, 1, 1)
			}
			b.Run(fmt.Sprintf("n=%d/d=%d/k=%d/%v/threads=1", sz.n, sz.d, sz.k, prec), func(b *testing.B) {
				for b.Loop() {
					p.lossGrad(grad, theta)
				}
				b.ReportMetric(4*float64(sz.n*(sz.d+1)*sz.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkPredict(b *testing.B) {
	d := synthetic(4000, 384, 77, 1.5, false, 1)
	h, err := FitLogReg(d, LogRegSettings{MaxIter: 5})
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, d.N*77)
	for b.Loop() {
		h.Predict(dst, d.X, d.N)
	}
	b.ReportMetric(float64(d.N)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkFitMLP trains one epoch-bounded MLP on Banking77-shaped data.
func BenchmarkFitMLP(b *testing.B) {
	d := synthetic(2000, 384, 77, 1.5, false, 1)
	for b.Loop() {
		if _, err := FitMLP(d, nil, MLPSettings{MaxEpochs: 3}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLossGradBinary is one evaluation of the binary objective and its gradient
// (one weight vector), at SST-2's size and Banking77's.
func BenchmarkLossGradBinary(b *testing.B) {
	for _, n := range []int{10000, 67349} {
		const dim = 384
		d := synthetic(n, dim, 2, 1.5, false, 1)
		t := make([]float64, n)
		for i, l := range d.Labels {
			t[i] = float64(l)
		}
		theta := make([]float64, dim+1)
		for i := range theta {
			theta[i] = float64(i%7-3) * 1e-2
		}
		grad := make([]float64, len(theta))
		for _, prec := range []Precision{Float32, Float64} {
			var p *linProblem
			if prec == Float32 {
				p = newLinProblem(nil, designMatrix32(d.X, d.N, d.D, nil, nil, true), d.N, d.D, true, nil, t, 2, Uniform, 1, 1)
			} else {
				p = newLinProblem(designMatrix(d.X, d.N, d.D, nil, nil, true), nil, d.N, d.D, true, nil, t, 2, Uniform, 1, 1)
			}
			b.Run(fmt.Sprintf("n=%d/d=%d/%v/threads=1", n, dim, prec), func(b *testing.B) {
				for b.Loop() {
					p.lossGrad(grad, theta)
				}
				b.ReportMetric(4*float64(n*(dim+1))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
