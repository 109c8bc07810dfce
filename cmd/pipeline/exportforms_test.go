package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/exportrun"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// tinyForms holds the tiny BERT in every export form (scripts/make_export_fixtures.py).
var tinyForms = filepath.Join("..", "..", "testdata", "exportforms")

// writeToyData writes n labelled sentences made of the tiny vocabulary's words: a
// positive or negative adjective decides the label.
func writeToyData(t *testing.T, path string, n int, seed uint64) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	pos := []string{"good", "great", "fine", "best", "nice", "happy", "funny"}
	neg := []string{"bad", "awful", "worst", "sad", "boring", "poor", "dark"}
	noun := []string{"film", "movie", "book", "music", "food", "day", "night"}
	var b strings.Builder
	b.WriteString("text,label\n")
	var texts []string
	for i := range n {
		words, label := pos, "pos"
		if i%2 == 1 {
			words, label = neg, "neg"
		}
		text := fmt.Sprintf("the %s was %s and %s", noun[rng.IntN(len(noun))], words[rng.IntN(len(words))], words[rng.IntN(len(words))])
		fmt.Fprintf(&b, "%s,%s\n", text, label)
		texts = append(texts, text)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return texts
}

// TestExportFormsTopBlocks: on the legacy, optimum, transformers-5, dynamo and
// sentence-transformers exports of the tiny BERT, extract --cut-top 1 -> fit-head --mode
// lora|full|reinit -> predict and export give the probabilities of the Go block on the
// cache.
func TestExportFormsTopBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	topBlocksChain(t, tinyForms, []string{"legacy", "optimum", "tf5", "dynamo", "st"}, []string{"lora", "full", "reinit"})
}

// TestExportFormsTopBlocksReal: the same chain (--mode lora) on all-MiniLM-L6-v2 in the
// four trainable forms, when scripts/make_export_fixtures.py has written them to the cache.
func TestExportFormsTopBlocksReal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	dir := filepath.Join(cache.Dir(), "exportforms", "all-minilm-l6-v2")
	if _, err := os.Stat(filepath.Join(dir, "reference.json")); err != nil {
		t.Skipf("skipped: the real-checkpoint export forms are not in %s (scripts/make_export_fixtures.py writes them)", dir)
	}
	topBlocksChain(t, dir, []string{"legacy", "optimum", "tf5", "dynamo"}, []string{"lora"})
}

func topBlocksChain(t *testing.T, root string, forms, modes []string) {
	dir := t.TempDir()
	trainCSV, devCSV := filepath.Join(dir, "train.csv"), filepath.Join(dir, "dev.csv")
	writeToyData(t, trainCSV, 48, 1)
	texts := writeToyData(t, devCSV, 16, 2)
	for _, form := range forms {
		t.Run(form, func(t *testing.T) {
			model := filepath.Join(root, form)
			if _, err := os.Stat(filepath.Join(model, "model.onnx")); err != nil {
				t.Fatalf("fixture missing (scripts/make_export_fixtures.py writes it): %v", err)
			}
			train, dev := filepath.Join(dir, form+"-train.cache"), filepath.Join(dir, form+"-dev.cache")
			for _, c := range [][2]string{{trainCSV, train}, {devCSV, dev}} {
				if code, _, stderr := run(t, "extract", "--model", model, "--data", c[0], "--out", c[1], "--cut-top", "1", "--threads", "1"); code != 0 {
					t.Fatalf("extract --cut-top 1: %d\n%s", code, stderr)
				}
			}
			for _, mode := range modes {
				headFile := filepath.Join(dir, form+"-"+mode+".head")
				if code, _, stderr := run(t, "fit-head", "--model", model, "--train", train, "--valid", dev, "--mode", mode, "--epochs", "2", "--lr", "2e-3", "--seed", "1", "--out", headFile); code != 0 {
					t.Fatalf("fit-head --mode %s: %d\n%s", mode, code, stderr)
				}
				goProbs := goBlockProbs(t, headFile, dev)
				pred := filepath.Join(dir, form+"-"+mode+".jsonl")
				if code, _, stderr := run(t, "predict", "--model", model, "--head", headFile, "--data", devCSV, "--out", pred); code != 0 {
					t.Fatalf("predict: %d\n%s", code, stderr)
				}
				maxPred := 0.0
				for i, hp := range predictedProbs(t, pred) {
					probs := [2]float32{hp["neg"], hp["pos"]}
					for k := range 2 {
						d := math.Abs(float64(probs[k] - goProbs[i][k]))
						if !(d < topTol) {
							t.Fatalf("%s row %d: predict %v, Go block on the cache %v", mode, i, probs, goProbs[i])
						}
						maxPred = max(maxPred, d)
					}
				}
				onnxFile := filepath.Join(dir, form+"-"+mode+".onnx")
				if code, _, stderr := run(t, "export", "--model", model, "--head", headFile, "--out", onnxFile); code != 0 {
					t.Fatalf("export: %d\n%s", code, stderr)
				}
				maxExport := 0.0
				for i, probs := range exportedFormProbs(t, onnxFile, filepath.Join(model, "tokenizer.json"), texts) {
					for k := range 2 {
						d := math.Abs(float64(probs[k] - goProbs[i][k]))
						if !(d < topTol) {
							t.Fatalf("%s row %d: exported graph %v, Go block on the cache %v", mode, i, probs, goProbs[i])
						}
						maxExport = max(maxExport, d)
					}
				}
				t.Logf("%s --mode %s: max abs diff of probabilities vs the Go block: predict %.2g, export %.2g (%d texts)", form, mode, maxPred, maxExport, len(texts))
			}
		})
	}
}

