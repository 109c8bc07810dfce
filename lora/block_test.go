package lora

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// gradTol bounds ‖analytic − numeric‖∞ / max(1, ‖numeric‖∞) in the float64
// gradient checks. Central differences with gonum's step (6e-6) on a loss
// of order 10 are accurate to about 1e-9 in float64 (round-off ε·|L|/h ≈
// 2e-10 plus truncation h²·|f”'|/6 ≈ 1e-11); a missing or wrong term in a
// backward is off by 1e-3 or more.
const gradTol = 1e-7

// Tiny block for the gradient checks: two heads of width 4.
const (
	tinyC     = 8
	tinyHeads = 2
	tinyI     = 16
)

// tinyCase is one gradient-check configuration.
type tinyCase struct {
	name     string
	rows     Rows
	slots    int
	settings Settings
	randB    bool // give the adapters a random B (PEFT starts at 0, which hides dA)
	train    bool
	relBias  bool // add an MPNet relative position bias (tinyRelBias)
}

var allTargets = TargetQuery | TargetKey | TargetValue | TargetOutput | TargetFFN

func tinyCases() []tinyCase {
	return []tinyCase{
		{name: "full/padded", rows: Padded(5, []int{5, 3}), slots: 10, settings: Settings{Heads: tinyHeads}},
		{name: "full/packed", rows: Packed([]int{4, 1, 3}), slots: 8, settings: Settings{Heads: tinyHeads}},
		{name: "full/gaps", rows: Rows{Start: []int{1, 6, 9}, Len: []int{4, 3, 0}}, slots: 10, settings: Settings{Heads: tinyHeads}},
		{name: "frozen", rows: Padded(5, []int{5, 3}), slots: 10, settings: Settings{Heads: tinyHeads, FreezeBase: true}},
		{name: "lora/all", rows: Padded(5, []int{5, 3}), slots: 10, randB: true,
			settings: Settings{Heads: tinyHeads, LoRA: LoRA{Rank: 2, Alpha: 4, Targets: allTargets}}},
		{name: "lora/dropout", rows: Padded(5, []int{5, 3}), slots: 10, randB: true, train: true,
			settings: Settings{Heads: tinyHeads, LoRA: LoRA{Rank: 3, Alpha: 6, Dropout: 0.3, Targets: TargetQuery | TargetValue | TargetFFN}, Seed: 3}},
		{name: "relbias/full/padded", rows: Padded(5, []int{5, 3}), slots: 10, relBias: true, settings: Settings{Heads: tinyHeads}},
		{name: "relbias/full/gaps", rows: Rows{Start: []int{1, 6, 9}, Len: []int{4, 3, 0}}, slots: 10, relBias: true, settings: Settings{Heads: tinyHeads}},
		{name: "relbias/lora/all", rows: Padded(5, []int{5, 3}), slots: 10, randB: true, relBias: true,
			settings: Settings{Heads: tinyHeads, LoRA: LoRA{Rank: 2, Alpha: 4, Targets: allTargets}}},
	}
}

// tinyRelBias is a random MPNet-style relative position bias for the tiny
// block: 8 buckets and max distance 4, so that sequences of 5 reach the
// exact buckets (|r| < 2), the logarithmic ones and the cap, in both
// directions. Values of order 1, so that the bias moves the softmax.
func tinyRelBias[F Float](seed uint64) *RelativeBias[F] {
	rng := rand.New(rand.NewPCG(seed, 7))
	return &RelativeBias[F]{Table: randSlice[F](rng, 8*tinyHeads, 1), Buckets: 8, MaxDistance: 4}
}

