package lora

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// tinyEmbeddings returns float64 tables of a 13-word vocabulary, 6 positions and 2
// token types, width tinyC.
func tinyEmbeddings(seed uint64) EmbeddingWeights[float64] {
	rng := rand.New(rand.NewPCG(seed, 3))
	return EmbeddingWeights[float64]{
		Word: randSlice[float64](rng, 13*tinyC, 1), Position: randSlice[float64](rng, 6*tinyC, 0.5),
		TokenType: randSlice[float64](rng, 2*tinyC, 0.5), Norm: randNorm[float64](rng, tinyC),
	}
}

// TestEmbeddingGradients checks the embeddings' backward against central finite
// differences (float64), with the loss Σ dy·y on padded sequences whose ids repeat
// (a word used twice gathers two gradients): every table and the LayerNorm within
// gradTol in the infinity norm; the ids, types and dy unchanged; padding slots of the
// output zero. It does so for BERT's embeddings, for RoBERTa's positions (counted from
// padding_idx+1, a pad id inside a sequence taking position padding_idx) and for
// DistilBERT's (no token type table).
func TestEmbeddingGradients(t *testing.T) {
	for _, c := range []struct {
		name      string
		roberta   bool // PadPositions with PaddingIdx 1
		noTypes   bool // TokenType nil
		wantPos0  []int
		wantParam int
	}{
		{"bert", false, false, []int{0, 1, 2, 3, 4}, 5},
		{"roberta positions", true, false, []int{2, 1, 3, 4, 5}, 5},
		{"no token types", false, true, []int{0, 1, 2, 3, 4}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows := Padded(5, []int{5, 2, 4})
			slots := 15
			ids := make([]int64, slots)
			types := make([]int64, slots)
			rng := rand.New(rand.NewPCG(4, 4))
			for i := range ids {
				ids[i], types[i] = int64(rng.IntN(13)), int64(rng.IntN(2))
			}
			ids[0], ids[3], ids[6] = 7, 7, 7 // a repeated word
			w := tinyEmbeddings(1)
			if c.roberta {
				// Rows 0 and 1 are no token's; a pad id (1) inside the first sequence.
				w.Position = randSlice[float64](rand.New(rand.NewPCG(5, 5)), 8*tinyC, 0.5)
				w.PadPositions, w.PaddingIdx = true, 1
				ids[0], ids[1], ids[2] = 3, 1, 4
			}
			if c.noTypes {
				w.TokenType = nil
			}
			e, err := NewEmbeddings(w)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(e.Params()); n != c.wantParam {
				t.Fatalf("%d parameters; want %d", n, c.wantParam)
			}
			dy := randSlice[float64](rng, slots*tinyC, 1)
			in := inRows(rows, slots)
			y := make([]float64, slots*tinyC)
			loss := func() float64 {
				e.Forward(y, ids, types, rows)
				var l float64
				for i, v := range y {
					l += dy[i] * v
				}
				return l
			}
			idsBefore, typesBefore, dyBefore := slices.Clone(ids), slices.Clone(types), slices.Clone(dy)
			e.ZeroGrad()
			loss()
			if !slices.Equal(e.pos[:5], c.wantPos0) {
				t.Fatalf("positions of the first sequence %v; want %v", e.pos[:5], c.wantPos0)
			}
			for s, ok := range in {
				for j := range tinyC {
					if !ok && y[s*tinyC+j] != 0 {
						t.Fatalf("padding slot %d: y = %v; want 0", s, y[s*tinyC+j])
					}
				}
			}
			e.Backward(dy, rows)
			if !slices.Equal(ids, idsBefore) || !slices.Equal(types, typesBefore) || !sameBits(dy, dyBefore) {
				t.Fatal("Forward or Backward modified ids, types or dy")
			}
			worst := 0.0
			for _, p := range e.Params() {
				analytic := slices.Clone(p.Grad)
				worst = max(worst, checkGrad(t, p.Name, analytic, numericGrad(p.Value, loss)))
			}
			t.Logf("embeddings (%s): worst ‖analytic − numeric‖∞/max(1, ‖numeric‖∞) = %.2g (tolerance %g)", c.name, worst, gradTol)

			// nil types: all type 0, as one text per row.
			e.Forward(y, ids, nil, rows)
			zero := make([]int64, slots)
			y0 := make([]float64, len(y))
			e.Forward(y0, ids, zero, rows)
			if !sameBits(y, y0) {
				t.Fatal("nil types differ from all-zero types")
			}
			if err := e.CheckIDs([]int64{1, 13}, Packed([]int{2})); err == nil {
				t.Fatal("CheckIDs accepted id 13 of a 13-word vocabulary")
			}
			// 6 positions; RoBERTa's 8 rows hold 8 − (padding_idx+1) = 6 too.
			if err := e.CheckIDs(make([]int64, 7), Packed([]int{7})); err == nil {
				t.Fatal("CheckIDs accepted a sequence longer than the position table")
			}
			if err := e.CheckIDs(make([]int64, 6), Packed([]int{6})); err != nil {
				t.Fatalf("CheckIDs refused a sequence as long as the position table: %v", err)
			}
		})
	}
	bad := tinyEmbeddings(1)
	bad.PadPositions, bad.PaddingIdx = true, 6
	if _, err := NewEmbeddings(bad); !errors.Is(err, ErrBadWeights) {
		t.Fatalf("padding_idx 6 of a 6-row position table: %v; want ErrBadWeights", err)
	}
}

