package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Linear holds the parameters of a dense layer y = x·Wᵀ + B
// (torch.nn.Linear).
type Linear[F Float] struct {
	// In and Out are the input and output widths.
	In, Out int
	// W is (Out, In) row-major: W[o*In+i] multiplies input i into output o.
	W []F
	// B is the bias, Out values.
	B []F
}

// LayerNorm holds the parameters of a LayerNorm over the features,
// (z − mean) / √(var + Eps) · Gamma + Beta.
type LayerNorm[F Float] struct {
	// Gamma and Beta have one value per feature.
	Gamma, Beta []F
	// Eps is added to the variance (BERT's layer_norm_eps, 1e-12).
	Eps float64
}

// Weights are the parameters of one BERT encoder block, named after
// HuggingFace's BertLayer modules (and the fields of onnx.BlockWeights,
// which reads them from an exported graph). C is the hidden size, I the
// feed-forward size.
type Weights[F Float] struct {
	// Query, Key, Value: attention.self.{query,key,value}, C → C.
	Query, Key, Value Linear[F]
	// AttentionOutput: attention.output.dense, C → C.
	AttentionOutput Linear[F]
	// Intermediate: intermediate.dense, C → I (followed by GELU).
	Intermediate Linear[F]
	// Output: output.dense, I → C.
	Output Linear[F]
	// AttentionNorm: attention.output.LayerNorm; OutputNorm:
	// output.LayerNorm.
	AttentionNorm, OutputNorm LayerNorm[F]
	// RelativeBias is the encoder's relative position bias added to the
	// attention scores (MPNet); nil for BERT blocks, which have none. The
	// blocks of one encoder share it; it is frozen (no gradient, not in
	// Params) and copies of the weights share it too.
	RelativeBias *RelativeBias[F]
}

// Target selects the dense layers that get LoRA adapters; targets combine
// with |.
type Target uint8

// Targets, named as in Settings.LoRA and the CLI's --targets.
const (
	TargetQuery  Target = 1 << iota // attention.self.query
	TargetKey                       // attention.self.key
	TargetValue                     // attention.self.value
	TargetOutput                    // attention.output.dense
	TargetFFN                       // intermediate.dense and output.dense
)

// LoRA configures low-rank adapters, as PEFT's LoraConfig.
type LoRA struct {
	// Rank is r, the inner dimension of the adapters. 0 (default): no
	// adapters. It may not exceed the In or Out of a targeted layer.
	Rank int
	// Alpha sets the scaling α/r of the adapters' output. Default (0): 8,
	// PEFT's lora_alpha default.
	Alpha float64
	// Dropout is the probability of zeroing an input of the adapters while
	// the block is in training mode (Block.Train), the kept ones scaled by
	// 1/(1−Dropout), as torch.nn.Dropout. In [0, 1); default 0.
	Dropout float64
	// Targets are the adapted layers. Default (0): TargetQuery|TargetValue,
	// PEFT's default for BERT.
	Targets Target
}

// Settings configure a Block. The zero value is valid: every weight
// trainable (full fine-tuning), no adapters, seed 0.
type Settings struct {
	// Heads is the number of attention heads; it must divide the hidden
	// size. Default (0): 12, BERT-base's and all-MiniLM-L6-v2's.
	Heads int
	// FreezeBase gives the block's own weights no gradients: Backward then
	// computes only the input's gradient and the adapters'. Adapters
	// (LoRA.Rank > 0) always freeze the base weights, as PEFT does.
	// Default false.
	FreezeBase bool
	// LoRA adds adapters. Default: none.
	LoRA LoRA
	// Seed seeds the adapters' initialisation and dropout. Default 0.
	Seed uint64
}

// DefaultHeads is the head count of Settings' zero value.
const DefaultHeads = 12

// geluGrain is the least number of elements a goroutine takes in the GELU.
const geluGrain = 1 << 14

// defaultAlpha is PEFT's default lora_alpha.
const defaultAlpha = 8

// Param is one trainable tensor of a block and its gradient, of the same
// length.
type Param[F Float] struct {
	// Name is the HuggingFace parameter name within the layer, for example
	// "attention.self.query.weight" or "attention.self.query.lora_A".
	Name string
	// Value is the tensor the block computes with (a slice of Block.W or an
	// adapter's A or B, not a copy): an optimiser updates it in place and
	// the next Forward sees the update.
	Value []F
	// Grad is its gradient, which Backward accumulates into.
	Grad []F
}

