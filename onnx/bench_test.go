package onnx

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// BenchmarkRun runs all-MiniLM-L6-v2 on random token ids, per batch shape,
// returning last_hidden_state (plain) or all 7 hidden states (exposed).
func BenchmarkRun(b *testing.B) {
	requireRuntime(b)
	path := requireModel(b, defaultModel)
	m, err := LoadModel(path)
	if err != nil {
		b.Fatal(err)
	}
	hs, err := m.HiddenStates()
	if err != nil {
		b.Fatal(err)
	}
	if err := m.ExposeOutputs(hs...); err != nil {
		b.Fatal(err)
	}
	exposed, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, variant := range []string{"plain", "exposed"} {
		var sess *Session
		if variant == "plain" {
			sess, err = NewSessionFromFile(path, nil, nil, SessionOptions{})
		} else {
			sess, err = NewSessionFromBytes(exposed, nil, hs, SessionOptions{})
		}
		if err != nil {
			b.Fatal(err)
		}
		for _, bt := range [][2]int{{1, 16}, {8, 64}, {32, 128}} {
			b.Run(fmt.Sprintf("%s/batch=%d/seq=%d", variant, bt[0], bt[1]), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				n := bt[0] * bt[1]
				shape := []int64{int64(bt[0]), int64(bt[1])}
				ids, mask, types := make([]int64, n), make([]int64, n), make([]int64, n)
				for i := range ids {
					ids[i] = 1000 + rng.Int64N(29000)
					mask[i] = 1
				}
				in := []Int64Tensor{{shape, ids}, {shape, mask}, {shape, types}}
				var dst []Float32Tensor
				b.ReportAllocs()
				for b.Loop() {
					if dst, err = sess.Run(dst, in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
		if err := sess.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunShortTexts is the serving case: 18-token texts (a Banking77
// query's length) on one single-threaded session, one text per forward or
// several padded into one, for the fp32 model and its int8 export. Its
// texts/s per batch size bound what micro-batching can gain per core (see
// BENCHMARKS.md, serving).
func BenchmarkRunShortTexts(b *testing.B) {
	requireRuntime(b)
	for _, model := range []string{defaultModel, defaultModel + "-q"} {
		b.Run(model, func(b *testing.B) {
			path := requireModel(b, model)
			sess, err := NewSessionFromFile(path, nil, nil, SessionOptions{IntraOpThreads: 1, InterOpThreads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer sess.Close()
			const seq = 18
			for _, batch := range []int{1, 2, 4, 8, 16, 32} {
				b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
					rng := rand.New(rand.NewPCG(1, 2))
					n := batch * seq
					shape := []int64{int64(batch), seq}
					ids, mask, types := make([]int64, n), make([]int64, n), make([]int64, n)
					for i := range ids {
						ids[i] = 1000 + rng.Int64N(29000)
						mask[i] = 1
					}
					in := []Int64Tensor{{shape, ids}, {shape, mask}, {shape, types}}
					var dst []Float32Tensor
					for b.Loop() {
						if dst, err = sess.Run(dst, in); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "texts/s")
				})
			}
		})
	}
}

// BenchmarkBlockWeights reads block 0's weights: of the random MPNet fixture (its
// blocks need the encoder's relative position bias), of its dynamo export (whose
// module names are rebuilt from the parameters), and of all-MiniLM-L6-v2.
func BenchmarkBlockWeights(b *testing.B) {
	for _, c := range []struct{ name, path string }{
		{"mpnet-random", filepath.Join(mpnetFixture, "model.onnx")},
		{"mpnet-random-dynamo", filepath.Join(mpnetFixture+"-dynamo", "model.onnx")},
		{defaultModel, requireModel(b, defaultModel)},
	} {
		b.Run(c.name, func(b *testing.B) {
			m, err := LoadModel(c.path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.BlockWeights(0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
