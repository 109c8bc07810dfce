package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/onnx"
)

// layoutFixtures holds the random-weight RoBERTa, XLM-R, DistilBERT and MPNet encoders of
// scripts/make_layout_fixtures.py, each a model directory (model.onnx + tokenizer.json).
var layoutFixtures = filepath.Join("..", "..", "testdata", "layouts")

// TestLayoutFixturesTopBlocksRandomWeights: on the random-weight RoBERTa, XLM-R,
// DistilBERT and MPNet fixtures (their block math is under test, not their outputs),
// extract --cut-top 1 -> fit-head --mode lora|full|reinit -> predict and export give the
// probabilities of the Go block on the cache; DistilBERT's and MPNet's optimum and dynamo exports
// run the chain with --mode lora (the modes differ in the training, not in the graph).
func TestLayoutFixturesTopBlocksRandomWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	topBlocksChain(t, layoutFixtures, []string{"roberta-random", "xlmr-random", "distilbert-random", "mpnet-random"}, []string{"lora", "full", "reinit"})
	topBlocksChain(t, layoutFixtures, []string{"distilbert-random-optimum", "distilbert-random-dynamo", "mpnet-random-optimum", "mpnet-random-dynamo"}, []string{"lora"})
}

// TestLayoutFixturesEmbeddingsRandomWeights: on the random-weight RoBERTa (positions
// from padding_idx+1), DistilBERT (no token types) and MPNet (both, and the relative
// position bias in the blocks) fixtures, extract --cut-top 2 (the embeddings' output and
// the token ids) -> fit-head --mode full|setfit --embeddings trains the embedding tables
// with both blocks, and predict and export compute the Go stack's probabilities from the
// ids; the head counts the tables the model has.
func TestLayoutFixturesEmbeddingsRandomWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	dir := t.TempDir()
	trainCSV, devCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "dev.csv")
	writeToyData(t, trainCSV, 32, 1)
	texts := writeToyData(t, devCSV, 12, 2)
	for _, c := range []struct {
		fixture   string
		vocab     int
		types     int
		positions int
	}{{"roberta-random", 3000, 1, 514}, {"distilbert-random", 219, 0, 512}, {"distilbert-random-dynamo", 219, 0, 512}, {"mpnet-random", 227, 0, 514}} {
		t.Run(c.fixture, func(t *testing.T) {
			model := filepath.Join(layoutFixtures, c.fixture)
			train, dev := filepath.Join(dir, c.fixture+"-train.cache"), filepath.Join(dir, c.fixture+"-dev.cache")
			for _, p := range [][2]string{{trainCSV, train}, {devCSV, dev}} {
				if code, _, stderr := run(t, "extract", "--model", model, "--data", p[0], "--out", p[1], "--cut-top", "2", "--threads", "1"); code != 0 {
					t.Fatalf("extract --cut-top 2: %d\n%s", code, stderr)
				}
			}
			for _, mode := range []string{"full", "setfit"} {
				headFile := filepath.Join(dir, c.fixture+"-"+mode+".head")
				args := []string{"fit-head", "--model", model, "--train", train, "--valid", dev, "--mode", mode, "--embeddings",
					"--epochs", "2", "--lr", "2e-3", "--seed", "1", "--json", "--out", headFile}
				if mode == "setfit" { // 1 positive and 1 negative pair per row
					args = append(args, "--iterations", "1", "--lr", "1e-4")
				}
				code, stdout, stderr := run(t, args...)
				if code != 0 {
					t.Fatalf("fit-head --mode %s --embeddings: %d\n%s", mode, code, stderr)
				}
				var fit struct {
					Trainable int `json:"trainable_params"`
				}
				json.Unmarshal([]byte(stdout), &fit)
				// Per block: 4 C×C projections, C→I, I→C with biases, two LayerNorms (C 32,
				// I 64); the linear head (2 classes; not in setfit, whose logistic regression
				// fits afterwards); the tables and their LayerNorm.
				perBlock := 4*(32*32+32) + 32*64 + 64 + 64*32 + 32 + 4*32
				want := 2*perBlock + (c.vocab+c.positions+c.types)*32 + 2*32
				if mode == "full" {
					want += 2*32 + 2
				}
				if fit.Trainable != want {
					t.Fatalf("--mode %s: %d trainable parameters; want %d", mode, fit.Trainable, want)
				}
				goProbs, _ := topProbs(t, headFile, dev)
				pred := filepath.Join(dir, c.fixture+"-"+mode+".jsonl")
				if code, _, stderr := run(t, "predict", "--model", model, "--head", headFile, "--data", devCSV, "--out", pred); code != 0 {
					t.Fatalf("predict: %d\n%s", code, stderr)
				}
				onnxFile := filepath.Join(dir, c.fixture+"-"+mode+".onnx")
				if code, _, stderr := run(t, "export", "--model", model, "--head", headFile, "--out", onnxFile); code != 0 {
					t.Fatalf("export: %d\n%s", code, stderr)
				}
				exported := exportedFormProbs(t, onnxFile, filepath.Join(model, "tokenizer.json"), texts)
				maxPred, maxExport := 0.0, 0.0
				for i, hp := range predictedProbs(t, pred) {
					probs := [2]float32{hp["neg"], hp["pos"]}
					for k := range 2 {
						dp := math.Abs(float64(probs[k] - goProbs[2*i+k]))
						de := math.Abs(float64(exported[i][k] - goProbs[2*i+k]))
						if !(dp < topTol) || !(de < topTol) {
							t.Fatalf("--mode %s row %d: predict %v, export %v, Go stack from the ids %v", mode, i, probs, exported[i], goProbs[2*i:2*i+2])
						}
						maxPred, maxExport = max(maxPred, dp), max(maxExport, de)
					}
				}
				t.Logf("%s --mode %s --embeddings: max abs diff of probabilities vs the Go stack: predict %.2g, export %.2g (%d texts)", c.fixture, mode, maxPred, maxExport, len(texts))
			}
		})
	}
}

// TestLayoutUnknownFamily: a graph whose blocks match no supported family (the
// DistilBERT fixture's blocks renamed h.N, as GPT-2 names them) is refused by extract
// --cut-top, naming the scopes found and the supported layouts, and nothing is written;
// its last hidden state (--layers -1, the default) still extracts.
func TestLayoutUnknownFamily(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if err := os.MkdirAll(model, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(layoutFixtures, "distilbert-random")
	m, err := onnx.LoadModel(filepath.Join(src, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Proto.GetGraph().GetNode() {
		n.Name = ptr(strings.ReplaceAll(n.GetName(), "/transformer/layer.", "/h."))
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(src, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(model, "model.onnx"), b, 0o644)
	os.WriteFile(filepath.Join(model, "tokenizer.json"), tok, 0o644)
	data := filepath.Join(dir, "data.csv")
	writeToyData(t, data, 8, 3)

	out := filepath.Join(dir, "out.cache")
	code, _, stderr := run(t, "extract", "--model", model, "--data", data, "--out", out, "--cut-top", "1")
	if code == 0 {
		t.Fatal("extract --cut-top 1 on an unknown block layout: exit 0")
	}
	for _, w := range []string{"*/h.N/*", "*/encoder/layer.N/output/LayerNorm/* (BERT, RoBERTa, XLM-RoBERTa)", "(DistilBERT)"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("%q does not mention %q", stderr, w)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("extract failed but wrote %s", out)
	}
	if code, _, stderr := run(t, "extract", "--model", model, "--data", data, "--out", filepath.Join(dir, "last.safetensors")); code != 0 {
		t.Fatalf("extract of the last hidden state: %d\n%s", code, stderr)
	}
}