// Adapter is a LoRA adapter on one dense layer: the layer's output gains
// Scale·dropout(x)·Aᵀ·Bᵀ.
type Adapter[F Float] struct {
	// Rank is r.
	Rank int
	// Scale is α/r.
	Scale F
	// A is (Rank, In) row-major, PEFT's lora_A.weight; B is (Out, Rank),
	// lora_B.weight. GradA and GradB are their gradients.
	A, B, GradA, GradB []F

	// Forward cache.
	xd   []F // (n,In) dropped-out input; nil when it is the layer's input
	keep []F // (n,In) dropout multipliers, 0 or 1/(1−p); nil without dropout
	xa   []F // (n,r) = xd·Aᵀ
	dxa  []F // (n,r) backward scratch
	tmp  []F // (n,In) backward scratch, with dropout
}

// dense is one of the block's dense layers: its weights, their gradients
// (nil when frozen) and an optional adapter.
type dense[F Float] struct {
	name string
	w, g *Linear[F]
	ad   *Adapter[F]
}

// Block is one BERT encoder block (see the package comment for its math)
// with its gradients, optional LoRA adapters, and the activations of the
// last Forward. A Block is not safe for concurrent use.
type Block[F Float] struct {
	// W are the block's weights. The block uses the slices it was given
	// (they are not copied), so an optimiser that updates them in place,
	// through Params, changes the next Forward.
	W Weights[F]
	// G are the gradients of W, with the same shapes; their slices are nil
	// when the base weights are frozen.
	G Weights[F]
	// Train turns dropout on (PyTorch's module.train()). Default false:
	// evaluation, deterministic.
	Train bool

	heads, hidden, inter int
	frozen               bool
	dropout              float64
	dense                [6]dense[F] // query, key, value, attention output, intermediate, output
	src                  *rand.PCG   // rng's source
	rng                  *rand.Rand
	srcAt                rand.PCG // src at the start of the last Forward (Rewind)
	rel                  []F      // (H, 2·relL−1) relative position bias by offset (RelativeBias.fill)
	relL                 int      // the longest sequence of the last Forward, which rel covers

	// The activations of the last Forward and the backward scratch; blocks that
	// ShareCache share one.
	*blockCache[F]
}

// blockCache holds what Forward caches for Backward and Backward's scratch.
type blockCache[F Float] struct {
	owner any // the block whose Forward the cache holds

	// Forward cache, packed: n tokens.
	rows        Rows
	n           int
	lens, off   []int // per sequence: length, first packed token
	attOff      []int // per sequence: offset of its H·L·L probabilities in att
	x           []F   // (n,C) input
	q, k, v     []F   // (n,C) projections
	att         []F   // softmax probabilities
	ctx         []F   // (n,C) attention context
	xhat1, h1   []F   // (n,C) LN₁ normalised input and output
	rstd1       []F   // (n)
	u, g        []F   // (n,I) intermediate before and after GELU
	xhat2, y    []F   // (n,C) LN₂ normalised input and output
	rstd2       []F   // (n)
	forwardDone bool

	// Backward scratch.
	dy, dh1, dctx, dq, dk, dv, dx []F // (n,C)
	dg                            []F // (n,I)
	dp                            []F // (L,L) per goroutine
	acc                           []float64
}

// ShareCache makes the blocks share one activation cache, that of blocks[0]:
// a block's Forward then overwrites what the last Forward of another cached,
// so that a stack of blocks holds the activations of one block instead of
// one per block. Backward needs the block's own Forward to be the last one
// (recompute it first, after Rewind when dropout is on); it panics
// otherwise. For evaluation, and for training that recomputes each block's
// forward before its backward (activation checkpointing, Chen et al. 2016,
// "Training Deep Nets with Sublinear Memory Cost").
func ShareCache[F Float](blocks []*Block[F]) {
	for _, b := range blocks[1:] {
		b.blockCache = blocks[0].blockCache
	}
}

// Rewind restores the dropout's random stream to where it stood at the start
// of the last Forward, so that a Forward run again on the same input draws
// the same dropout masks and computes the same activations.
func (b *Block[F]) Rewind() { *b.src = b.srcAt }

