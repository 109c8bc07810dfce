package lora_test

// The parity test runs the real model in onnxruntime, so it lives in the
// external test package: package lora itself never imports the runtime.

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/lora"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// parityTol is the bound on the difference between the Go block and
// onnxruntime's output of the same block. Both compute in float32 and differ
// in the order of their sums (BLAS blocking, ORT's fused LayerNorm) and in
// erf/exp approximations; on hidden states of magnitude up to about 10 that
// is a few 1e-6.
const parityTol = 1e-4

const parityModel = "all-minilm-l6-v2"

// paritySentences have different lengths, so that the batch is padded.
var paritySentences = []string{
	"hello world",
	"The film is a charming, funny and ultimately moving portrait of a family that refuses to give up.",
	"Terrible.",
	"I would not recommend this restaurant: the service was slow, the soup was cold and the bill was wrong twice, but the dessert almost made up for it.",
	"Café naïve résumé — accents, punctuation!? and numbers 1234.",
}

// blockFromONNX converts the weights onnx.Model.BlockWeights reads into a
// block's weights (same layouts, converted to F).
func blockFromONNX[F lora.Float](bw onnx.BlockWeights) lora.Weights[F] {
	lin := func(l onnx.LinearWeights) lora.Linear[F] {
		return lora.Linear[F]{In: l.In, Out: l.Out, W: floats[F](l.W), B: floats[F](l.B)}
	}
	norm := func(n onnx.LayerNormWeights) lora.LayerNorm[F] {
		return lora.LayerNorm[F]{Gamma: floats[F](n.Gamma), Beta: floats[F](n.Beta), Eps: float64(n.Eps)}
	}
	return lora.Weights[F]{
		Query: lin(bw.Query), Key: lin(bw.Key), Value: lin(bw.Value),
		AttentionOutput: lin(bw.AttentionOutput), Intermediate: lin(bw.Intermediate), Output: lin(bw.Output),
		AttentionNorm: norm(bw.AttentionNorm), OutputNorm: norm(bw.OutputNorm),
	}
}

// withRelativeBias gives w the encoder's relative position bias read from the
// graph, when ok (MPNet), converted to F.
func withRelativeBias[F lora.Float](w lora.Weights[F], rb onnx.RelativeBias, ok bool) lora.Weights[F] {
	if ok {
		w.RelativeBias = &lora.RelativeBias[F]{Table: floats[F](rb.Table), Buckets: rb.Buckets, MaxDistance: rb.MaxDistance}
	}
	return w
}