// exportedFormProbs runs an exported classifier in onnxruntime on each text with what
// export wrote beside it (the tokenizer copy, max_len and prefix of its manifest), after
// checking that the tokenizer copy is the backbone's (tokPath).
func exportedFormProbs(t *testing.T, onnxFile, tokPath string, texts []string) [][]float32 {
	t.Helper()
	b, err := os.ReadFile(strings.TrimSuffix(onnxFile, ".onnx") + ".manifest.json")
	if err != nil {
		t.Fatalf("export wrote no manifest: %v", err)
	}
	var man headstart.ExportManifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(filepath.Dir(onnxFile), man.Tokenizer)
	want, _ := os.ReadFile(tokPath)
	if got, err := os.ReadFile(copyPath); err != nil || string(got) != string(want) {
		t.Fatalf("export's tokenizer %s is not the backbone's %s (%v)", copyPath, tokPath, err)
	}
	probs, err := exportrun.Probs(onnxFile, texts)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

// goBlockProbs runs a top-block head's Go stack on an activation cache.
func goBlockProbs(t *testing.T, headFile, cache string) [][2]float32 {
	t.Helper()
	p, _ := topProbs(t, headFile, cache)
	out := make([][2]float32, len(p)/2)
	for i := range out {
		out[i] = [2]float32{p[2*i], p[2*i+1]}
	}
	return out
}

// predictedProbs reads predict's JSONL of one head: each row's probabilities by class.
func predictedProbs(t *testing.T, path string) []map[string]float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]float32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			Heads map[string]struct {
				Probs map[string]float32 `json:"probs"`
			} `json:"heads"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		var hp map[string]float32
		for _, h := range r.Heads { // one head
			hp = h.Probs
		}
		out = append(out, hp)
	}
	return out
}

// TestExportFormsRefusals: what a form cannot do is refused before any work, naming the
// node or pattern, and nothing is written: the fused graph's block boundaries, a
// classifier's logits, inputs the tokenizer cannot feed.
func TestExportFormsRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.csv")
	writeToyData(t, data, 8, 3)
	fused := filepath.Join(tinyForms, "fused")

	// An encoder with an input no tokenizer makes: the legacy form plus a float input.
	odd := filepath.Join(dir, "odd")
	os.MkdirAll(odd, 0o755)
	m, err := onnx.LoadModel(filepath.Join(tinyForms, "legacy", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	elem := int32(onnxpb.TensorProto_FLOAT)
	m.Proto.Graph.Input = append(m.Proto.Graph.Input, &onnxpb.ValueInfoProto{Name: ptr("pixel_values"),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: &elem}}}})
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(odd, "model.onnx"), b, 0o644)
	tok, _ := os.ReadFile(filepath.Join(tinyForms, "legacy", "tokenizer.json"))
	os.WriteFile(filepath.Join(odd, "tokenizer.json"), tok, 0o644)

	// A manifest that disagrees with its graph: the legacy form said to be 64 wide, or
	// 3 blocks deep.
	wide, deep := filepath.Join(dir, "wide"), filepath.Join(dir, "deep")
	for d, manifest := range map[string]string{wide: `{"hidden_size": 64, "layers": 2}`, deep: `{"hidden_size": 32, "layers": 3}`} {
		os.MkdirAll(d, 0o755)
		legacy, _ := os.ReadFile(filepath.Join(tinyForms, "legacy", "model.onnx"))
		os.WriteFile(filepath.Join(d, "model.onnx"), legacy, 0o644)
		os.WriteFile(filepath.Join(d, "tokenizer.json"), tok, 0o644)
		os.WriteFile(filepath.Join(d, "manifest.json"), []byte(manifest), 0o644)
	}

	for i, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--model", fused, "--layers", "1"}, []string{"SkipLayerNormalization", "--layers -1"}},
		{[]string{"--model", fused, "--layers", "-2,-1"}, []string{"SkipLayerNormalization", "--layers -1"}},
		{[]string{"--model", fused, "--cut-top", "1"}, []string{"SkipLayerNormalization", "--cut-top"}},
		{[]string{"--model", filepath.Join(tinyForms, "classifier")}, []string{"not an encoder", "logits"}},
		{[]string{"--model", odd}, []string{"pixel_values", "tokenizer feeds only"}},
		{[]string{"--model", wide}, []string{"hidden_size 64", "width 32"}},
		{[]string{"--model", deep}, []string{"3 layers", "2 encoder blocks"}},
	} {
		out := filepath.Join(dir, fmt.Sprintf("out%d.safetensors", i))
		if len(c.args) > 2 && c.args[2] == "--cut-top" {
			out = filepath.Join(dir, fmt.Sprintf("out%d.cache", i))
		}
		code, _, stderr := run(t, append([]string{"extract", "--data", data, "--out", out}, c.args...)...)
		if code == 0 {
			t.Errorf("extract %v: exit 0; want a refusal", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("extract %v: %q does not mention %q", c.args, stderr, w)
			}
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("extract %v failed but wrote %s", c.args, out)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 4 { // data.csv, odd/, wide/, deep/
			t.Errorf("extract %v left files behind: %v", c.args, ents)
		}
	}
	// --layers -1 is what a fused graph gives.
	if code, _, stderr := run(t, "extract", "--model", fused, "--data", data, "--out", filepath.Join(dir, "fused.safetensors")); code != 0 {
		t.Fatalf("extract on the fused graph: %d\n%s", code, stderr)
	}
}

func ptr[T any](v T) *T { return &v }
