package headstart

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// The export forms of one checkpoint (scripts/make_export_fixtures.py): a tiny random BERT
// committed under testdata/exportforms, and all-MiniLM-L6-v2 in the cache for runs outside CI.
const (
	tinyFormsDir = "testdata/exportforms"
	// formsTol bounds Go pooled features against Python onnxruntime on the same file: the
	// same runtime and optimisation level, differing only in the order of float32
	// reductions across threads and padding (Go runs the texts as one padded batch, the
	// reference each text alone), ~1e-7 on O(1) values.
	formsTol = 1e-5
	// fusedTol: onnxruntime's fused kernels (Attention, SkipLayerNormalization) sum in
	// another order when a batch is padded; the bound for a fused graph.
	fusedTol = 1e-4
	// torchTol bounds Go's hidden states at each block boundary against PyTorch's
	// output_hidden_states: two runtimes (onnxruntime vs torch), ~1e-6 apart.
	torchTol = 1e-4
)

// trainableForms are the exports whose blocks headstart reads and trains.
var trainableForms = []string{"legacy", "optimum", "tf5", "dynamo"}

type formsReference struct {
	Header map[string]any `json:"header"`
	Texts  []string       `json:"texts"`
	IDs    [][]int64      `json:"ids"`
	Forms  map[string]struct {
		SHA256            string                 `json:"sha256"`
		Outputs           []string               `json:"outputs"`
		HiddenOutput      string                 `json:"hidden_output"`
		OpTypes           []string               `json:"op_types"`
		Pooled            map[string][][]float64 `json:"pooled"`
		SentenceEmbedding [][]float64            `json:"sentence_embedding"`
	} `json:"forms"`
	TorchLayersMean [][][]float64 `json:"torch_layers_mean"`
}