// NewBlock returns a block on the weights w (used in place, not copied; see
// Block.W) with settings s. Weights whose shapes do not form a block give an
// error wrapping ErrBadWeights, settings out of range one wrapping
// ErrBadSetting; both name the field.
func NewBlock[F Float](w Weights[F], s Settings) (*Block[F], error) {
	if s.Heads == 0 {
		s.Heads = DefaultHeads
	}
	c, inter := w.Query.In, w.Intermediate.Out
	if err := checkWeights(w, s.Heads); err != nil {
		return nil, err
	}
	b := &Block[F]{
		W:      w,
		heads:  s.Heads,
		hidden: c,
		inter:  inter,
		frozen: s.FreezeBase || s.LoRA.Rank > 0,
		src:    rand.NewPCG(s.Seed, 0x6c6f7261), // "lora"

		blockCache: &blockCache[F]{},
	}
	b.rng = rand.New(b.src)
	if !b.frozen {
		b.G = Weights[F]{
			Query:           zeroLinear[F](c, c),
			Key:             zeroLinear[F](c, c),
			Value:           zeroLinear[F](c, c),
			AttentionOutput: zeroLinear[F](c, c),
			Intermediate:    zeroLinear[F](c, inter),
			Output:          zeroLinear[F](inter, c),
			AttentionNorm:   LayerNorm[F]{Gamma: make([]F, c), Beta: make([]F, c), Eps: w.AttentionNorm.Eps},
			OutputNorm:      LayerNorm[F]{Gamma: make([]F, c), Beta: make([]F, c), Eps: w.OutputNorm.Eps},
		}
	} else {
		b.G = Weights[F]{
			Query: Linear[F]{In: c, Out: c}, Key: Linear[F]{In: c, Out: c}, Value: Linear[F]{In: c, Out: c},
			AttentionOutput: Linear[F]{In: c, Out: c}, Intermediate: Linear[F]{In: c, Out: inter}, Output: Linear[F]{In: inter, Out: c},
			AttentionNorm: LayerNorm[F]{Eps: w.AttentionNorm.Eps}, OutputNorm: LayerNorm[F]{Eps: w.OutputNorm.Eps},
		}
	}
	wl := []*Linear[F]{&b.W.Query, &b.W.Key, &b.W.Value, &b.W.AttentionOutput, &b.W.Intermediate, &b.W.Output}
	gl := []*Linear[F]{&b.G.Query, &b.G.Key, &b.G.Value, &b.G.AttentionOutput, &b.G.Intermediate, &b.G.Output}
	names := []string{"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"}
	targets := []Target{TargetQuery, TargetKey, TargetValue, TargetOutput, TargetFFN, TargetFFN}
	l := s.LoRA
	if l.Rank < 0 {
		return nil, fmt.Errorf("%w: LoRA rank %d is negative", ErrBadSetting, l.Rank)
	}
	if l.Rank > 0 {
		if l.Targets == 0 {
			l.Targets = TargetQuery | TargetValue
		}
		if l.Targets >= TargetFFN<<1 {
			return nil, fmt.Errorf("%w: LoRA targets %#x has unknown bits; want a combination of %s", ErrBadSetting, uint8(l.Targets), targetList())
		}
		if l.Alpha == 0 {
			l.Alpha = defaultAlpha
		}
		if !(l.Alpha > 0) || math.IsInf(l.Alpha, 0) {
			return nil, fmt.Errorf("%w: LoRA alpha %v; want a positive finite value", ErrBadSetting, l.Alpha)
		}
		if !(l.Dropout >= 0 && l.Dropout < 1) {
			return nil, fmt.Errorf("%w: LoRA dropout %v; want 0 <= dropout < 1", ErrBadSetting, l.Dropout)
		}
	}
	for i := range b.dense {
		d := dense[F]{name: names[i], w: wl[i]}
		if !b.frozen {
			d.g = gl[i]
		}
		if l.Rank > 0 && l.Targets&targets[i] != 0 {
			lw := wl[i]
			if l.Rank > min(lw.In, lw.Out) {
				return nil, fmt.Errorf("%w: LoRA rank %d exceeds the dimensions of %s (%d → %d)", ErrBadSetting, l.Rank, names[i], lw.In, lw.Out)
			}
			d.ad = newAdapter[F](lw.In, lw.Out, l.Rank, l.Alpha, b.rng)
		}
		b.dense[i] = d
	}
	b.dropout = l.Dropout
	return b, nil
}

