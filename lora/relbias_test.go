package lora

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRelativeBucketPyTorch: RelativeBucket equals transformers'
// MPNetEncoder.relative_position_bucket (32 buckets, max distance 128) on
// every relative position −200..200, as scripts/make_layout_fixtures.py dumped
// it from PyTorch (testdata/layouts/reference.json, family mpnet): the exact
// buckets, the logarithmic ones (whose float32
// rounding decides the edges at 16, 32 and 64) and the cap, both ways.
func TestRelativeBucketPyTorch(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "layouts", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all struct {
		Families map[string]struct {
			Buckets struct {
				From   int   `json:"from"`
				Values []int `json:"values"`
			} `json:"buckets"`
		} `json:"families"`
	}
	if err := json.Unmarshal(data, &all); err != nil {
		t.Fatal(err)
	}
	ref := all.Families["mpnet"]
	if len(ref.Buckets.Values) < 300 {
		t.Fatalf("reference has %d buckets", len(ref.Buckets.Values))
	}
	bad := 0
	for i, want := range ref.Buckets.Values {
		rel := ref.Buckets.From + i
		if got := RelativeBucket(rel, 32, DefaultMaxDistance); got != want {
			if bad++; bad <= 5 {
				t.Errorf("RelativeBucket(%d) = %d; PyTorch %d", rel, got, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d relative positions in the wrong bucket", bad, len(ref.Buckets.Values))
	}
}

// TestRelativeBiasApplied: a block with a zero bias table computes exactly
// what the plain block computes, and a random table changes the output (the
// bias reaches the scores); sequences of different lengths in one batch each
// get their own positions (a sequence's output does not depend on its
// batch-mates).
func TestRelativeBiasApplied(t *testing.T) {
	rows := Padded(5, []int{5, 2})
	rng := rand.New(rand.NewPCG(4, 4))
	x := randSlice[float64](rng, 10*tinyC, 1)
	run := func(rb *RelativeBias[float64], rows Rows, x []float64) []float64 {
		w := randWeights[float64](1, tinyC, tinyI)
		w.RelativeBias = rb
		b, err := NewBlock(w, Settings{Heads: tinyHeads})
		if err != nil {
			t.Fatal(err)
		}
		y := make([]float64, len(x))
		b.Forward(y, x, rows)
		return y
	}
	plain := run(nil, rows, x)
	zero := tinyRelBias[float64](5)
	clear(zero.Table)
	if got := run(zero, rows, x); !slices.Equal(got, plain) {
		t.Error("a zero bias table changes the output")
	}
	biased := run(tinyRelBias[float64](5), rows, x)
	if d := infNorm(sub(biased[:5*tinyC], plain[:5*tinyC])); !(d > 1e-3) {
		t.Errorf("a random bias table moves the output by %.3g; want a visible change", d)
	}
	alone := run(tinyRelBias[float64](5), Packed([]int{2}), x[5*tinyC:7*tinyC])
	if !slices.Equal(alone, biased[5*tinyC:7*tinyC]) {
		t.Error("the short sequence's output depends on its batch-mate")
	}
}

func sub(a, b []float64) []float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return d
}