// loadFormsReference reads dir/reference.json after checking every file SHA256SUMS lists.
func loadFormsReference(t *testing.T, dir string) formsReference {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("%s/SHA256SUMS: bad line %q", dir, sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
			t.Fatalf("%s/%s: sha256 %x, SHA256SUMS says %s", dir, name, h, sum)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("%s/SHA256SUMS lists no files", dir)
	}
	var ref formsReference
	b, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func formPaths(dir, form string) models.Paths {
	d := filepath.Join(dir, form)
	return models.Paths{Name: form, Dir: d, Model: filepath.Join(d, models.ModelFile), Tokenizer: filepath.Join(d, models.TokenizerFile)}
}

// diffRows returns the largest |got − want| over rows, +Inf on a NaN or a length mismatch.
func diffRows(got []float32, want [][]float64) float64 {
	d := 0.0
	w := 0
	for _, row := range want {
		w += len(row)
	}
	if w != len(got) {
		return math.Inf(1)
	}
	i := 0
	for _, row := range want {
		for _, v := range row {
			e := math.Abs(float64(got[i]) - v)
			if !(e <= d) {
				d = e
				if math.IsNaN(e) {
					return math.Inf(1)
				}
			}
			i++
		}
	}
	return d
}

// checkForms compares every form in dir with its reference: token ids, pooled features
// for each pooling at --layers -1, each block boundary against PyTorch where the graph
// has them, the sentence-transformers output, and the fused graph's refusal of other
// layers.
func checkForms(t *testing.T, dir string) {
	ref := loadFormsReference(t, dir)
	if len(ref.Forms) == 0 {
		t.Fatalf("%s/reference.json has no forms", dir)
	}
	forms := make([]string, 0, len(ref.Forms))
	for f := range ref.Forms {
		forms = append(forms, f)
	}
	slices.Sort(forms)
	for _, form := range forms {
		t.Run(form, func(t *testing.T) {
			fr := ref.Forms[form]
			p := formPaths(dir, form)
			tol := formsTol
			if form == "fused" {
				tol = fusedTol
			}
			for _, pool := range []features.Pooling{features.PoolMean, features.PoolCLS, features.PoolMax, features.PoolLast} {
				enc, err := NewEncoder(p, EncoderOptions{Spec: features.Spec{Pooling: pool.String()}, Exact: true, Session: onnx.SessionOptions{IntraOpThreads: 2}})
				if err != nil {
					t.Fatalf("pooling %s: %v", pool, err)
				}
				for i, text := range ref.Texts {
					e, err := enc.Tokenizer().Encode(text)
					if err != nil || !slices.Equal(e.IDs, ref.IDs[i]) {
						t.Fatalf("text %d: Go tokenizer gives %v (%v); Python tokenizers %v", i, e.IDs, err, ref.IDs[i])
					}
				}
				got, err := enc.Embed(ref.Texts)
				enc.Close()
				if err != nil {
					t.Fatal(err)
				}
				d := diffRows(got, fr.Pooled[pool.String()])
				t.Logf("%s pooling %s: max abs diff %.2g vs Python onnxruntime (tolerance %g)", form, pool, d, tol)
				if !(d <= tol) {
					t.Errorf("%s pooling %s: max abs diff %g vs Python onnxruntime; want <= %g", form, pool, d, tol)
				}
			}
			if fr.SentenceEmbedding != nil {
				enc, err := NewEncoder(p, EncoderOptions{Spec: features.Spec{Normalize: true}})
				if err != nil {
					t.Fatal(err)
				}
				got, err := enc.Embed(ref.Texts)
				enc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if d := diffRows(got, fr.SentenceEmbedding); !(d <= tol) {
					t.Errorf("%s: normalised mean pooling differs from the graph's sentence_embedding by %g; want <= %g", form, d, tol)
				}
			}
			all := make([]int, len(ref.TorchLayersMean))
			for l := range all {
				all[l] = l
			}
			enc, err := NewEncoder(p, EncoderOptions{Spec: features.Spec{Layers: all}, Exact: true})
			if form == "fused" {
				if err == nil {
					enc.Close()
					t.Fatal("a fused graph gave hidden states at every block boundary")
				}
				for _, want := range []string{"SkipLayerNormalization", "--layers -1"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("fused graph, --layers 0..%d: error %q does not mention %q", len(all)-1, err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			C := enc.Dim() / len(all)
			worst := 0.0
			for i, text := range ref.Texts {
				got, err := enc.Embed([]string{text})
				if err != nil {
					t.Fatal(err)
				}
				for l := range all {
					d := diffRows(got[l*C:(l+1)*C], ref.TorchLayersMean[l][i:i+1])
					worst = max(worst, d)
					if !(d <= torchTol) {
						t.Errorf("text %d hidden state %d: mean pooled differs from PyTorch's by %g; want <= %g", i, l, d, torchTol)
					}
				}
			}
			t.Logf("%s --layers 0..%d: max abs diff %.2g vs PyTorch output_hidden_states (tolerance %g)", form, len(all)-1, worst, torchTol)
		})
	}
	for _, form := range trainableForms {
		if _, ok := ref.Forms[form]; !ok {
			t.Errorf("%s: reference.json has no %s form", dir, form)
		}
	}
}

// TestExportFormsTiny: every export form of the tiny committed BERT gives Python
// onnxruntime's pooled features, and its block boundaries give PyTorch's hidden states.
func TestExportFormsTiny(t *testing.T) {
	checkForms(t, tinyFormsDir)
}

// TestExportFormsReal: the same on all-MiniLM-L6-v2 in every form, when
// scripts/make_export_fixtures.py has written them to the cache.
func TestExportFormsReal(t *testing.T) {
	dir := filepath.Join(cache.Dir(), "exportforms", "all-minilm-l6-v2")
	if _, err := os.Stat(filepath.Join(dir, "reference.json")); err != nil {
		t.Skipf("skipped: the real-checkpoint export forms are not in %s (scripts/make_export_fixtures.py writes them; it needs the venv of scripts/requirements-export.txt)", dir)
	}
	checkForms(t, dir)
}

// TestExportOnnxScript: scripts/export_onnx.py turns the tiny sentence-transformers
// checkpoint into a model directory whose manifest carries the checkpoint's conventions
// (pooling, normalisation, max length, prompts as query_prefix / passage_prefix) and
// whose Go embeddings (mean pooled, normalised) are the sentence-transformers graph's
// sentence_embedding; a directory that is not a checkpoint writes nothing.
func TestExportOnnxScript(t *testing.T) {
	if testing.Short() {
		t.Skip("runs PyTorch")
	}
	py := filepath.Join(cache.Dir(), "venv-export", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Skipf("skipped: no export venv at %s (scripts/setup.sh venv export installs torch, ~6 GB)", py)
	}
	// The tiny checkpoint, with e5-style prompts in config_sentence_transformers.json.
	ckpt := filepath.Join(t.TempDir(), "checkpoint")
	if err := os.CopyFS(ckpt, os.DirFS(filepath.Join(tinyFormsDir, "checkpoint"))); err != nil {
		t.Fatal(err)
	}
	prompts := `{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null}`
	if err := os.WriteFile(filepath.Join(ckpt, "config_sentence_transformers.json"), []byte(prompts), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tiny")
	cmd := exec.Command(py, filepath.Join("scripts", "export_onnx.py"), ckpt, out)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("export_onnx.py: %v\n%s", err, msg)
	}
	for _, want := range []string{"wrote " + out, "pooling mean, normalize true, max_len 128, query_prefix 'query: ', passage_prefix 'passage: '", "parity: max abs diff"} {
		if !strings.Contains(string(msg), want) {
			t.Errorf("export_onnx.py output does not say %q:\n%s", want, msg)
		}
	}
	p, err := models.Resolve(out)
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Manifest; m.Pooling != "mean" || !m.Normalize || m.MaxLen != 128 || m.HiddenSize != 32 || m.Layers != 2 {
		t.Errorf("manifest %+v; want mean, normalised, max_len 128, hidden 32, 2 layers", m)
	}
	var prefixes struct {
		Query   string `json:"query_prefix"`
		Passage string `json:"passage_prefix"`
	}
	if b, err := os.ReadFile(filepath.Join(out, models.ManifestFile)); err != nil || json.Unmarshal(b, &prefixes) != nil || prefixes.Query != "query: " || prefixes.Passage != "passage: " {
		t.Errorf("manifest prefixes %+v (%v); want query: and passage:", prefixes, err)
	}
	ref := loadFormsReference(t, tinyFormsDir)
	enc, err := NewEncoder(p, EncoderOptions{Spec: features.Spec{Normalize: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	got, err := enc.Embed(ref.Texts)
	if err != nil {
		t.Fatal(err)
	}
	// Two exports of the same weights run by onnxruntime: float32 rounding apart.
	if d := diffRows(got, ref.Forms["st"].SentenceEmbedding); !(d <= formsTol) {
		t.Errorf("the exported model's embeddings differ from the sentence-transformers graph's by %g; want <= %g", d, formsTol)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	cmd = exec.Command(py, filepath.Join("scripts", "export_onnx.py"), tinyFormsDir+"/legacy", bad)
	if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "not a checkpoint directory") {
		t.Errorf("export_onnx.py on a directory without config.json: %v\n%s", err, msg)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a failed export_onnx.py left %s", bad)
	}
}