// setup builds the case's float64 block with its input and output
// gradient (NaN on padding slots), and a loss function L = Σ dy·y over the
// sequences' slots that reseeds dropout before each Forward, so that every
// evaluation draws the same mask.
func (tc tinyCase) setup(t *testing.T) (b *Block[float64], x, dy []float64, loss func() float64) {
	t.Helper()
	w := randWeights[float64](1, tinyC, tinyI)
	if tc.relBias {
		w.RelativeBias = tinyRelBias[float64](5)
	}
	b, err := NewBlock(w, tc.settings)
	if err != nil {
		t.Fatal(err)
	}
	b.Train = tc.train
	rng := rand.New(rand.NewPCG(2, 2))
	if tc.randB {
		for _, a := range b.Adapters() {
			if a != nil {
				for i := range a.B {
					a.B[i] = (2*rng.Float64() - 1) * 0.5
				}
			}
		}
	}
	x = randSlice[float64](rng, tc.slots*tinyC, 1)
	dy = randSlice[float64](rng, tc.slots*tinyC, 1)
	padNaN(x, tc.rows, tinyC)
	padNaN(dy, tc.rows, tinyC)
	in := inRows(tc.rows, tc.slots)
	y := make([]float64, len(x))
	loss = func() float64 {
		b.rng = rand.New(rand.NewPCG(9, 9))
		b.Forward(y, x, tc.rows)
		var l float64
		for s, ok := range in {
			if ok {
				for j := range tinyC {
					l += dy[s*tinyC+j] * y[s*tinyC+j]
				}
			}
		}
		return l
	}
	return b, x, dy, loss
}

// TestGradients checks every gradient of the block (each parameter, with and
// without adapters and dropout, and the input) against central finite
// differences of L = Σ dy·y, in float64.
func TestGradients(t *testing.T) {
	for _, tc := range tinyCases() {
		t.Run(tc.name, func(t *testing.T) {
			b, x, dy, loss := tc.setup(t)
			xBefore, dyBefore, wBefore := slices.Clone(x), slices.Clone(dy), cloneAll(weightSlices(b.W))

			b.ZeroGrad()
			loss()
			const sentinel = 7
			dx := make([]float64, len(x))
			in := inRows(tc.rows, tc.slots)
			for s, ok := range in {
				if !ok {
					for j := range tinyC {
						dx[s*tinyC+j] = sentinel
					}
				}
			}
			b.Backward(dx, dy, tc.rows)
			if !sameBits(x, xBefore) || !sameBits(dy, dyBefore) {
				t.Error("Forward or Backward modified x or dy")
			}
			checkUnchanged(t, "weights", wBefore, weightSlices(b.W))

			params := b.Params()
			worst := 0.0
			var names []string
			for _, p := range params {
				names = append(names, p.Name)
				analytic := slices.Clone(p.Grad)
				worst = max(worst, checkGrad(t, p.Name, analytic, numericGrad(p.Value, loss)))
			}

			// The input: padding slots keep the sentinel (dx accumulates
			// only on the sequences' slots); elsewhere compare with the
			// numeric gradient, which is 0 on padding (x there is NaN and
			// ignored).
			numeric := numericGrad(x, loss)
			var got, want []float64
			for s, ok := range in {
				for j := range tinyC {
					i := s*tinyC + j
					if ok {
						got, want = append(got, dx[i]), append(want, numeric[i])
					} else if dx[i] != sentinel || numeric[i] != 0 {
						t.Fatalf("padding slot %d: dx = %v (want untouched %v), numeric %v (want 0)", s, dx[i], float64(sentinel), numeric[i])
					}
				}
			}
			worst = max(worst, checkGrad(t, "x", got, want))
			t.Logf("%d parameters and x: worst ‖analytic − numeric‖∞/max(1, ‖numeric‖∞) = %.2g (tolerance %g); %s",
				len(params), worst, gradTol, strings.Join(names, ", "))
		})
	}
}

