package head

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats"
)

// TestMLPGradient checks backward against central finite differences of the loss as
// a function of every parameter, with the dropout masks held fixed (gradTol explains
// the tolerance; GELU is smooth, so the same bound holds).
func TestMLPGradient(t *testing.T) {
	for _, tc := range []struct {
		name       string
		hidden     []int
		dropout    float64
		multiLabel bool
		balanced   bool
	}{
		{"one hidden", []int{6}, 0, false, false},
		{"two hidden dropout", []int{6, 5}, 0.3, false, false},
		{"class weights", []int{4}, 0.2, false, true},
		{"multi-label", []int{6, 4}, 0.25, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const rows, d, k = 9, 5, 3
			data := synthetic(rows, d, k, 2, false, 3)
			x := designMatrix(data.X, rows, d, nil, nil, false)
			xorig := slices.Clone(x)
			sizes := append(append([]int{d}, tc.hidden...), k)
			net := newMLP(sizes, tc.dropout, rows, 2)
			rng := newRNG(1)
			net.init(rng)
			net.drawDropout(rows, rng)
			bt := batchTargets{labels: data.Labels}
			if tc.balanced {
				bt.weight = []float64{0.5, 2, 1.25}
			}
			if tc.multiLabel {
				ml := multiLabel(data)
				bt.y = make([]float64, rows*k)
				for i, v := range ml.Y {
					bt.y[i] = float64(v)
				}
			}
			loss := func(params []float64) float64 {
				copy(net.params, params)
				net.forward(x, rows, true)
				return net.lossGrad(rows, bt)
			}
			params := slices.Clone(net.params)
			num := fd.Gradient(nil, loss, params, &fd.Settings{Formula: fd.Central})

			copy(net.params, params)
			net.forward(x, rows, true)
			net.lossGrad(rows, bt)
			net.zeroGrad()
			net.backward(rows, true)
			if dist := floats.Distance(net.grads, num, math.Inf(1)); !(dist <= gradTol) {
				t.Errorf("|analytic − numeric|∞ = %g > %g", dist, gradTol)
			}
			if !slices.Equal(x, xorig) {
				t.Errorf("forward or backward modified the input")
			}
			// backward accumulates: a second call doubles the gradient.
			once := slices.Clone(net.grads)
			net.backward(rows, true)
			floats.Scale(2, once)
			if !floats.EqualApprox(net.grads, once, 1e-12) {
				t.Errorf("backward does not accumulate")
			}
		})
	}
}

func TestGELU(t *testing.T) {
	// Python: [0.5*x*(1+math.erf(x/math.sqrt(2))) for x in (-3, -1, -0.5, 0, 0.5, 1, 3)]
	in := []float64{-3, -1, -0.5, 0, 0.5, 1, 3}
	want := []float64{-0.00404969409489031, -0.15865525393145707, -0.15426876936299344, 0,
		0.34573123063700656, 0.8413447460685429, 2.99595030590511}
	for i, x := range in {
		if got := gelu(x); !(math.Abs(got-want[i]) <= 1e-15) {
			t.Errorf("gelu(%v) = %v, want %v", x, got, want[i])
		}
		num := fd.Derivative(gelu, x, &fd.Settings{Formula: fd.Central})
		if g := geluGrad(x); !(math.Abs(g-num) <= gradTol) {
			t.Errorf("gelu'(%v) = %v, numeric %v", x, g, num)
		}
	}
}

