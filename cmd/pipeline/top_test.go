package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// topTol bounds |p − p'| between the Go top block on cached states and onnxruntime
// running the whole graph with the trained block written in: the block's outputs agree
// to about 1e-6 (lora's parity test), the probabilities to well within this.
const topTol = 1e-4

// headRows writes the header and the first n data rows of src to dst.
func headRows(t *testing.T, src, dst string, n int) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if err := os.WriteFile(dst, []byte(strings.Join(lines[:n+1], "")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sst2Head skips in short mode (the caller runs the model), needs the default model,
// and writes the first nTrain and nDev rows of SST-2 train and dev to train.csv and
// dev.csv in a new temporary dir.
func sst2Head(t *testing.T, nTrain, nDev int) (dir, trainCSV, devCSV string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	dir = t.TempDir()
	trainCSV, devCSV = filepath.Join(dir, "train.csv"), filepath.Join(dir, "dev.csv")
	headRows(t, testutil.Data(t, "sst2/train.csv"), trainCSV, nTrain)
	headRows(t, testutil.Data(t, "sst2/dev.csv"), devCSV, nDev)
	return dir, trainCSV, devCSV
}

// TestTopBlocksEndToEnd: extract --cut-top 1 -> fit-head --mode lora -> eval on the
// cache; predict from texts and the exported ONNX graph give the probabilities of the Go
// block on the cache (topTol); bad combinations fail clearly.
func TestTopBlocksEndToEnd(t *testing.T) {
	dir, trainCSV, devCSV := sst2Head(t, 400, 60)
	train, dev := filepath.Join(dir, "train.cache"), filepath.Join(dir, "dev.cache")
	for _, c := range [][2]string{{trainCSV, train}, {devCSV, dev}} {
		if code, _, stderr := run(t, "extract", "--data", c[0], "--out", c[1], "--cut-top", "1", "--threads", "2"); code != 0 {
			t.Fatalf("extract --cut-top %s: %d\n%s", c[0], code, stderr)
		}
	}
	headFile := filepath.Join(dir, "lora.head")
	code, stdout, stderr := run(t, "fit-head", "--train", train, "--valid", dev, "--mode", "lora", "--epochs", "2", "--lr", "2e-3", "--seed", "1", "--out", headFile, "--json")
	if code != 0 {
		t.Fatalf("fit-head --mode lora: %d\n%s", code, stderr)
	}
	var fit struct {
		Trainable int               `json:"trainable_params"`
		BestEpoch int               `json:"best_epoch"`
		Epochs    []json.RawMessage `json:"epochs"`
	}
	if err := json.Unmarshal([]byte(stdout), &fit); err != nil || len(fit.Epochs) != 2 {
		t.Fatalf("fit-head --json: %v\n%s", err, stdout)
	}
	// Rank 8 on query and value of one 384-wide block, and a 2-class linear head.
	if want := 2*(8*384+384*8) + 2*384 + 2; fit.Trainable != want {
		t.Fatalf("trainable parameters %d; want %d", fit.Trainable, want)
	}
	// Deterministic for a seed, whatever the thread count: the same bytes.
	again := filepath.Join(dir, "lora-1thread.head")
	if code, _, stderr := run(t, "fit-head", "--train", train, "--valid", dev, "--mode", "lora", "--epochs", "2", "--lr", "2e-3", "--seed", "1", "--threads", "1", "--out", again); code != 0 {
		t.Fatalf("fit-head --threads 1: %d\n%s", code, stderr)
	}
	if a, b := readFile(t, headFile), readFile(t, again); string(a) != string(b) {
		t.Fatal("fit-head --mode lora with 1 thread wrote another head than with all cores")
	}
	var best struct {
		ValidAccuracy float64 `json:"valid_accuracy"`
	}
	json.Unmarshal(fit.Epochs[fit.BestEpoch-1], &best)

	code, stdout, stderr = run(t, "eval", "--features", dev, "--head", headFile, "--json")
	if code != 0 {
		t.Fatalf("eval on the cache: %d\n%s", code, stderr)
	}
	var rep struct {
		Accuracy float64 `json:"accuracy"`
		N        int     `json:"n"`
	}
	json.Unmarshal([]byte(stdout), &rep)
	// 400 SST-2 sentences and 2 epochs give about 0.75 on these 60 (chance 0.5).
	if rep.N != 60 || rep.Accuracy != best.ValidAccuracy || rep.Accuracy < 0.65 {
		t.Fatalf("eval: n %d accuracy %v; fit-head's best epoch %v", rep.N, rep.Accuracy, best.ValidAccuracy)
	}

	// The Go stack's probabilities on the cache.
	h, err := head.Load(headFile)
	if err != nil {
		t.Fatal(err)
	}
	goProbs, _ := topProbs(t, headFile, dev)

	// predict from the texts: the backbone with the trained block, in onnxruntime.
	pred := filepath.Join(dir, "pred.jsonl")
	if code, _, stderr := run(t, "predict", "--head", headFile, "--data", devCSV, "--out", pred); code != 0 {
		t.Fatalf("predict: %d\n%s", code, stderr)
	}
	maxPred := 0.0
	for i, probs := range predictedProbs(t, pred) {
		for k, c := range h.Classes {
			d := math.Abs(float64(probs[c] - goProbs[i*2+k]))
			if !(d < topTol) {
				t.Fatalf("row %d class %s: predict %g, Go block on the cache %g", i, c, probs[c], goProbs[i*2+k])
			}
			maxPred = max(maxPred, d)
		}
	}

	// export: one graph with the trained block; onnxruntime runs it.
	onnxFile := filepath.Join(dir, "lora.onnx")
	if code, _, stderr := run(t, "export", "--head", headFile, "--out", onnxFile); code != 0 {
		t.Fatalf("export: %d\n%s", code, stderr)
	}
	r, _ := features.Open(devCSV, features.ReaderOptions{})
	var texts []string
	for r.Next() {
		texts = append(texts, r.Row().Text)
	}
	r.Close()
	maxExport := 0.0
	for i, probs := range exportedProbs(t, onnxFile, texts) {
		for k := range 2 {
			d := math.Abs(float64(probs[k] - goProbs[i*2+k]))
			if !(d < topTol) {
				t.Fatalf("row %d: exported graph %v, Go block on the cache %v", i, probs, goProbs[i*2:i*2+2])
			}
			maxExport = max(maxExport, d)
		}
	}
	// serve's path: the Go API with sequence packing (pipeline serve's default), the
	// trained block written into the packed graph.
	m, err := headstart.Open(context.Background(), headstart.OpenOptions{Heads: []string{headFile}, HeadNames: []string{"lora"}, PackLen: 32, MaxBatch: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if ok, why := m.Packing(); !ok {
		t.Fatalf("a top-block head's backbone does not pack: %v", why)
	}
	res, err := m.Classify(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	maxPacked := 0.0
	for i, r := range res {
		for k := range 2 {
			d := math.Abs(float64(r.Predictions[0].Probs[k] - goProbs[i*2+k]))
			if !(d < topTol) {
				t.Fatalf("row %d: packed Classify %v, Go block on the cache %v", i, r.Predictions[0].Probs, goProbs[i*2:i*2+2])
			}
			maxPacked = max(maxPacked, d)
		}
	}
	t.Logf("max abs diff of probabilities vs the Go block on the cache: predict %.2g, exported ONNX %.2g, packed Classify %.2g (60 texts)", maxPred, maxExport, maxPacked)

	// Bad combinations: clear errors, the head file untouched.
	before, _ := os.ReadFile(headFile)
	pooled := filepath.Join(dir, "dev.safetensors")
	if code, _, stderr := run(t, "extract", "--data", devCSV, "--out", pooled); code != 0 {
		t.Fatalf("extract: %s", stderr)
	}
	cut2 := filepath.Join(dir, "dev2.cache")
	if code, _, stderr := run(t, "extract", "--data", devCSV, "--out", cut2, "--cut-top", "2"); code != 0 {
		t.Fatalf("extract --cut-top 2: %s", stderr)
	}
	// A model the surgery does not understand: the int8 export's blocks cannot be read.
	quant := filepath.Join(dir, "dev-q.cache")
	if code, _, stderr := run(t, "extract", "--model", "all-minilm-l6-v2-q", "--data", devCSV, "--out", quant, "--cut-top", "1"); code != 0 {
		t.Fatalf("extract --cut-top with the int8 model: %s", stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fit-head", "--train", quant, "--mode", "lora", "--out", headFile}, 1, "is quantised"},
		{[]string{"fit-head", "--train", pooled, "--mode", "lora", "--out", headFile}, 1, "pooled features"},
		{[]string{"fit-head", "--train", train, "--out", headFile}, 1, "activation cache"},
		{[]string{"fit-head", "--train", train, "--mode", "lora", "--top-k", "2", "--out", headFile}, 2, "--cut-top 2"},
		{[]string{"fit-head", "--train", train, "--mode", "lora", "--rank", "400", "--out", headFile}, 1, "exceeds"},
		{[]string{"fit-head", "--train", train, "--mode", "full", "--rank", "4", "--out", headFile}, 2, "--mode lora only"},
		{[]string{"fit-head", "--train", train, "--mode", "lorra", "--out", headFile}, 2, "lora, full, reinit or setfit"},
		{[]string{"fit-head", "--train", train, "--valid", cut2, "--mode", "lora", "--out", headFile}, 1, "extracted differently"},
		{[]string{"eval", "--features", pooled, "--head", headFile}, 1, "top blocks"},
		{[]string{"eval", "--features", cut2, "--head", headFile}, 1, "--cut-top"},
		{[]string{"extract", "--data", devCSV, "--out", filepath.Join(dir, "x.cache"), "--cut-top", "7"}, 1, "6 encoder blocks"},
		{[]string{"extract", "--data", devCSV, "--out", filepath.Join(dir, "x.cache"), "--cut-top", "1", "--pooling", "cls"}, 2, "do not apply"},
		{[]string{"extract", "--data", devCSV, "--out", filepath.Join(dir, "x.safetensors"), "--cache-out", filepath.Join(dir, "x.cache")}, 2, "--cache-out needs --cut-top"},
	} {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d mentioning %q", c.args[:6], code, stderr, c.code, c.want)
		}
	}
	after, _ := os.ReadFile(headFile)
	if string(before) != string(after) {
		t.Fatal("a failed command changed the head file")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// topProbs returns the Go stack's probabilities of head file h on the cache at path.
func topProbs(t *testing.T, headFile, cache string) ([]float32, []string) {
	t.Helper()
	h, err := head.Load(headFile)
	if err != nil {
		t.Fatal(err)
	}
	probs, _, err := headstart.CacheProbs(h, cache)
	if err != nil {
		t.Fatal(err)
	}
	return probs, h.Classes
}

// TestTopAllBlocks: extract --cut-top 6 caches the embeddings' output of the 6-block
// model; fit-head --mode full trains every block on it, and the exported graph computes
// the Go stack's probabilities (topTol). The same cache feeds --top-k 2: the frozen
// blocks between run in Go and the head equals the Go stack on a --cut-top 2 cache.
// Bad depths are refused before any training.
func TestTopAllBlocks(t *testing.T) {
	// Few and short: what is checked is the graph and the parameters trained, not the
	// accuracy. 16 rows (5 positive) are one step of 16, and SetFit's 2 steps of pairs.
	dir, trainCSV, devCSV := sst2Head(t, 16, 6)
	cache := func(csv, name, k string) string {
		out := filepath.Join(dir, name)
		if code, _, stderr := run(t, "extract", "--data", csv, "--out", out, "--cut-top", k, "--threads", "2"); code != 0 {
			t.Fatalf("extract --cut-top %s %s: %d\n%s", k, csv, code, stderr)
		}
		return out
	}
	train6, dev6 := cache(trainCSV, "train6.cache", "6"), cache(devCSV, "dev6.cache", "6")
	dev2 := cache(devCSV, "dev2.cache", "2")

	r, _ := features.Open(devCSV, features.ReaderOptions{})
	var texts []string
	for r.Next() {
		texts = append(texts, r.Row().Text)
	}
	r.Close()

	for _, c := range []struct {
		k      string
		blocks int
		goOn   string // the cache the Go stack reads
		emb    bool   // --embeddings
		mode   string
	}{{"6", 6, dev6, false, "full"}, {"2", 2, dev2, false, "full"}, {"6", 6, dev6, true, "full"}, {"6", 6, dev6, true, "setfit"}} {
		name := c.mode + c.k
		args := []string{"fit-head", "--train", train6, "--mode", c.mode, "--top-k", c.k, "--epochs", "1", "--batch-size", "16", "--recompute", "--json"}
		if c.mode == "setfit" { // 16 rows, 1 positive and 1 negative pair each: 2 steps
			args = append(args, "--iterations", "1", "--lr", "1e-4")
		}
		if c.emb {
			name += "+emb"
			args = append(args, "--embeddings")
		}
		headFile := filepath.Join(dir, name+".head")
		code, stdout, stderr := run(t, append(args, "--out", headFile)...)
		if code != 0 {
			t.Fatalf("fit-head --mode full --top-k %s: %d\n%s", c.k, code, stderr)
		}
		var fit struct {
			TopK      int `json:"top_k"`
			Trainable int `json:"trainable_params"`
		}
		json.Unmarshal([]byte(stdout), &fit)
		// Per block: 4 C×C projections, C→I, I→C with biases, two LayerNorms; and the head.
		perBlock := 4*(384*384+384) + 384*1536 + 1536 + 1536*384 + 384 + 4*384
		want := c.blocks * perBlock
		if c.mode != "setfit" { // the linear head trains with the blocks
			want += 2*384 + 2
		}
		if c.emb { // word, position and token type tables and the LayerNorm
			want += (30522+512+2)*384 + 2*384
		}
		if fit.TopK != c.blocks || fit.Trainable != want {
			t.Fatalf("--top-k %s: top_k %d, %d trainable parameters", c.k, fit.TopK, fit.Trainable)
		}
		goProbs, _ := topProbs(t, headFile, c.goOn)
		onnxFile := filepath.Join(dir, name+".onnx")
		if code, _, stderr := run(t, "export", "--head", headFile, "--out", onnxFile); code != 0 {
			t.Fatalf("export: %d\n%s", code, stderr)
		}
		maxDiff := 0.0
		for i, probs := range exportedProbs(t, onnxFile, texts) {
			for k := range 2 {
				d := math.Abs(float64(probs[k] - goProbs[i*2+k]))
				if !(d < topTol) {
					t.Fatalf("%s row %d: exported graph %v, Go stack on the cache %v", name, i, probs, goProbs[i*2:i*2+2])
				}
				maxDiff = max(maxDiff, d)
			}
		}
		t.Logf("%s: max abs diff exported ONNX vs Go stack %.2g (%d texts)", name, maxDiff, len(texts))
	}

	// SetFit needs two examples of each class.
	lonelyCSV := filepath.Join(dir, "lonely.csv")
	os.WriteFile(lonelyCSV, []byte("text,label\ngood,positive\ngreat,positive\nbad,negative\n"), 0o644)
	lonely := cache(lonelyCSV, "lonely.cache", "1")
	oneCSV := filepath.Join(dir, "one.csv")
	os.WriteFile(oneCSV, []byte("text,label\ngood,positive\ngreat,positive\n"), 0o644)
	one := cache(oneCSV, "one.cache", "1")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--top-k", "7"}, 2, "has 6 encoder blocks"},
		{[]string{"--top-k", "0"}, 2, "want the number of top blocks"},
		{[]string{"--train", filepath.Join(dir, "dev2.cache"), "--top-k", "3"}, 2, "too shallow for 3"},
		{[]string{"--top-k", "5", "--embeddings"}, 2, "needs every block trained"},
		{[]string{"--mode", "lora", "--embeddings"}, 2, "--mode full"},
		{[]string{"--mode", "setfit", "--train", lonely}, 1, "class \"negative\" has 1 example"},
		{[]string{"--mode", "setfit", "--train", one}, 1, "at least two classes"},
		{[]string{"--mode", "setfit", "--max-steps", "-1"}, 2, "--max-steps -1"},
	} {
		args := append([]string{"fit-head", "--train", train6, "--mode", "full", "--out", filepath.Join(dir, "bad.head")}, c.args...)
		code, _, stderr := run(t, args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit %d mentioning %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