// checkGrad fails unless ‖analytic − numeric‖∞ <= gradTol·max(1, ‖numeric‖∞)
// (NaN fails). It returns the relative error.
func checkGrad(t *testing.T, name string, analytic, numeric []float64) float64 {
	t.Helper()
	d, scale := testutil.MaxAbsDiff(analytic, numeric), max(1, infNorm(numeric))
	if !(d <= gradTol*scale) {
		i := 0
		for j := range analytic {
			if math.Abs(analytic[j]-numeric[j]) > math.Abs(analytic[i]-numeric[i]) || math.IsNaN(analytic[j]) {
				i = j
			}
		}
		t.Errorf("%s: ‖analytic − numeric‖∞ = %.3g > %.0e·%.3g; worst at %d: analytic %v, numeric %v",
			name, d, gradTol, scale, i, analytic[i], numeric[i])
		return d / scale
	}
	if infNorm(numeric) == 0 && len(numeric) > 0 {
		t.Errorf("%s: numeric gradient is all zero; the check proves nothing", name)
	}
	return d / scale
}

// TestBackwardAccumulates: a second Backward adds the same gradients again;
// ZeroGrad clears them.
func TestBackwardAccumulates(t *testing.T) {
	tc := tinyCases()[4] // lora/all: adapters and ...
	tc.settings.LoRA.Rank = 0
	for _, frozen := range []bool{false, true} {
		tc.settings.FreezeBase = frozen
		b, x, dy, loss := tc.setup(t)
		for i := range dy {
			if math.IsNaN(dy[i]) {
				dy[i], x[i] = 0, 0
			}
		}
		b.ZeroGrad()
		loss()
		dx1 := make([]float64, len(x))
		b.Backward(dx1, dy, tc.rows)
		var once [][]float64
		for _, p := range b.Params() {
			once = append(once, slices.Clone(p.Grad))
		}
		dx2 := slices.Clone(dx1)
		b.Backward(dx2, dy, tc.rows)
		// The BLAS adds the products into the gradient term by term, so
		// g + g is rounded differently from 2·g: float64 rounding, 1e-14.
		const tol = 1e-14
		twice := func(what string, got, once []float64) {
			t.Helper()
			d := make([]float64, len(once))
			for j := range once {
				d[j] = 2 * once[j]
			}
			if e := testutil.MaxAbsDiff(got, d); !(e <= tol*max(1, infNorm(d))) || infNorm(once) == 0 {
				t.Errorf("frozen=%v: %s after two Backwards differs from twice one by %.3g (|once|∞ = %v)", frozen, what, e, infNorm(once))
			}
		}
		for i, p := range b.Params() {
			twice(p.Name, p.Grad, once[i])
		}
		twice("dx", dx2, dx1)
		b.ZeroGrad()
		for _, p := range b.Params() {
			if infNorm(p.Grad) != 0 {
				t.Errorf("frozen=%v: %s not zero after ZeroGrad", frozen, p.Name)
			}
		}
		if frozen && len(b.Params()) != 0 {
			t.Errorf("FreezeBase: Params() has %d entries; want none", len(b.Params()))
		}
	}
}

// float32Tol bounds the float32 block's difference from the float64 one,
// relative to the float64 values' infinity norm: float32 rounding (ε = 6e-8)
// through a dozen sums of up to 16 terms and the LayerNorms stays below
// 1e-5.
const float32Tol = 1e-5

