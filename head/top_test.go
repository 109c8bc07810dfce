package head

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/headstart-ml/headstart/lora"
)

// topTestBlock returns a small random BERT block (C = 16, 4 heads, I = 32).
func topTestBlock(seed uint64) lora.Weights[float32] {
	rng := rand.New(rand.NewPCG(seed, 1))
	lin := func(in, out int) lora.Linear[float32] {
		l := lora.Linear[float32]{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
		for i := range l.W {
			l.W[i] = float32((2*rng.Float64() - 1) / math.Sqrt(float64(in)))
		}
		return l
	}
	norm := func() lora.LayerNorm[float32] {
		n := lora.LayerNorm[float32]{Gamma: make([]float32, 16), Beta: make([]float32, 16), Eps: 1e-12}
		for i := range n.Gamma {
			n.Gamma[i] = 1
		}
		return n
	}
	return lora.Weights[float32]{Query: lin(16, 16), Key: lin(16, 16), Value: lin(16, 16), AttentionOutput: lin(16, 16),
		Intermediate: lin(16, 32), Output: lin(32, 16), AttentionNorm: norm(), OutputNorm: norm()}
}

// TestLinearProbe: the classifier LinearProbe returns, put on the frozen blocks, gives
// the probabilities of the logistic regression it was fitted as (binary and
// multinomial), so fine-tuning starts exactly from the linear probe.
func TestLinearProbe(t *testing.T) {
	blocks := []lora.Weights[float32]{topTestBlock(1)}
	for _, k := range []int{2, 3} {
		rng := rand.New(rand.NewPCG(uint64(k), 2))
		ex := &lora.Examples{Offsets: []int64{0}}
		for i := range 60 {
			l := 2 + rng.IntN(5)
			y := i % k
			for range l * 16 {
				ex.Hidden = append(ex.Hidden, float32(rng.NormFloat64()+float64(y)*0.7))
			}
			ex.Offsets = append(ex.Offsets, ex.Offsets[len(ex.Offsets)-1]+int64(l))
			ex.Labels = append(ex.Labels, y)
		}
		classes := []string{"a", "b", "c"}[:k]
		w, b, err := LinearProbe(blocks, 4, ex, classes, 1)
		if err != nil {
			t.Fatal(err)
		}
		st, err := lora.NewStack(blocks, 4, w, b)
		if err != nil {
			t.Fatal(err)
		}
		probs := make([]float32, ex.Len()*k)
		if err := st.Probs(probs, ex, 16); err != nil {
			t.Fatal(err)
		}
		x := make([]float32, ex.Len()*16)
		if err := st.Pooled(x, ex, 16); err != nil {
			t.Fatal(err)
		}
		h, err := FitLogReg(Dataset{N: ex.Len(), D: 16, X: x, Labels: ex.Labels, Classes: classes}, LogRegSettings{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, len(probs))
		h.Predict(want, x, ex.Len())
		for i := range probs {
			if d := math.Abs(float64(probs[i] - want[i])); !(d < 1e-5) {
				t.Fatalf("k=%d: probability %d: stack %v, logistic regression %v", k, i, probs[i], want[i])
			}
		}
	}
}
