package headstart_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/exportrun"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// exportTol bounds |p_graph - p_Classify|: the same backbone in onnxruntime; the head in
// float32 ONNX ops in the graph and in float64 Go in Classify.
const exportTol = 1e-5

// Export a head as one ONNX graph with its tokenizer and manifest beside it.
func ExampleExport() {
	headFile, cleanup, err := exampleHead()
	defer cleanup()
	if err != nil {
		fmt.Println(err)
		return
	}
	out := filepath.Join(filepath.Dir(headFile), "sentiment.onnx")
	sum, err := headstart.Export(context.Background(), headstart.ExportOptions{Head: headFile, Out: out})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum.Backbone, sum.Kind, sum.Classes, "classes, max_len", sum.MaxLen)
	fmt.Println("beside it:", filepath.Base(sum.Tokenizer), filepath.Base(sum.Manifest))
	// Output:
	// all-minilm-l6-v2 logreg 2 classes, max_len 256
	// beside it: sentiment.tokenizer.json sentiment.manifest.json
}

// TestExport runs the exported graph with only the files Export wrote (graph, tokenizer,
// manifest) and compares its probabilities with Model.Classify on the same head.
func TestExport(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	headFile := filepath.Join(dir, "sentiment.safetensors")
	if err := fitSentimentHead(headFile); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := filepath.Join(dir, "sentiment.onnx")
	if _, err := headstart.Export(ctx, headstart.ExportOptions{Head: headFile, Out: out}); err != nil {
		t.Fatal(err)
	}
	_, manFile := headstart.ExportSidecars(out)
	b, err := os.ReadFile(manFile)
	if err != nil {
		t.Fatal(err)
	}
	var man headstart.ExportManifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	if man.Format != headstart.ExportFormat || man.ONNX != "sentiment.onnx" || man.Backbone.Name != models.Default ||
		len(man.Labels) != 2 || man.Labels[0] != "neg" {
		t.Fatalf("manifest: format %q onnx %q backbone %q labels %q output %q", man.Format, man.ONNX, man.Backbone.Name, man.Labels, man.Output)
	}

	texts := []string{"A wonderful, moving film.", "Dull, slow and far too long.", "It was fine, I suppose."}
	m, err := headstart.Open(ctx, headstart.OpenOptions{Heads: []string{headFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want, err := m.Classify(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	probs, err := exportrun.Probs(out, texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range probs {
		w := want[i].Predictions[0].Probs
		if len(got) != len(w) {
			t.Fatalf("text %d: graph gives %d probabilities, Classify %d", i, len(got), len(w))
		}
		for k := range got {
			if d := math.Abs(float64(got[k]) - float64(w[k])); !(d < exportTol) {
				t.Fatalf("text %d class %s: graph %g, Classify %g", i, man.Labels[k], got[k], w[k])
			}
		}
	}
}

// TestExportRefuses: missing options and a head another backbone made are errors, and
// nothing is written.
func TestExportRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := headstart.Export(ctx, headstart.ExportOptions{Out: "x.onnx"}); !errors.Is(err, headstart.ErrBadOption) {
		t.Fatalf("no Head: %v; want ErrBadOption", err)
	}
	testutil.Model(t, models.Default)
	paths, err := models.Resolve(models.Default)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	headFile := filepath.Join(dir, "sentiment.safetensors")
	if err := fitSentimentHead(headFile); err != nil {
		t.Fatal(err)
	}
	// Same graph, another tokenizer: the head's fingerprint does not fit.
	other := filepath.Join(dir, "othermodel")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(paths.Model, filepath.Join(other, "model.onnx")); err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(paths.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "tokenizer.json"), append(tj, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "never.onnx")
	if _, err := headstart.Export(ctx, headstart.ExportOptions{Model: other, Head: headFile, Out: out}); !errors.Is(err, head.ErrFingerprint) {
		t.Fatalf("export on another tokenizer: %v; want head.ErrFingerprint", err)
	}
	tokFile, manFile := headstart.ExportSidecars(out)
	for _, p := range []string{out, tokFile, manFile} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written despite the mismatch", p)
		}
	}
}

// TestEvaluate scores a head on the store it was fitted on, through the API, and refuses
// a store extracted with another pooling.
func TestEvaluate(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	headFile := filepath.Join(dir, "sentiment.safetensors")
	if err := fitSentimentHead(headFile); err != nil {
		t.Fatal(err)
	}
	h, err := head.Load(headFile)
	if err != nil {
		t.Fatal(err)
	}
	train := filepath.Join(dir, "train.safetensors") // fitSentimentHead's store
	rep, err := headstart.Evaluate(h, train, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	// 12 sentences, 384 features, C=1: the training set is separable.
	if rep.N != 12 || rep.Accuracy != 1 {
		t.Fatalf("Evaluate on the training store: n %d accuracy %v; want 12 and 1", rep.N, rep.Accuracy)
	}
	cls := filepath.Join(dir, "cls.safetensors")
	if _, err := headstart.Extract(context.Background(), headstart.ExtractOptions{Data: filepath.Join(dir, "train.csv"), Out: cls, Spec: features.Spec{Pooling: "cls"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := headstart.Evaluate(h, cls, 0.5); !errors.Is(err, head.ErrFingerprint) {
		t.Fatalf("Evaluate on cls features with a mean-pooling head: %v; want head.ErrFingerprint", err)
	}
}