func TestMLPFit(t *testing.T) {
	all := synthetic(1000, 16, 4, 3, false, 11)
	train := all.subset(seq(0, 800))
	valid := all.subset(seq(800, 1000))
	for _, tc := range []struct {
		name   string
		d      Dataset
		valid  *Dataset
		s      MLPSettings
		minAcc float64
	}{
		{"held-out", train, nil, MLPSettings{Hidden: []int{32}, Dropout: 0.1, Standardize: true, MaxEpochs: 40}, 0.9},
		{"validation set", train, &valid, MLPSettings{Hidden: []int{32, 16}, LearningRate: 3e-3, MaxEpochs: 40, ClassWeight: Balanced}, 0.9},
		{"no early stopping", train, nil, MLPSettings{Hidden: []int{16}, ValidFraction: -1, MaxEpochs: 15}, 0.9},
		{"multi-label", multiLabel(train), nil, MLPSettings{Hidden: []int{32}, MaxEpochs: 40}, 0.6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			epochs := 0
			tc.s.Progress = func(p Progress) { epochs = p.Iter }
			x := slices.Clone(tc.d.X)
			h, err := FitMLP(tc.d, tc.valid, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(x, tc.d.X) {
				t.Errorf("FitMLP modified the data")
			}
			if epochs != h.Summary.Epochs || h.Summary.BestEpoch < 1 || h.Summary.BestEpoch > h.Summary.Epochs {
				t.Errorf("epochs: progress %d, summary %+v", epochs, h.Summary)
			}
			if len(h.Layers) != len(tc.s.Hidden)+1 || h.Layers[0].Act != GELU || h.Layers[len(h.Layers)-1].Act != Identity {
				t.Errorf("layers %+v", h.Layers)
			}
			eval := tc.d
			if tc.valid != nil {
				eval = *tc.valid
			}
			if acc := h.accuracy(&eval); !(acc >= tc.minAcc) {
				t.Errorf("accuracy %.3f < %.3f (%+v)", acc, tc.minAcc, h.Summary)
			}
		})
	}
}

// TestMLPDeterministic: the same seed gives the same bits whatever the thread count;
// another seed gives other weights.
func TestMLPDeterministic(t *testing.T) {
	d := synthetic(300, 12, 3, 2, false, 5)
	fit := func(seed uint64, threads int) *Head {
		h, err := FitMLP(d, nil, MLPSettings{Hidden: []int{64, 8}, Dropout: 0.2, MaxEpochs: 5, Seed: seed, Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b, c := fit(1, 1), fit(1, 3), fit(2, 1)
	for l := range a.Layers {
		if !slices.Equal(a.Layers[l].W, b.Layers[l].W) || !slices.Equal(a.Layers[l].B, b.Layers[l].B) {
			t.Fatalf("layer %d differs between 1 and 3 threads", l)
		}
	}
	if slices.Equal(a.Layers[0].W, c.Layers[0].W) {
		t.Errorf("seeds 1 and 2 gave the same weights")
	}
}

func TestMLPBadInput(t *testing.T) {
	d := synthetic(50, 4, 2, 2, false, 1)
	other := synthetic(20, 5, 2, 2, false, 1)
	unseen := synthetic(20, 4, 3, 2, false, 1)
	ml := multiLabel(synthetic(50, 4, 3, 2, false, 1))
	for _, tc := range []struct {
		name  string
		d     Dataset
		valid *Dataset
		s     MLPSettings
		err   error
		msg   string
	}{
		{"three hidden", d, nil, MLPSettings{Hidden: []int{4, 4, 4}}, ErrBadSetting, "3 hidden layers"},
		{"zero width", d, nil, MLPSettings{Hidden: []int{0}}, ErrBadSetting, "width 0"},
		{"dropout 1", d, nil, MLPSettings{Dropout: 1}, ErrBadSetting, "dropout 1"},
		{"dropout negative", d, nil, MLPSettings{Dropout: -0.1}, ErrBadSetting, "dropout -0.1"},
		{"learning rate", d, nil, MLPSettings{LearningRate: -1}, ErrBadSetting, "learning rate -1"},
		{"valid fraction", d, nil, MLPSettings{ValidFraction: 1}, ErrBadSetting, "validation fraction 1"},
		{"valid dimension", d, &other, MLPSettings{}, ErrDimension, "5 columns"},
		{"valid unseen label", d, &unseen, MLPSettings{}, ErrUnseenLabel, `"Ca"`},
		{"balanced multi-label", ml, nil, MLPSettings{ClassWeight: Balanced}, ErrBadSetting, "multi-label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FitMLP(tc.d, tc.valid, tc.s)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v; want %v containing %q", err, tc.err, tc.msg)
			}
		})
	}
}

func seq(lo, hi int) []int {
	s := make([]int, hi-lo)
	for i := range s {
		s[i] = lo + i
	}
	return s
}