func zeroLinear[F Float](in, out int) Linear[F] {
	return Linear[F]{In: in, Out: out, W: make([]F, in*out), B: make([]F, out)}
}

func targetList() string { return "query, key, value, output, ffn" }

// newAdapter returns an adapter initialised as PEFT's
// LoraLayer.reset_lora_parameters(init_lora_weights=True): A from
// kaiming_uniform_(a=√5), that is U(−1/√In, 1/√In), and B zero.
func newAdapter[F Float](in, out, rank int, alpha float64, rng *rand.Rand) *Adapter[F] {
	a := &Adapter[F]{
		Rank:  rank,
		Scale: F(alpha / float64(rank)),
		A:     make([]F, rank*in),
		B:     make([]F, out*rank),
		GradA: make([]F, rank*in),
		GradB: make([]F, out*rank),
	}
	bound := 1 / math.Sqrt(float64(in))
	for i := range a.A {
		a.A[i] = F((2*rng.Float64() - 1) * bound)
	}
	return a
}

// checkWeights checks that w forms a block with the given head count.
func checkWeights[F Float](w Weights[F], heads int) error {
	c, inter := w.Query.In, w.Intermediate.Out
	if c <= 0 {
		return fmt.Errorf("%w: Query.In = %d; want the hidden size", ErrBadWeights, c)
	}
	if heads <= 0 || c%heads != 0 {
		return fmt.Errorf("%w: %d heads do not divide the hidden size %d", ErrBadWeights, heads, c)
	}
	if r := w.RelativeBias; r != nil {
		if err := r.check(heads); err != nil {
			return err
		}
	}
	if inter <= 0 {
		return fmt.Errorf("%w: Intermediate.Out = %d; want the feed-forward size", ErrBadWeights, inter)
	}
	for _, l := range []struct {
		name    string
		l       Linear[F]
		in, out int
	}{
		{"Query", w.Query, c, c}, {"Key", w.Key, c, c}, {"Value", w.Value, c, c},
		{"AttentionOutput", w.AttentionOutput, c, c},
		{"Intermediate", w.Intermediate, c, inter}, {"Output", w.Output, inter, c},
	} {
		if l.l.In != l.in || l.l.Out != l.out || len(l.l.W) != l.in*l.out || len(l.l.B) != l.out {
			return fmt.Errorf("%w: %s is %d → %d with %d weights and %d biases; want %d → %d (%d weights, %d biases)",
				ErrBadWeights, l.name, l.l.In, l.l.Out, len(l.l.W), len(l.l.B), l.in, l.out, l.in*l.out, l.out)
		}
	}
	for _, n := range []struct {
		name string
		n    LayerNorm[F]
	}{{"AttentionNorm", w.AttentionNorm}, {"OutputNorm", w.OutputNorm}} {
		if len(n.n.Gamma) != c || len(n.n.Beta) != c {
			return fmt.Errorf("%w: %s has %d gammas and %d betas; want %d each", ErrBadWeights, n.name, len(n.n.Gamma), len(n.n.Beta), c)
		}
		if !(n.n.Eps >= 0) {
			return fmt.Errorf("%w: %s epsilon %v; want >= 0", ErrBadWeights, n.name, n.n.Eps)
		}
	}
	return nil
}

// Hidden returns the hidden size C.
func (b *Block[F]) Hidden() int { return b.hidden }

// Intermediate returns the feed-forward size I.
func (b *Block[F]) Intermediate() int { return b.inter }

// Heads returns the number of attention heads.
func (b *Block[F]) Heads() int { return b.heads }

// Adapters returns the adapters of the dense layers, in the order query,
// key, value, attention output, intermediate, output; nil entries for layers
// without one.
func (b *Block[F]) Adapters() [6]*Adapter[F] {
	var out [6]*Adapter[F]
	for i, d := range b.dense {
		out[i] = d.ad
	}
	return out
}