// onnxBlock builds a block from the weights onnx.Model.BlockWeights reads, with the
// relative position bias rb when hasBias, in F; a failure ends the test.
func onnxBlock[F lora.Float](t *testing.T, bw onnx.BlockWeights, rb onnx.RelativeBias, hasBias bool) *lora.Block[F] {
	t.Helper()
	b, err := lora.NewBlock(withRelativeBias(blockFromONNX[F](bw), rb, hasBias), lora.Settings{Heads: bw.Heads})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func floats[F lora.Float](s []float32) []F {
	out := make([]F, len(s))
	for i, v := range s {
		out[i] = F(v)
	}
	return out
}

// TestParityONNXRuntime runs all-MiniLM-L6-v2 in onnxruntime with every
// hidden state exposed, on a padded batch of real sentences, and runs the Go
// block, on the weights BlockWeights reads from the graph, on the state
// entering blocks 5 (the last, the one issue 4 trains first) and 0 (whose
// input is the embeddings): its output must equal onnxruntime's state
// leaving the block on every real token to parityTol, in the padded and the
// packed layout.
func TestParityONNXRuntime(t *testing.T) {
	dir := cache.ModelDir(parityModel)
	modelPath := testutil.Artifact(t, filepath.Join(dir, "model.onnx"), "model "+parityModel)
	tokPath := testutil.Artifact(t, filepath.Join(dir, "tokenizer.json"), "model "+parityModel)
	checkBlockParity(t, parityModel, modelPath, tokPath, paritySentences, []int{5, 0})
}

// checkBlockParity runs the model in onnxruntime with every hidden state
// exposed on a padded batch of the sentences, and the Go block (float32 and
// float64, with the encoder's relative position bias when it has one) on the
// state entering each of blocks: it must give onnxruntime's state leaving
// the block on every real token to parityTol, and the packed layout the same
// bits as the padded one.
func checkBlockParity(t *testing.T, name, modelPath, tokPath string, sentences []string, blocks []int) {
	t.Helper()
	lib := testutil.Runtime(t)
	if err := onnx.Init(lib); err != nil {
		t.Fatal(err)
	}

	m, err := onnx.LoadModel(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := m.HiddenStates()
	if err != nil {
		t.Fatal(err)
	}
	rb, hasBias, err := m.RelativeBias()
	if err != nil {
		t.Fatal(err)
	}
	weights := make(map[int]onnx.BlockWeights)
	for _, blk := range blocks {
		enter, err := m.HiddenStateEntering(blk)
		if err != nil {
			t.Fatal(err)
		}
		if enter != hs[blk] {
			t.Fatalf("HiddenStateEntering(%d) = %q; HiddenStates()[%d] = %q", blk, enter, blk, hs[blk])
		}
		if weights[blk], err = m.BlockWeights(blk); err != nil {
			t.Fatal(err)
		}
	}
	var inputs []string
	for _, in := range m.Inputs() {
		inputs = append(inputs, in.Name)
	}
	if err := m.ExposeOutputs(hs...); err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := onnx.NewSessionFromBytes(data, inputs, hs, onnx.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	tok, err := tokenize.Load(tokPath, tokenize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	encs, err := tok.EncodeAll(sentences, 1)
	if err != nil {
		t.Fatal(err)
	}
	nb, tmax := len(encs), 0
	lens := make([]int, nb)
	for i, e := range encs {
		lens[i] = len(e.IDs)
		tmax = max(tmax, lens[i])
	}
	shape := []int64{int64(nb), int64(tmax)}
	feeds := map[string]onnx.Int64Tensor{}
	for _, in := range []string{"input_ids", "attention_mask", "token_type_ids"} {
		feeds[in] = onnx.Int64Tensor{Shape: shape, Data: make([]int64, nb*tmax)}
	}
	for i, e := range encs {
		for j := range tmax {
			feeds["input_ids"].Data[i*tmax+j] = tok.PadID()
		}
		copy(feeds["input_ids"].Data[i*tmax:], e.IDs)
		copy(feeds["attention_mask"].Data[i*tmax:], e.Mask)
		copy(feeds["token_type_ids"].Data[i*tmax:], e.TypeIDs)
	}
	var in []onnx.Int64Tensor
	for _, n := range inputs {
		f, ok := feeds[n]
		if !ok {
			t.Fatalf("%s: graph input %q unknown", name, n)
		}
		in = append(in, f)
	}
	out, err := sess.Run(nil, in)
	if err != nil {
		t.Fatal(err)
	}

	for _, blk := range blocks {
		bw := weights[blk]
		x, want := out[blk].Data, out[blk+1].Data
		c := bw.Hidden
		if len(x) != nb*tmax*c || len(want) != len(x) {
			t.Fatalf("onnxruntime returned %v and %v; want [%d %d %d]", out[blk].Shape, out[blk+1].Shape, nb, tmax, c)
		}
		b32 := onnxBlock[float32](t, bw, rb, hasBias)
		b64 := onnxBlock[float64](t, bw, rb, hasBias)

		// Padded layout, straight from onnxruntime.
		rows := lora.Padded(tmax, lens)
		y := make([]float32, len(x))
		b32.Forward(y, x, rows)
		x64, y64 := floats[float64](x), make([]float64, len(x))
		b64.Forward(y64, x64, rows)

		// Packed layout.
		packed := make([]float32, 0, rows.Tokens()*c)
		for i, l := range lens {
			packed = append(packed, x[i*tmax*c:(i*tmax+l)*c]...)
		}
		yp := make([]float32, len(packed))
		b32.Forward(yp, packed, lora.Packed(lens))

		var d32, d64, dPacked, scale float64
		for i, l := range lens {
			for tt := range l {
				for j := range c {
					k := (i*tmax+tt)*c + j
					w := float64(want[k])
					d32 = maxDiff(d32, float64(y[k]), w)
					d64 = maxDiff(d64, y64[k], w)
					dPacked = maxDiff(dPacked, float64(yp[(packedStart(lens, i)+tt)*c+j]), float64(y[k]))
					scale = max(scale, math.Abs(w))
				}
			}
		}
		t.Logf("block %d of %s, %d sentences of %v tokens (padded to %d), %d heads of %d, I = %d, relative bias %v: max |Go − onnxruntime| = %.3g (float32), %.3g (float64); packed vs padded %.3g; max |y| %.3g",
			blk, name, nb, lens, tmax, bw.Heads, bw.HeadSize, bw.IntermediateSize, hasBias, d32, d64, dPacked, scale)
		if !(d32 < parityTol) || !(d64 < parityTol) {
			t.Errorf("block %d: Go differs from onnxruntime by %.3g (float32) and %.3g (float64); want < %g", blk, d32, d64, parityTol)
		}
		if dPacked != 0 {
			t.Errorf("block %d: packed layout differs from padded by %.3g; want identical", blk, dPacked)
		}
	}
}

// packedStart returns the first packed slot of sequence i.
func packedStart(lens []int, i int) int {
	s := 0
	for _, l := range lens[:i] {
		s += l
	}
	return s
}

// maxDiff returns max(m, |a − b|), +Inf when the difference is NaN.
func maxDiff(m, a, b float64) float64 {
	d := math.Abs(a - b)
	if math.IsNaN(d) {
		return math.Inf(1)
	}
	return max(m, d)
}
