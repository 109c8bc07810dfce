package lora_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/lora"
	"github.com/headstart-ml/headstart/onnx"
)

// layoutsDir holds the random-weight encoders of scripts/make_layout_fixtures.py.
var layoutsDir = filepath.Join("..", "testdata", "layouts")

// layoutsReference is layoutsDir/reference.json: PyTorch's hidden states of each
// fixture on a few texts.
type layoutsReference struct {
	Header   map[string]any `json:"header"`
	Families map[string]struct {
		Dir          string          `json:"dir"`
		Hidden       int             `json:"hidden"`
		Layers       int             `json:"layers"`
		PaddingIdx   *int            `json:"padding_idx"`
		Texts        []string        `json:"texts"`
		IDs          [][]int64       `json:"ids"`
		PositionIDs  [][]int         `json:"position_ids"`
		HiddenStates [][][][]float64 `json:"hidden_states"` // [text][state][token][C]
	} `json:"families"`
}

// loadLayoutsReference reads the reference after checking every file SHA256SUMS lists.
func loadLayoutsReference(t *testing.T) layoutsReference {
	t.Helper()
	f, err := os.Open(filepath.Join(layoutsDir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		b, err := os.ReadFile(filepath.Join(layoutsDir, name))
		if err != nil || !ok {
			t.Fatalf("SHA256SUMS line %q: %v", sc.Text(), err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
			t.Fatalf("%s: sha256 %x; SHA256SUMS says %s (run scripts/make_layout_fixtures.py)", name, h, sum)
		}
	}
	var ref layoutsReference
	b, err := os.ReadFile(filepath.Join(layoutsDir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// embeddingsFromONNX converts the tables onnx.Model.EmbeddingWeights reads.
func embeddingsFromONNX(ew onnx.EmbeddingWeights) lora.EmbeddingWeights[float32] {
	return lora.EmbeddingWeights[float32]{Word: ew.Word, Position: ew.Position, TokenType: ew.TokenType,
		Norm:         lora.LayerNorm[float32]{Gamma: ew.Norm.Gamma, Beta: ew.Norm.Beta, Eps: float64(ew.Norm.Eps)},
		PadPositions: ew.PadPositions, PaddingIdx: ew.PaddingIdx}
}

// TestBlockMathRandomWeightFixtures runs the random-weight RoBERTa, XLM-R,
// DistilBERT and MPNet fixtures (DistilBERT in its legacy and dynamo exports; their weights mean nothing: the block and embedding math is
// under test; MPNet's blocks with the encoder's relative position bias) in onnxruntime with every hidden state exposed, on the reference texts as
// one right-padded batch, and checks to parityTol on every real token:
//
//   - the Go block (float32 and float64), on the weights BlockWeights reads, on the
//     state onnxruntime gives entering it, against onnxruntime's state leaving it;
//   - the Go embeddings, on the tables EmbeddingWeights reads and the ids alone, against
//     onnxruntime's and PyTorch's embeddings output: RoBERTa's positions from
//     padding_idx+1, skipping a <pad> inside a text, and DistilBERT without token types;
//   - the Go stack (embeddings then every block) against PyTorch's last hidden state;
//   - onnxruntime's states against PyTorch's, so that the graph is the model.
func TestBlockMathRandomWeightFixtures(t *testing.T) {
	ref := loadLayoutsReference(t)
	lib := testutil.Runtime(t)
	if err := onnx.Init(lib); err != nil {
		t.Fatal(err)
	}
	for _, fx := range []struct{ family, dir string }{
		{"roberta", "roberta-random"}, {"xlmr", "xlmr-random"}, {"distilbert", "distilbert-random"},
		{"distilbert", "distilbert-random-dynamo"},  // the same weights, exported by dynamo
		{"distilbert", "distilbert-random-optimum"}, // and by optimum-cli
		{"mpnet", "mpnet-random-dynamo"}, {"mpnet", "mpnet-random-optimum"},
		{"mpnet", "mpnet-random"},
	} {
		family := fx.family
		t.Run(fx.dir, func(t *testing.T) {
			fr, ok := ref.Families[family]
			if !ok {
				t.Fatalf("reference.json has no %s", family)
			}
			m, err := onnx.LoadModel(filepath.Join(layoutsDir, fx.dir, "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			lay, err := m.Layout()
			if err != nil {
				t.Fatal(err)
			}
			rb, hasBias, err := m.RelativeBias() // MPNet's, shared by the blocks
			if err != nil {
				t.Fatal(err)
			}
			if hasBias != lay.RelativeBias {
				t.Fatalf("RelativeBias found %v; Layout says %v", hasBias, lay.RelativeBias)
			}
			if (fr.PaddingIdx != nil) != lay.PadPositions || (fr.PaddingIdx != nil && *fr.PaddingIdx != lay.PaddingIdx) {
				t.Fatalf("Layout %+v; the reference's padding_idx is %v", lay, fr.PaddingIdx)
			}
			if fr.PaddingIdx != nil { // the <pad> text: a position padding_idx after the first token
				found := false
				for _, p := range fr.PositionIDs {
					found = found || slices.Contains(p[1:], *fr.PaddingIdx)
				}
				if !found {
					t.Fatal("no reference text has a pad token inside it; the position skip is not exercised")
				}
			}
			hs, err := m.HiddenStates()
			if err != nil {
				t.Fatal(err)
			}
			L := len(hs) - 1
			bws := make([]onnx.BlockWeights, L)
			for i := range L {
				if bws[i], err = m.BlockWeights(i); err != nil {
					t.Fatal(err)
				}
			}
			ew, err := m.EmbeddingWeights()
			if err != nil {
				t.Fatal(err)
			}
			if err := m.ExposeOutputs(hs...); err != nil {
				t.Fatal(err)
			}
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var inputs []string
			for _, in := range m.Inputs() {
				inputs = append(inputs, in.Name)
			}
			if !slices.Equal(inputs, []string{"input_ids", "attention_mask"}) {
				t.Fatalf("graph inputs %v; want input_ids, attention_mask", inputs)
			}
			sess, err := onnx.NewSessionFromBytes(data, inputs, hs, onnx.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()

			c := fr.Hidden
			nb, tmax := len(fr.IDs), 0
			lens := make([]int, nb)
			var packedIDs []int64
			for i, ids := range fr.IDs {
				lens[i] = len(ids)
				tmax = max(tmax, lens[i])
				packedIDs = append(packedIDs, ids...)
			}
			pad := int64(0)
			if fr.PaddingIdx != nil {
				pad = int64(*fr.PaddingIdx)
			}
			shape := []int64{int64(nb), int64(tmax)}
			ids := onnx.Int64Tensor{Shape: shape, Data: make([]int64, nb*tmax)}
			mask := onnx.Int64Tensor{Shape: shape, Data: make([]int64, nb*tmax)}
			for i, row := range fr.IDs {
				for j := range tmax {
					ids.Data[i*tmax+j] = pad
				}
				copy(ids.Data[i*tmax:], row)
				for j := range row {
					mask.Data[i*tmax+j] = 1
				}
			}
			out, err := sess.Run(nil, []onnx.Int64Tensor{ids, mask})
			if err != nil {
				t.Fatal(err)
			}
			rows := lora.Padded(tmax, lens)
			// real compares a padded (nb, tmax, C) tensor with want on real tokens; wantAt
			// gives token tt of text i, feature j.
			real := func(got []float32, wantAt func(i, tt, j int) float64) float64 {
				d := 0.0
				for i, l := range lens {
					for tt := range l {
						for j := range c {
							d = maxDiff(d, float64(got[(i*tmax+tt)*c+j]), wantAt(i, tt, j))
						}
					}
				}
				return d
			}
			torchAt := func(state int) func(i, tt, j int) float64 {
				return func(i, tt, j int) float64 { return fr.HiddenStates[i][state][tt][j] }
			}
			ortAt := func(state int) func(i, tt, j int) float64 {
				return func(i, tt, j int) float64 { return float64(out[state].Data[(i*tmax+tt)*c+j]) }
			}

			for l := range L + 1 {
				if d := real(out[l].Data, torchAt(l)); !(d < parityTol) {
					t.Errorf("state %d: onnxruntime differs from PyTorch by %.3g; want < %g", l, d, parityTol)
				}
			}
			var worst32, worst64 float64
			for l, bw := range bws {
				b32 := onnxBlock[float32](t, bw, rb, hasBias)
				b64 := onnxBlock[float64](t, bw, rb, hasBias)
				y := make([]float32, nb*tmax*c)
				b32.Forward(y, out[l].Data, rows)
				y64 := make([]float64, len(y))
				b64.Forward(y64, floats[float64](out[l].Data), rows)
				d32 := real(y, ortAt(l+1))
				y64as32 := make([]float32, len(y64))
				for k, v := range y64 {
					y64as32[k] = float32(v)
				}
				d64 := real(y64as32, ortAt(l+1))
				worst32, worst64 = max(worst32, d32), max(worst64, d64)
				if !(d32 < parityTol) || !(d64 < parityTol) {
					t.Errorf("block %d: Go differs from onnxruntime by %.3g (float32), %.3g (float64); want < %g", l, d32, d64, parityTol)
				}
			}

			emb, err := lora.NewEmbeddings(embeddingsFromONNX(ew))
			if err != nil {
				t.Fatal(err)
			}
			if err := emb.CheckIDs(ids.Data, rows); err != nil {
				t.Fatal(err)
			}
			x := make([]float32, nb*tmax*c)
			emb.Forward(x, ids.Data, nil, rows)
			dEmbORT, dEmbTorch := real(x, ortAt(0)), real(x, torchAt(0))
			if !(dEmbORT < parityTol) || !(dEmbTorch < parityTol) {
				t.Errorf("embeddings: Go differs from onnxruntime by %.3g, from PyTorch by %.3g; want < %g", dEmbORT, dEmbTorch, parityTol)
			}
			// The whole stack from the ids, packed.
			packed := lora.Packed(lens)
			a, b := make([]float32, len(packedIDs)*c), make([]float32, len(packedIDs)*c)
			emb.Forward(a, packedIDs, nil, packed)
			for _, bw := range bws {
				blk := onnxBlock[float32](t, bw, rb, hasBias)
				blk.Forward(b, a, packed)
				a, b = b, a
			}
			dStack := 0.0
			for i, l := range lens {
				for tt := range l {
					for j := range c {
						dStack = maxDiff(dStack, float64(a[(packedStart(lens, i)+tt)*c+j]), fr.HiddenStates[i][L][tt][j])
					}
				}
			}
			if !(dStack < parityTol) {
				t.Errorf("Go embeddings and blocks differ from PyTorch's last hidden state by %.3g; want < %g", dStack, parityTol)
			}
			t.Logf("%s (%s layout, random weights), %d texts of %v tokens: max |Go − onnxruntime| per block %.3g (float32), %.3g (float64); embeddings vs onnxruntime %.3g, vs PyTorch %.3g; Go stack from ids vs PyTorch %.3g",
				fx.dir, lay.Family, nb, lens, worst32, worst64, dEmbORT, dEmbTorch, dStack)
		})
	}
}