// Params returns the trainable parameters with their gradients: the
// adapters' A and B when there are adapters, the base weights unless they
// are frozen. The slices are the block's own.
func (b *Block[F]) Params() []Param[F] {
	var ps []Param[F]
	for _, d := range b.dense {
		if d.g != nil {
			ps = append(ps, Param[F]{d.name + ".weight", d.w.W, d.g.W}, Param[F]{d.name + ".bias", d.w.B, d.g.B})
		}
		if d.ad != nil {
			ps = append(ps, Param[F]{d.name + ".lora_A", d.ad.A, d.ad.GradA}, Param[F]{d.name + ".lora_B", d.ad.B, d.ad.GradB})
		}
		if d.g != nil && d.name == "attention.output.dense" {
			ps = append(ps, Param[F]{"attention.output.LayerNorm.weight", b.W.AttentionNorm.Gamma, b.G.AttentionNorm.Gamma},
				Param[F]{"attention.output.LayerNorm.bias", b.W.AttentionNorm.Beta, b.G.AttentionNorm.Beta})
		}
	}
	if !b.frozen {
		ps = append(ps, Param[F]{"output.LayerNorm.weight", b.W.OutputNorm.Gamma, b.G.OutputNorm.Gamma},
			Param[F]{"output.LayerNorm.bias", b.W.OutputNorm.Beta, b.G.OutputNorm.Beta})
	}
	return ps
}

// ZeroGrad sets every parameter gradient to zero.
func (b *Block[F]) ZeroGrad() {
	for _, p := range b.Params() {
		clear(p.Grad)
	}
}

// MergedWeights returns a copy of the block's weights with the adapters
// folded in, W' = W + Scale·B·A (PEFT's merge_and_unload): a block without
// adapters on them computes what this block computes in evaluation mode.
// Without adapters it is a plain copy.
func (b *Block[F]) MergedWeights() Weights[F] {
	cp := func(l Linear[F]) Linear[F] {
		return Linear[F]{In: l.In, Out: l.Out, W: slices.Clone(l.W), B: slices.Clone(l.B)}
	}
	cn := func(n LayerNorm[F]) LayerNorm[F] {
		return LayerNorm[F]{Gamma: slices.Clone(n.Gamma), Beta: slices.Clone(n.Beta), Eps: n.Eps}
	}
	w := Weights[F]{
		Query: cp(b.W.Query), Key: cp(b.W.Key), Value: cp(b.W.Value),
		AttentionOutput: cp(b.W.AttentionOutput), Intermediate: cp(b.W.Intermediate), Output: cp(b.W.Output),
		AttentionNorm: cn(b.W.AttentionNorm), OutputNorm: cn(b.W.OutputNorm),
		RelativeBias: b.W.RelativeBias,
	}
	merged := []*Linear[F]{&w.Query, &w.Key, &w.Value, &w.AttentionOutput, &w.Intermediate, &w.Output}
	for i, d := range b.dense {
		if a := d.ad; a != nil {
			l := merged[i]
			gemm(false, false, l.Out, l.In, a.Rank, a.Scale, a.B, a.Rank, a.A, l.In, 1, l.W, l.In)
		}
	}
	return w
}