// TestFloat32MatchesFloat64: the float32 instantiation (the one that trains)
// computes what the gradient-checked float64 one does, to float32 rounding,
// forward and backward.
func TestFloat32MatchesFloat64(t *testing.T) {
	for _, tc := range tinyCases() {
		t.Run(tc.name, func(t *testing.T) {
			b64, x64, dy64, _ := tc.setup(t)
			b32, err := NewBlock(convertWeights[float32](b64.W), tc.settings)
			if err != nil {
				t.Fatal(err)
			}
			a64, a32 := b64.Adapters(), b32.Adapters()
			for i := range a64 {
				if a64[i] != nil {
					copy(a32[i].A, convert[float32](a64[i].A))
					copy(a32[i].B, convert[float32](a64[i].B))
				}
			}
			x32, dy32 := convert[float32](x64), convert[float32](dy64)
			y64, y32 := make([]float64, len(x64)), make([]float32, len(x32))
			b32.Train = tc.train
			// The same seed draws the same dropout masks in both.
			b64.rng, b32.rng = rand.New(rand.NewPCG(9, 9)), rand.New(rand.NewPCG(9, 9))
			b64.Forward(y64, x64, tc.rows)
			b32.Forward(y32, x32, tc.rows)
			compare := func(what string, got []float32, want []float64) {
				t.Helper()
				in := inRows(tc.rows, tc.slots)
				var g, w []float64
				for i := range want {
					if len(want) == len(in)*tinyC && !in[i/tinyC] {
						continue
					}
					g, w = append(g, float64(got[i])), append(w, want[i])
				}
				if d, s := testutil.MaxAbsDiff(g, w), max(1, infNorm(w)); !(d <= float32Tol*s) {
					t.Errorf("%s: float32 differs from float64 by %.3g > %.0e·%.3g", what, d, float32Tol, s)
				}
			}
			compare("y", y32, y64)
			b64.ZeroGrad()
			b32.ZeroGrad()
			dx64, dx32 := make([]float64, len(x64)), make([]float32, len(x32))
			b64.Backward(dx64, dy64, tc.rows)
			b32.Backward(dx32, dy32, tc.rows)
			compare("dx", dx32, dx64)
			p64, p32 := b64.Params(), b32.Params()
			for i := range p64 {
				compare(p64[i].Name, p32[i].Grad, p64[i].Grad)
			}
		})
	}
}

// TestLayouts: a sequence's output does not depend on the layout (packed,
// padded, with gaps) or on its batch-mates.
func TestLayouts(t *testing.T) {
	b, err := NewBlock(randWeights[float64](4, tinyC, tinyI), Settings{Heads: tinyHeads})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	lens := []int{3, 6, 1, 4}
	seqs := make([][]float64, len(lens))
	for i, l := range lens {
		seqs[i] = randSlice[float64](rng, l*tinyC, 1)
	}
	// Each sequence alone.
	alone := make([][]float64, len(lens))
	for i, s := range seqs {
		alone[i] = make([]float64, len(s))
		b.Forward(alone[i], s, Packed(lens[i:i+1]))
	}
	const tol = 1e-13 // float64 rounding: the same sums, perhaps blocked differently by the BLAS
	for _, rows := range []Rows{Packed(lens), Padded(7, lens), {Start: []int{2, 5, 12, 20}, Len: lens}} {
		slots := rows.Start[len(lens)-1] + lens[len(lens)-1] + 1
		x := make([]float64, slots*tinyC)
		for i := range x {
			x[i] = math.NaN()
		}
		for i, s := range seqs {
			copy(x[rows.Start[i]*tinyC:], s)
		}
		y := make([]float64, len(x))
		for i := range y {
			y[i] = 99
		}
		b.Forward(y, x, rows)
		in := inRows(rows, slots)
		for s, ok := range in {
			if !ok && infNorm(y[s*tinyC:(s+1)*tinyC]) != 0 {
				t.Errorf("rows %v: padding slot %d of y is %v; want zeros", rows, s, y[s*tinyC:(s+1)*tinyC])
			}
		}
		for i, st := range rows.Start {
			got := y[st*tinyC : (st+lens[i])*tinyC]
			if d := testutil.MaxAbsDiff(got, alone[i]); !(d <= tol) {
				t.Errorf("rows %v: sequence %d differs from its output alone by %.3g", rows, i, d)
			}
		}
	}
}

