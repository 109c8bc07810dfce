package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/internal/exportrun"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// exportTol bounds |p_export - p_predict|: both run the same backbone in onnxruntime; the
// head runs in float64 Go for predict and in float32 ONNX ops for export.
const exportTol = 1e-5

func repoFile(rel string) string { p, _ := filepath.Abs(filepath.Join("..", "..", rel)); return p }

// TestHeadsEndToEnd: extract -> fit-head -> eval -> predict -> export on the shipped
// Banking77 sample; export's probabilities equal predict's.
func TestHeadsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train.safetensors"), filepath.Join(dir, "test.safetensors")
	for _, c := range [][2]string{{"data/banking77-sample/train.csv", train}, {"data/banking77-sample/test.csv", test}} {
		if code, _, stderr := run(t, "extract", "--data", repoFile(c[0]), "--out", c[1], "--threads", "2"); code != 0 {
			t.Fatalf("extract %s: %d\n%s", c[0], code, stderr)
		}
	}
	headFile := filepath.Join(dir, "head.safetensors")
	if code, _, stderr := run(t, "fit-head", "--train", train, "--out", headFile); code != 0 {
		t.Fatalf("fit-head: %d\n%s", code, stderr)
	}
	code, stdout, stderr := run(t, "eval", "--features", test, "--head", headFile, "--json", "--plot", filepath.Join(dir, "cm.png"))
	if code != 0 {
		t.Fatalf("eval: %d\n%s", code, stderr)
	}
	var rep struct {
		Accuracy, MacroF1 float64
		N                 int
	}
	var raw map[string]any
	json.Unmarshal([]byte(stdout), &raw)
	rep.Accuracy, _ = raw["accuracy"].(float64)
	rep.MacroF1, _ = raw["macro_f1"].(float64)
	n, _ := raw["n"].(float64)
	// 20 examples per intent give about 0.87 (scikit-learn gets the same; see head's parity test).
	if rep.Accuracy < 0.8 || rep.MacroF1 < 0.8 || n != 770 {
		t.Fatalf("eval: %s", stdout)
	}
	if st, err := os.Stat(filepath.Join(dir, "cm.png")); err != nil || st.Size() < 1000 {
		t.Fatalf("confusion plot: %v", err)
	}

	texts := []string{"I lost my card yesterday", "how long does a transfer to another country take?", "my top-up failed", "ok"}
	data := filepath.Join(dir, "texts.csv")
	os.WriteFile(data, []byte("text\n"+strings.Join(texts, "\n")+"\n"), 0o644)
	pred := filepath.Join(dir, "pred.jsonl")
	if code, _, stderr := run(t, "predict", "--head", headFile, "--head", headFile, "--data", data, "--out", pred); code != 0 {
		t.Fatalf("predict: %d\n%s", code, stderr)
	}
	f, _ := os.Open(pred)
	defer f.Close()
	type headOut struct {
		Label string             `json:"label"`
		Probs map[string]float32 `json:"probs"`
	}
	var rows []struct {
		Row   int                `json:"row"`
		Heads map[string]headOut `json:"heads"`
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Row   int                `json:"row"`
			Heads map[string]headOut `json:"heads"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	if len(rows) != len(texts) || rows[0].Heads["head"].Label != "lost_or_stolen_card" || len(rows[0].Heads) != 2 {
		t.Fatalf("predict output: %+v", rows)
	}
	// The same texts as plain lines on stdin (--input-format text) give the same CSV as the
	// CSV file does; an extension that names no format is a usage error naming the flag.
	_, fromCSV, _ := run(t, "predict", "--head", headFile, "--data", data)
	code, fromText, stderr := runInput(t, strings.Join(texts, "\n")+"\n", "predict", "--head", headFile, "--data", "-", "--input-format", "text")
	if code != 0 || fromText != fromCSV || strings.Count(fromText, "\n") != len(texts)+1 {
		t.Fatalf("predict --input-format text on stdin: exit %d, %q\n%s\nwant the CSV file's output:\n%s", code, stderr, fromText, fromCSV)
	}
	odd := filepath.Join(dir, "texts.dat")
	os.WriteFile(odd, []byte("hello\n"), 0o644)
	if code, _, stderr := run(t, "predict", "--head", headFile, "--data", odd); code != 2 || !strings.Contains(stderr, "with --input-format") {
		t.Fatalf("predict on .dat: exit %d, %q; want 2 and a hint naming --input-format", code, stderr)
	}

	onnxFile := filepath.Join(dir, "classifier.onnx")
	if code, _, stderr := run(t, "export", "--head", headFile, "--out", onnxFile); code != 0 {
		t.Fatalf("export: %d\n%s", code, stderr)
	}
	exported := exportedProbs(t, onnxFile, texts)
	if man := readExportManifest(t, onnxFile); man.MaxLen != 256 || man.Pooling != "mean" || !man.Normalize || !slices.Equal(man.Labels, sortedClasses(man.Labels)) ||
		len(man.Labels) != 77 || man.MultiLabel || man.Output != "softmax" {
		t.Errorf("export manifest: %+v; want the model card's max_len 256, mean pooling and normalisation, the 77 classes in the head's order, softmax", man)
	}
	// Labels in file order come from the head's classes; read them from a second session's metadata-free path:
	// the probabilities map of predict is keyed by class, so compare per class via the head's class order.
	var classes []string
	for c := range rows[0].Heads["head"].Probs {
		classes = append(classes, c)
	}
	maxDiff := 0.0
	for i, probs := range exported {
		if len(probs) != 77 {
			t.Fatalf("exported graph gives %d probabilities; want 77", len(probs))
		}
		sorted := sortedClasses(classes)
		for k, c := range sorted {
			d := math.Abs(float64(probs[k]) - float64(rows[i].Heads["head"].Probs[c]))
			if !(d < exportTol) {
				t.Fatalf("text %d class %s: export %g, predict %g", i, c, probs[k], rows[i].Heads["head"].Probs[c])
			}
			maxDiff = max(maxDiff, d)
		}
	}
	t.Logf("export vs predict: max abs diff of probabilities %g over %d texts x 77 classes", maxDiff, len(texts))

	// A head meets features or a backbone it was not trained on: a clear error, nothing written.
	cls := filepath.Join(dir, "cls.safetensors")
	if code, _, stderr := run(t, "extract", "--data", repoFile("data/banking77-sample/test.csv"), "--out", cls, "--pooling", "cls", "--limit", "50"); code != 0 {
		t.Fatalf("extract cls: %s", stderr)
	}
	if code, _, stderr := run(t, "eval", "--features", cls, "--head", headFile); code != 1 || !strings.Contains(stderr, "pooling") {
		t.Fatalf("eval on cls features with a mean-pooling head: exit %d, %q", code, stderr)
	}
	paths, _ := models.Resolve(models.Default)
	other := filepath.Join(dir, "othermodel")
	os.MkdirAll(other, 0o755)
	os.Symlink(paths.Model, filepath.Join(other, "model.onnx"))
	tj, _ := os.ReadFile(paths.Tokenizer)
	os.WriteFile(filepath.Join(other, "tokenizer.json"), append(tj, ' '), 0o644)
	out := filepath.Join(dir, "never.csv")
	if code, _, stderr := run(t, "predict", "--model", other, "--head", headFile, "--data", data, "--out", out); code != 1 || !strings.Contains(stderr, "tokenizer") {
		t.Fatalf("predict with another tokenizer: exit %d, %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("predict wrote output despite the mismatch")
	}
	if code, _, stderr := run(t, "export", "--model", other, "--head", headFile, "--out", out); code != 1 || !strings.Contains(stderr, "tokenizer") {
		t.Fatalf("export with another tokenizer: exit %d, %q", code, stderr)
	}

	// Bad settings: usage errors; the existing head file is left untouched.
	before, _ := os.ReadFile(headFile)
	for _, args := range [][]string{
		{"fit-head", "--train", train, "--out", headFile, "--C", "0"},
		{"fit-head", "--train", train, "--out", headFile, "--C", "-1"},
		{"fit-head", "--train", train, "--out", headFile, "--head", "svm"},
	} {
		if code, _, stderr := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d; want 2\n%s", args, code, stderr)
		}
	}
	if code, _, stderr := run(t, "fit-head", "--train", cls, "--valid", test, "--out", headFile); code != 1 || !strings.Contains(stderr, "pooling") {
		t.Errorf("fit-head with mismatched --valid: exit %d, %q", code, stderr)
	}
	after, _ := os.ReadFile(headFile)
	if string(before) != string(after) {
		t.Fatal("a failed fit-head changed the existing head file")
	}
}

// sortedClasses returns Banking77's class order as the head stores it (feature store label
// order: sorted by bytes).
func sortedClasses(c []string) []string {
	out := append([]string(nil), c...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// exportedProbs runs an exported classifier (pipeline export) in onnxruntime on each text
// with only what export wrote: the graph, and the tokenizer, max_len and prefix its
// manifest names (checked against the default model's); it returns the probabilities.
func exportedProbs(t *testing.T, onnxFile string, texts []string) [][]float32 {
	t.Helper()
	readExportManifest(t, onnxFile)
	probs, err := exportrun.Probs(onnxFile, texts)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

// readExportManifest reads the manifest export writes beside onnxFile and checks it
// against the default model: the tokenizer copy has the backbone's bytes, the manifest
// names the graph and a positive max_len.
func readExportManifest(t *testing.T, onnxFile string) headstart.ExportManifest {
	t.Helper()
	stem := strings.TrimSuffix(onnxFile, ".onnx")
	b, err := os.ReadFile(stem + ".manifest.json")
	if err != nil {
		t.Fatalf("export wrote no manifest: %v", err)
	}
	var man headstart.ExportManifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatalf("%s: %v", stem+".manifest.json", err)
	}
	paths, err := models.Resolve(models.Default)
	if err != nil {
		t.Fatal(err)
	}
	tokSHA, err := models.FileSHA256(paths.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	copySHA, err := models.FileSHA256(filepath.Join(filepath.Dir(onnxFile), man.Tokenizer))
	if err != nil {
		t.Fatalf("the tokenizer the manifest names: %v", err)
	}
	if man.Format != headstart.ExportFormat || man.ONNX != filepath.Base(onnxFile) || man.Tokenizer != filepath.Base(stem)+".tokenizer.json" ||
		man.Backbone.Name != models.Default || man.Backbone.TokenizerSHA256 != tokSHA || copySHA != tokSHA || man.MaxLen <= 0 {
		t.Fatalf("export manifest %+v (tokenizer copy sha256 %s, backbone's %s)", man, copySHA, tokSHA)
	}
	return man
}