// Forward computes the block's output y for the input x, both (N,C)
// row-major with the sequences where rows says (N = len(x)/C). Slots of y
// outside every sequence are set to zero. x is not modified (unless y is
// x: the block may run in place), and neither are rows' slices; otherwise y
// must not overlap x. It caches the activations that
// Backward needs (about 9·C + 2·I + H·L values per token of a length-L
// sequence). Forward panics if len(x) is not a multiple of C, if len(y) ≠
// len(x) or if rows does not fit.
func (b *Block[F]) Forward(y, x []F, rows Rows) {
	c, in := b.hidden, b.inter
	if len(x)%c != 0 || len(y) != len(x) {
		panic("lora: Forward: len(x) is not a multiple of the hidden size, or len(y) != len(x)")
	}
	rows.check(len(x) / c)
	b.srcAt = *b.src
	b.owner = b
	b.setRows(rows)
	n := b.n

	// Pack the input.
	b.x = grow(b.x, n*c)
	for s, st := range rows.Start {
		copy(b.x[b.off[s]*c:], x[st*c:(st+rows.Len[s])*c])
	}

	// Attention.
	b.q, b.k, b.v = grow(b.q, n*c), grow(b.k, n*c), grow(b.v, n*c)
	b.dense[0].forward(b.q, b.x, n, b)
	b.dense[1].forward(b.k, b.x, n, b)
	b.dense[2].forward(b.v, b.x, n, b)
	b.ctx = grow(b.ctx, n*c)
	b.attentionForward()

	// Output projection, residual, LN₁.
	b.xhat1, b.h1, b.rstd1 = grow(b.xhat1, n*c), grow(b.h1, n*c), grow(b.rstd1, n)
	z := b.xhat1 // normalised in place
	b.dense[3].forward(z, b.ctx, n, b)
	for i, v := range b.x {
		z[i] += v
	}
	an := &b.W.AttentionNorm
	layerNormForward(b.h1, b.xhat1, b.rstd1, z, an.Gamma, an.Beta, n, c, an.Eps)

	// Feed-forward, residual, LN₂.
	b.u, b.g = grow(b.u, n*in), grow(b.g, n*in)
	b.dense[4].forward(b.u, b.h1, n, b)
	parallelRange(len(b.u), geluGrain, func(lo, hi int) { geluForward(b.g[lo:hi], b.u[lo:hi]) })
	b.xhat2, b.y, b.rstd2 = grow(b.xhat2, n*c), grow(b.y, n*c), grow(b.rstd2, n)
	z = b.xhat2
	b.dense[5].forward(z, b.g, n, b)
	for i, v := range b.h1 {
		z[i] += v
	}
	on := &b.W.OutputNorm
	layerNormForward(b.y, b.xhat2, b.rstd2, z, on.Gamma, on.Beta, n, c, on.Eps)

	// Unpack.
	clear(y)
	for s, st := range rows.Start {
		copy(y[st*c:(st+rows.Len[s])*c], b.y[b.off[s]*c:])
	}
	b.forwardDone = true
}

// Backward takes dy, the gradient of a loss with respect to the output y of
// the last Forward, laid out as that Forward's x and y with the same rows,
// and accumulates (+=) the gradients of the trainable parameters (G and the
// adapters' GradA and GradB) and the gradient with respect to x into dx
// (dx += ∂loss/∂x on the sequences' slots; padding slots are left as they
// are, and dy there is ignored). dy is not modified; dx must not overlap dy.
// A nil dx skips the input's gradient (the block at the bottom of the
// trained stack: nothing below it learns), saving three C×C products.
// Backward panics if no Forward came before, or if rows or the lengths
// differ from that Forward's.
func (b *Block[F]) Backward(dx, dy []F, rows Rows) {
	c, in, n := b.hidden, b.inter, b.n
	if !b.forwardDone {
		panic("lora: Backward without Forward")
	}
	if b.owner != any(b) {
		panic("lora: Backward: the shared cache holds another block's Forward")
	}
	if (dx != nil && len(dx) != len(dy)) || len(dy)%c != 0 || !rows.equal(b.rows) {
		panic("lora: Backward: rows differ from the last Forward's, or len(dx) != len(dy)")
	}
	rows.check(len(dy) / c)

	// Pack dy.
	b.dy = grow(b.dy, n*c)
	for s, st := range rows.Start {
		copy(b.dy[b.off[s]*c:], dy[st*c:(st+rows.Len[s])*c])
	}
	b.acc = slices.Grow(b.acc[:0], max(c, in))[:max(c, in)]

	// LN₂ and the feed-forward; the residual gives dh1 the LN₂ gradient.
	on, gon := &b.W.OutputNorm, &b.G.OutputNorm
	dz := b.dy // in place
	layerNormBackward(dz, gon.Gamma, gon.Beta, b.dy, b.xhat2, b.rstd2, on.Gamma, n, c)
	b.dg = grow(b.dg, n*in)
	b.dh1 = grow(b.dh1, n*c)
	copy(b.dh1, dz)
	b.dense[5].backward(b.dg, dz, b.g, n, 0, b)
	parallelRange(len(b.u), geluGrain, func(lo, hi int) { geluBackward(b.dg[lo:hi], b.u[lo:hi]) })
	b.dense[4].backward(b.dh1, b.dg, b.h1, n, 1, b)

	// LN₁ and the output projection; the residual gives dx the LN₁ gradient.
	an, gan := &b.W.AttentionNorm, &b.G.AttentionNorm
	dz = b.dh1 // in place
	layerNormBackward(dz, gan.Gamma, gan.Beta, b.dh1, b.xhat1, b.rstd1, an.Gamma, n, c)
	var bdx []F // nil: the input's gradient is not wanted
	if dx != nil {
		b.dx = grow(b.dx, n*c)
		copy(b.dx, dz)
		bdx = b.dx
	}
	b.dctx = grow(b.dctx, n*c)
	b.dense[3].backward(b.dctx, dz, b.ctx, n, 0, b)

	// Attention and the projections.
	b.dq, b.dk, b.dv = grow(b.dq, n*c), grow(b.dk, n*c), grow(b.dv, n*c)
	b.attentionBackward()
	b.dense[0].backward(bdx, b.dq, b.x, n, 1, b)
	b.dense[1].backward(bdx, b.dk, b.x, n, 1, b)
	b.dense[2].backward(bdx, b.dv, b.x, n, 1, b)
	if dx == nil {
		return
	}

	// Unpack, accumulating.
	for s, st := range rows.Start {
		dst, src := dx[st*c:(st+rows.Len[s])*c], b.dx[b.off[s]*c:]
		for i := range dst {
			dst[i] += src[i]
		}
	}
}