// TestMergedWeights: a block on MergedWeights, without adapters, computes
// what the adapted block computes in evaluation mode, and merging leaves the
// adapted block as it was.
func TestMergedWeights(t *testing.T) {
	tc := tinyCases()[4] // lora/all with random B
	b, x, _, _ := tc.setup(t)
	wBefore := cloneAll(weightSlices(b.W))
	merged := b.MergedWeights()
	checkUnchanged(t, "adapted block's weights", wBefore, weightSlices(b.W))
	if sameBits(merged.Query.W, b.W.Query.W) {
		t.Fatal("merging changed nothing: are the adapters' B zero?")
	}
	plain, err := NewBlock(merged, Settings{Heads: tinyHeads})
	if err != nil {
		t.Fatal(err)
	}
	y1, y2 := make([]float64, len(x)), make([]float64, len(x))
	b.Forward(y1, x, tc.rows)
	plain.Forward(y2, x, tc.rows)
	const tol = 1e-12 // float64: W·x + s·B·(A·x) against (W + s·B·A)·x, reassociated sums
	if d := testutil.MaxAbsDiff(y1, y2); !(d <= tol) {
		t.Errorf("merged block differs from the adapted one by %.3g > %g", d, tol)
	}

	// Freshly initialised adapters (B = 0) leave the block as it was.
	fresh, err := NewBlock(randWeights[float64](1, tinyC, tinyI), tc.settings)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := NewBlock(randWeights[float64](1, tinyC, tinyI), Settings{Heads: tinyHeads})
	fresh.Forward(y1, x, tc.rows)
	base.Forward(y2, x, tc.rows)
	if !sameBits(y1, y2) {
		t.Errorf("a block with fresh adapters differs from the base block by %.3g", testutil.MaxAbsDiff(y1, y2))
	}
	for _, a := range fresh.Adapters() {
		bound := 1 / math.Sqrt(float64(tinyC))
		if a == nil {
			continue
		}
		if infNorm(a.B) != 0 || !(infNorm(a.A) <= bound) || infNorm(a.A) < bound/2 {
			t.Errorf("fresh adapter: |B|∞ = %v (want 0), |A|∞ = %v (want in [%.3g, %.3g])", infNorm(a.B), infNorm(a.A), bound/2, bound)
		}
		if a.Scale != 4.0/2 {
			t.Errorf("adapter scale %v; want alpha/r = 2", a.Scale)
		}
	}
}

// TestDropout: in training mode the adapters' dropout zeroes about the
// given fraction of inputs, reproducibly for a seed; in evaluation mode
// there is none.
func TestDropout(t *testing.T) {
	const c, inter = 64, 128
	s := Settings{Heads: 4, LoRA: LoRA{Rank: 4, Dropout: 0.25}, Seed: 11}
	run := func(train bool) ([]float64, *Adapter[float64]) {
		b, err := NewBlock(randWeights[float64](1, c, inter), s)
		if err != nil {
			t.Fatal(err)
		}
		b.Train = train
		x := randSlice[float64](rand.New(rand.NewPCG(1, 1)), 20*c, 1)
		y := make([]float64, len(x))
		b.Forward(y, x, Packed([]int{20}))
		return y, b.Adapters()[0]
	}
	y1, a := run(true)
	y2, _ := run(true)
	if !sameBits(y1, y2) {
		t.Error("training forward differs between two blocks with the same seed")
	}
	zeros := 0
	for _, k := range a.keep {
		switch k {
		case 0:
			zeros++
		case 1 / 0.75:
		default:
			t.Fatalf("dropout multiplier %v; want 0 or 1/(1−p)", k)
		}
	}
	if f := float64(zeros) / float64(len(a.keep)); math.Abs(f-0.25) > 0.03 { // 1280 draws: 3σ ≈ 0.036... 4σ bound on binomial sd 0.012
		t.Errorf("dropout zeroed %.3f of the inputs; want about 0.25", f)
	}
	_, a = run(false)
	if len(a.keep) != 0 {
		t.Error("evaluation mode drew a dropout mask")
	}
}

