package head

import (
	"math"
	"math/rand/v2"
)

// synthetic returns n rows of d features in k classes, like pooled sentence
// embeddings: class c's rows scatter around a mean drawn from N(0, sep²/d·I) with
// N(0, 1/d·I) noise and a shared offset (embeddings are not centred). Row i has class
// i mod k when the classes are balanced; with skew the class sizes fall off
// geometrically.
func synthetic(n, d, k int, sep float64, skew bool, seed uint64) Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	means := make([]float64, k*d)
	offset := make([]float64, d)
	for j := range offset {
		offset[j] = 0.3 * rng.NormFloat64()
	}
	for i := range means {
		means[i] = sep * rng.NormFloat64() / math.Sqrt(float64(d))
	}
	ds := Dataset{N: n, D: d, X: make([]float32, n*d), Labels: make([]int, n)}
	for c := range k {
		ds.Classes = append(ds.Classes, string(rune('A'+c%26))+string(rune('a'+c/26)))
	}
	for i := range n {
		c := i % k
		if skew {
			// P(c) ∝ 2^-c, but every class keeps at least one row.
			c = min(int(-math.Log2(rng.Float64())), k-1)
			if i < k {
				c = i
			}
		}
		ds.Labels[i] = c
		for j := range d {
			ds.X[i*d+j] = float32(offset[j] + means[c*d+j] + rng.NormFloat64()/math.Sqrt(float64(d)))
		}
	}
	return ds
}

// multiLabel turns a single-label data set into a multi-label one: every row keeps its
// class and also carries the next class when its first feature is positive.
func multiLabel(d Dataset) Dataset {
	k := len(d.Classes)
	d.Y = make([]float32, d.N*k)
	for i, c := range d.Labels {
		d.Y[i*k+c] = 1
		if d.X[i*d.D] > 0 {
			d.Y[i*k+(c+1)%k] = 1
		}
	}
	d.Labels = nil
	return d
}