// toyIDs returns n sequences of 3..9 token ids from a 20-word vocabulary whose class
// (of 2) is whether word 1 or word 2 occurs in them.
func toyIDs(seed uint64, n int) *Examples {
	rng := rand.New(rand.NewPCG(seed, 8))
	ex := &Examples{Offsets: []int64{0}}
	for range n {
		l := 3 + rng.IntN(7)
		y := rng.IntN(2)
		for i := range l {
			id := int64(3 + rng.IntN(17))
			if i == 1+rng.IntN(l-1) || i == 1 {
				id = int64(1 + y)
			}
			ex.IDs = append(ex.IDs, id)
		}
		ex.Offsets = append(ex.Offsets, ex.Offsets[len(ex.Offsets)-1]+int64(l))
		ex.Labels = append(ex.Labels, y)
	}
	return ex
}

// TestTrainEmbeddings: mode full with embeddings trains the tables from input ids
// (the loss falls, the tables change, the caller's do not), recomputing gives the same
// bits, the returned stack reproduces the best epoch's accuracy from the ids, and other
// modes or examples without ids are refused.
func TestTrainEmbeddings(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 1))
	emb := EmbeddingWeights[float32]{Word: randSlice[float32](rng, 20*tC, 1), Position: randSlice[float32](rng, 12*tC, 0.3),
		TokenType: randSlice[float32](rng, 2*tC, 0.3), Norm: randNorm[float32](rng, tC)}
	before := emb.clone()
	train, valid := toyIDs(1, 160), toyIDs(2, 60)
	s := TrainSettings{Mode: ModeFull, Heads: tHeads, Epochs: 4, BatchSize: 16, LR: 3e-3, Seed: 3, Embeddings: &emb}
	r, err := Train(context.Background(), toyBlocks(2), 2, train, valid, s)
	if err != nil {
		t.Fatal(err)
	}
	h := r.History
	if !(h[len(h)-1].TrainLoss < 0.8*h[0].TrainLoss) {
		t.Fatalf("training loss did not fall: %+v", h)
	}
	if !sameBits(emb.Word, before.Word) || !sameBits(emb.Norm.Gamma, before.Norm.Gamma) {
		t.Fatal("Train modified the caller's embedding tables")
	}
	if r.Embeddings == nil || sameBits(r.Embeddings.Word, emb.Word) || sameBits(r.Embeddings.Position, emb.Position) {
		t.Fatal("the embedding tables did not train")
	}
	probs := make([]float32, valid.Len()*2)
	if err := r.Stack.Probs(probs, valid, 7); err != nil {
		t.Fatal(err)
	}
	if _, acc, _ := Scores(probs, valid.Labels, 2); acc != h[r.BestEpoch-1].ValidAccuracy || acc < 0.8 {
		t.Fatalf("stack accuracy %v; best epoch's %v (want >= 0.8)", acc, h[r.BestEpoch-1].ValidAccuracy)
	}
	s.Recompute = true
	r2, err := Train(context.Background(), toyBlocks(2), 2, train, valid, s)
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(r.Embeddings.Word, r2.Embeddings.Word) || !sameBits(r.Stack.W, r2.Stack.W) {
		t.Fatal("Recompute changed the result")
	}
	s.Recompute = false
	s.Mode = ModeLoRA
	if _, err := Train(context.Background(), toyBlocks(1), 2, train, nil, s); !errors.Is(err, ErrBadSetting) {
		t.Fatalf("lora with embeddings: %v; want ErrBadSetting", err)
	}
	s.Mode = ModeFull
	noIDs := toyExamples(3, 10, 2)
	if _, err := Train(context.Background(), toyBlocks(1), 2, noIDs, nil, s); !errors.Is(err, ErrBadData) {
		t.Fatalf("examples without ids: %v; want ErrBadData", err)
	}
	bad := toyIDs(4, 5)
	bad.IDs[2] = 20
	if _, err := Train(context.Background(), toyBlocks(1), 2, bad, nil, s); !errors.Is(err, ErrBadData) {
		t.Fatalf("id 20 of a 20-word vocabulary: %v; want ErrBadData", err)
	}
}