func TestNewBlockErrors(t *testing.T) {
	good := randWeights[float32](1, tinyC, tinyI)
	tests := []struct {
		name   string
		edit   func(w *Weights[float32], s *Settings)
		target error
		msg    string
	}{
		{"heads", func(w *Weights[float32], s *Settings) { s.Heads = 3 }, ErrBadWeights, "3 heads do not divide the hidden size 8"},
		{"default heads", func(w *Weights[float32], s *Settings) { s.Heads = 0 }, ErrBadWeights, "12 heads do not divide the hidden size 8"},
		{"key shape", func(w *Weights[float32], s *Settings) { w.Key.W = w.Key.W[:10] }, ErrBadWeights, "Key is 8 → 8 with 10 weights"},
		{"ffn mismatch", func(w *Weights[float32], s *Settings) {
			w.Output = randLinear[float32](rand.New(rand.NewPCG(1, 1)), 12, tinyC, 1)
		},
			ErrBadWeights, "Output is 12 → 8"},
		{"norm", func(w *Weights[float32], s *Settings) { w.OutputNorm.Beta = nil }, ErrBadWeights, "OutputNorm has 8 gammas and 0 betas"},
		{"rank", func(w *Weights[float32], s *Settings) { s.LoRA = LoRA{Rank: 9, Targets: TargetQuery} }, ErrBadSetting,
			"LoRA rank 9 exceeds the dimensions of attention.self.query (8 → 8)"},
		{"dropout", func(w *Weights[float32], s *Settings) { s.LoRA = LoRA{Rank: 2, Dropout: 1} }, ErrBadSetting, "want 0 <= dropout < 1"},
		{"dropout NaN", func(w *Weights[float32], s *Settings) { s.LoRA = LoRA{Rank: 2, Dropout: math.NaN()} }, ErrBadSetting, "dropout NaN"},
		{"alpha", func(w *Weights[float32], s *Settings) { s.LoRA = LoRA{Rank: 2, Alpha: -1} }, ErrBadSetting, "alpha -1"},
		{"targets", func(w *Weights[float32], s *Settings) { s.LoRA = LoRA{Rank: 2, Targets: 1 << 6} }, ErrBadSetting, "want a combination of query, key, value, output, ffn"},
		{"negative rank", func(w *Weights[float32], s *Settings) { s.LoRA = LoRA{Rank: -1} }, ErrBadSetting, "rank -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := convertWeights[float32](good)
			s := Settings{Heads: tinyHeads}
			tt.edit(&w, &s)
			_, err := NewBlock(w, s)
			if !errors.Is(err, tt.target) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("NewBlock: %v; want %v containing %q", err, tt.target, tt.msg)
			}
		})
	}
}

// TestForwardPanics: programmer errors panic with a package-prefixed
// message.
func TestForwardPanics(t *testing.T) {
	b, err := NewBlock(randWeights[float32](1, tinyC, tinyI), Settings{Heads: tinyHeads})
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 4*tinyC)
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"backward first", func() { b.Backward(x, x, Packed([]int{4})) }},
		{"ragged x", func() { b.Forward(make([]float32, 5), make([]float32, 5), Packed([]int{1})) }},
		{"rows too long", func() { b.Forward(make([]float32, len(x)), x, Packed([]int{5})) }},
		{"rows overlap", func() { b.Forward(make([]float32, len(x)), x, Rows{Start: []int{0, 1}, Len: []int{2, 2}}) }},
		{"rows differ", func() {
			b.Forward(make([]float32, len(x)), x, Packed([]int{4}))
			b.Backward(make([]float32, len(x)), x, Packed([]int{3}))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s := fmt.Sprint(r); r == nil || !strings.HasPrefix(s, "lora: ") {
					t.Errorf("recovered %v; want a panic starting with \"lora: \"", r)
				}
			}()
			tt.f()
		})
	}
}

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		str  string
		err  string
	}{
		{"query,value", TargetQuery | TargetValue, "query,value", ""},
		{" Value , QUERY ", TargetQuery | TargetValue, "query,value", ""},
		{"output,ffn,key", TargetKey | TargetOutput | TargetFFN, "key,output,ffn", ""},
		{"all", allTargets, "query,key,value,output,ffn", ""},
		{"", 0, "", ""},
		{"query,dense", 0, "", `LoRA target "dense" unknown; want one of query, key, value, output, ffn, all`},
	}
	for _, tt := range tests {
		got, err := ParseTargets(tt.in)
		if tt.err != "" {
			if !errors.Is(err, ErrBadSetting) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTargets(%q) error = %v; want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseTargets(%q) = %v (%q), %v; want %v (%q)", tt.in, uint8(got), got, err, uint8(tt.want), tt.str)
		}
	}
}