// setRows records the layout of a Forward and the packed offsets.
func (b *Block[F]) setRows(rows Rows) {
	b.rows.Start = append(b.rows.Start[:0], rows.Start...)
	b.rows.Len = append(b.rows.Len[:0], rows.Len...)
	nb := len(rows.Len)
	b.lens = append(b.lens[:0], rows.Len...)
	b.off = slices.Grow(b.off[:0], nb)[:nb]
	b.attOff = slices.Grow(b.attOff[:0], nb)[:nb]
	n, a := 0, 0
	for s, l := range rows.Len {
		b.off[s], b.attOff[s] = n, a
		n += l
		a += b.heads * l * l
	}
	b.n = n
	b.att = grow(b.att, a)
}

// attentionForward computes, per sequence and head, the softmax
// probabilities P = softmax(q_h·k_hᵀ/√d + bias_h) into att and ctx_h =
// P·v_h, bias_h the relative position bias (RelativeBias) or none. The
// (sequence, head) pairs run in parallel.
func (b *Block[F]) attentionForward() {
	c, h := b.hidden, b.heads
	d := c / h
	scale := F(1 / math.Sqrt(float64(d)))
	rb := b.W.RelativeBias
	if rb != nil { // refilled each time: H·(2L−1) values, so that the table is read as it is now
		b.relL = slices.Max(append([]int{1}, b.lens...))
		b.rel = grow(b.rel, h*(2*b.relL-1))
		rb.fill(b.rel, h, b.relL)
	}
	parallelItems(len(b.lens)*h, func(i, _ int) {
		s, hh := i/h, i%h
		l := b.lens[s]
		if l == 0 {
			return
		}
		p := b.att[b.attOff[s]+hh*l*l : b.attOff[s]+(hh+1)*l*l]
		col := b.off[s]*c + hh*d
		gemm(false, true, l, l, d, scale, b.q[col:], c, b.k[col:], c, 0, p, l)
		if rb != nil {
			w := 2*b.relL - 1
			addRelBias(p, b.rel[hh*w:(hh+1)*w], l, b.relL)
		}
		softmaxForward(p, l)
		gemm(false, false, l, d, l, 1, p, l, b.v[col:], c, 0, b.ctx[col:], c)
	})
}

// attentionBackward turns dctx into dq, dk and dv (the relative position
// bias, a constant added to the scores, changes nothing here but P):
//
//	dP = dctx_h·v_hᵀ,   dv_h = Pᵀ·dctx_h,   dS = softmax'(dP),
//	dq_h = dS·k_h/√d,   dk_h = dSᵀ·q_h/√d
//
// The (sequence, head) pairs run in parallel, each goroutine with its own
// (L,L) scratch.
func (b *Block[F]) attentionBackward() {
	c, h := b.hidden, b.heads
	d := c / h
	scale := F(1 / math.Sqrt(float64(d)))
	lmax := 0
	for _, l := range b.lens {
		lmax = max(lmax, l)
	}
	workers := maxWorkers()
	b.dp = grow(b.dp, workers*lmax*lmax)
	parallelItems(len(b.lens)*h, func(i, w int) {
		s, hh := i/h, i%h
		l := b.lens[s]
		if l == 0 {
			return
		}
		dp := b.dp[w*lmax*lmax : w*lmax*lmax+l*l]
		p := b.att[b.attOff[s]+hh*l*l : b.attOff[s]+(hh+1)*l*l]
		col := b.off[s]*c + hh*d
		gemm(false, true, l, l, d, 1, b.dctx[col:], c, b.v[col:], c, 0, dp, l)
		gemm(true, false, l, d, l, 1, p, l, b.dctx[col:], c, 0, b.dv[col:], c)
		softmaxBackward(dp, p, l)
		gemm(false, false, l, d, l, scale, dp, l, b.k[col:], c, 0, b.dq[col:], c)
		gemm(true, false, l, d, l, scale, dp, l, b.q[col:], c, 0, b.dk[col:], c)
	})
}

// forward computes y = x·Wᵀ + b (+ the adapter's term) for n tokens.
func (d *dense[F]) forward(y, x []F, n int, blk *Block[F]) {
	w := d.w
	for t := range n {
		copy(y[t*w.Out:(t+1)*w.Out], w.B)
	}
	gemm(false, true, n, w.Out, w.In, 1, x, w.In, w.W, w.In, 1, y, w.Out)
	a := d.ad
	if a == nil {
		return
	}
	xd := x
	a.keep = a.keep[:0]
	if blk.Train && blk.dropout > 0 {
		p := blk.dropout
		kept := F(1 / (1 - p))
		a.keep = grow(a.keep, n*w.In)
		a.xd = grow(a.xd, n*w.In)
		for i, v := range x[:n*w.In] {
			if blk.rng.Float64() < p {
				a.keep[i], a.xd[i] = 0, 0
			} else {
				a.keep[i], a.xd[i] = kept, v*kept
			}
		}
		xd = a.xd
	} else {
		a.xd = a.xd[:0]
	}
	a.xa = grow(a.xa, n*a.Rank)
	gemm(false, true, n, a.Rank, w.In, 1, xd, w.In, a.A, w.In, 0, a.xa, a.Rank)
	gemm(false, true, n, w.Out, a.Rank, a.Scale, a.xa, a.Rank, a.B, a.Rank, 1, y, w.Out)
}

// backward accumulates the gradients of W and b (unless frozen) and of the
// adapter, for the input x of forward and the output gradient dy, and sets
// dx = beta·dx + ∂/∂x (beta 0 or 1); a nil dx skips the input's gradient.
func (d *dense[F]) backward(dx, dy, x []F, n int, beta F, blk *Block[F]) {
	w := d.w
	if g := d.g; g != nil {
		gemm(true, false, w.Out, w.In, n, 1, dy, w.Out, x, w.In, 1, g.W, w.In)
		sumRows(g.B, dy, n, w.Out, blk.acc)
	}
	if dx != nil {
		gemm(false, false, n, w.In, w.Out, 1, dy, w.Out, w.W, w.In, beta, dx, w.In)
	}
	a := d.ad
	if a == nil {
		return
	}
	r := a.Rank
	xd := x
	if len(a.keep) > 0 {
		xd = a.xd
	}
	// dB += s·dyᵀ·xa;  dxa = s·dy·B;  dA += dxaᵀ·xd;  dx += (dxa·A) ⊙ keep.
	gemm(true, false, w.Out, r, n, a.Scale, dy, w.Out, a.xa, r, 1, a.GradB, r)
	a.dxa = grow(a.dxa, n*r)
	gemm(false, false, n, r, w.Out, a.Scale, dy, w.Out, a.B, r, 0, a.dxa, r)
	gemm(true, false, r, w.In, n, 1, a.dxa, r, xd, w.In, 1, a.GradA, w.In)
	if dx == nil {
		return
	}
	if len(a.keep) == 0 {
		gemm(false, false, n, w.In, r, 1, a.dxa, r, a.A, w.In, 1, dx, w.In)
		return
	}
	a.tmp = grow(a.tmp, n*w.In)
	gemm(false, false, n, w.In, r, 1, a.dxa, r, a.A, w.In, 0, a.tmp, w.In)
	for i, v := range a.tmp {
		dx[i] += v * a.keep[i]
	}
}

// Reseed restarts the random stream of the adapters' dropout from seed, so
// that training can resume at an epoch boundary and draw what an
// uninterrupted run draws.
func (b *Block[F]) Reseed(seed uint64) {
	b.src = rand.NewPCG(seed, 0x6c6f7261)
	b.rng = rand.New(b.src)
}
