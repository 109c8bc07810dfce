package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/headstart-ml/headstart/experiment"
	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// mtebAccTol bounds |accuracy_go − accuracy_sklearn| per experiment on the same
// features: with --precision float64 and the features cast to float64 for
// scikit-learn, both fit the same float64 objective from the same rows (head's parity
// tests: same iterations), so the predictions agree and the accuracies are equal up to
// the rounding of a mean over the test rows.
const mtebAccTol = 1e-12

// readResults reads an experiment's results.json.
func readResults(t *testing.T, dir string) experiment.Results {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r experiment.Results
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// scores drops what may change between runs (times, memory) from a summary.
func scores(s []experiment.Summary) []experiment.Summary {
	out := append([]experiment.Summary(nil), s...)
	for i := range out { // the times and the memory are measured anew
		out[i].TrainSeconds, out[i].TrainSecondsStd = 0, 0
		out[i].PeakMiB, out[i].PeakIncreaseMiB = 0, 0
	}
	return out
}

// TestExperimentTinyGrid runs the harness on the shipped Banking77 sample (logreg and
// mlp, 2 and 4 shots, one seed), checks its outputs, then reruns it: the features and
// the cells are reused, and a deleted cell is recomputed with the same scores.
func TestExperimentTinyGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	out := filepath.Join(t.TempDir(), "exp")
	args := []string{"experiment", "--train", repoFile("data/banking77-sample/train.csv"), "--test", repoFile("data/banking77-sample/test.csv"),
		"--strategies", "logreg,mlp,lora-top1", "--shots", "2,4", "--seeds", "1", "--threads", "2", "--out", out}
	code, stdout, stderr := run(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"[1/6] logreg shots=2 seed=0: accuracy", "[6/6] lora-top1 shots=4 seed=0", "ETA", "train features: 1540 rows", "and its activation cache -> "} {
		if !strings.Contains(stderr, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "logreg") || !strings.Contains(stdout, "mlp") || !strings.Contains(stdout, "lora-top1") {
		t.Fatalf("stdout: %s", stdout)
	}
	// One forward pass per split wrote the features and the activation cache.
	if strings.Contains(stderr, "activation cache: 1540 rows") {
		t.Fatalf("the activation cache took a pass of its own:\n%s", stderr)
	}
	if md, _ := os.ReadFile(filepath.Join(out, "results.md")); !bytes.Contains(md, []byte("written with the features, from the same forward pass")) {
		t.Fatalf("results.md does not say how the caches were made:\n%s", md)
	}
	first := readResults(t, out)
	if len(first.Summary) != 6 || len(first.Cells) != 6 {
		t.Fatalf("results.json: %d summary rows, %d cells; want 6, 6", len(first.Summary), len(first.Cells))
	}
	for _, s := range first.Summary {
		rows := 77 * s.Shots
		// 2 rows per intent give about 0.6, 4 about 0.74 (logreg); the MLP holds one row per
		// class out; LoRA on the top block trains 12,288 adapter weights and a 77-class head.
		if s.TrainRows != float64(rows) || !(s.AccuracyMean > 0.4 && s.AccuracyMean < 0.95) || s.Params == 0 ||
			(s.Strategy == "lora-top1" && s.Params != 2*(8*384+384*8)+77*385) {
			t.Fatalf("summary row %+v", s)
		}
	}
	f, _ := os.Open(filepath.Join(out, "results.csv"))
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 7 || recs[0][0] != "strategy" {
		t.Fatalf("results.csv: %v %v", recs, err)
	}
	for _, name := range []string{"results.md", "accuracy_vs_size.png", "accuracy_vs_params.png"} {
		if st, err := os.Stat(filepath.Join(out, name)); err != nil || st.Size() < 500 {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// Rerun: nothing recomputed.
	code, _, stderr = run(t, args...)
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, stderr)
	}
	if strings.Count(stderr, "reusing") != 4 || strings.Count(stderr, "done earlier") != 6 {
		t.Fatalf("rerun did not reuse the features, the caches and the 6 cells:\n%s", stderr)
	}
	second := readResults(t, out)
	if !equalJSON(t, first.Summary, second.Summary) || !equalJSON(t, first.Cells, second.Cells) {
		t.Fatal("rerun changed the results")
	}

	// A lost cell is recomputed, with the same scores; a lost cache (its features kept)
	// is written by a pass of its own.
	os.Remove(filepath.Join(out, "cells", "mlp_shots-2_seed-0.json"))
	os.Remove(filepath.Join(out, "cells", "lora-top1_shots-2_seed-0.json"))
	caches, _ := filepath.Glob(filepath.Join(out, "features", "test_*_cut1.cache"))
	if len(caches) != 1 {
		t.Fatalf("test caches: %v", caches)
	}
	os.Remove(caches[0])
	code, _, stderr = run(t, args...)
	if code != 0 || strings.Count(stderr, "done earlier") != 4 || !strings.Contains(stderr, "test activation cache: 770 rows") {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	third := readResults(t, out)
	if !equalJSON(t, scores(first.Summary), scores(third.Summary)) {
		t.Fatalf("resumed results differ:\n%+v\n%+v", first.Summary, third.Summary)
	}

	// A cache whose data changed after it was written (its manifest intact) is not used:
	// it is written again by a pass of its own, with the same scores.
	os.Remove(filepath.Join(out, "cells", "lora-top1_shots-2_seed-0.json"))
	b, err := os.ReadFile(caches[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0x40
	if err := os.WriteFile(caches[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, args...)
	if code != 0 || strings.Count(stderr, "done earlier") != 5 || !strings.Contains(stderr, "test activation cache: 770 rows") {
		t.Fatalf("changed cache: exit %d\n%s", code, stderr)
	}
	if fourth := readResults(t, out); !equalJSON(t, scores(first.Summary), scores(fourth.Summary)) {
		t.Fatalf("results after a changed cache differ:\n%+v\n%+v", first.Summary, fourth.Summary)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestExperimentMTEB runs --protocol mteb on 20 intents of the Banking77 sample and
// compares every experiment's accuracy with scripts/ref_mteb.py (MTEB 1.x's sampling
// and scikit-learn) on the same features.
func TestExperimentMTEB(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	py := cache.VenvPython()
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("reference venv missing (run `make setup` or scripts/setup.sh venv): %v", err)
	}
	dir := t.TempDir()
	train, test := filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	keep := subsetCSV(t, repoFile("data/banking77-sample/train.csv"), train, nil, 400)
	subsetCSV(t, repoFile("data/banking77-sample/test.csv"), test, keep, 0)
	out := filepath.Join(dir, "mteb")
	code, stdout, stderr := run(t, "experiment", "--protocol", "mteb", "--train", train, "--test", test, "--experiments", "4", "--precision", "float64", "--threads", "2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "mteb: accuracy") || !strings.Contains(stderr, "[4/4]") {
		t.Fatalf("stdout %q\nstderr %s", stdout, stderr)
	}
	var got struct {
		Settings    map[string]string
		Accuracy    float64
		Experiments []experiment.MTEBExperiment
	}
	b, _ := os.ReadFile(filepath.Join(out, "results.json"))
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	// The model card's conventions: mean pooling, normalised, 256 tokens.
	if !strings.Contains(got.Settings["features"], "pooling=mean layers=-1 normalize=true max_len=256") {
		t.Fatalf("features: %s", got.Settings["features"])
	}
	trainStore, _ := filepath.Glob(filepath.Join(out, "features", "train_*_len256_norm.safetensors"))
	testStore, _ := filepath.Glob(filepath.Join(out, "features", "test_*_len256_norm.safetensors"))
	if len(trainStore) != 1 || len(testStore) != 1 || len(got.Experiments) != 4 {
		t.Fatalf("stores %v %v, %d experiments", trainStore, testStore, len(got.Experiments))
	}
	refOut := filepath.Join(dir, "ref.json")
	cmd := exec.Command(py, repoFile("scripts/ref_mteb.py"), "--train", trainStore[0], "--test", testStore[0], "--experiments", "4", "--dtype", "float64", "--out", refOut)
	var pyErr bytes.Buffer
	cmd.Stderr = &pyErr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/ref_mteb.py: %v\n%s", err, pyErr.String())
	}
	var ref struct {
		Versions    map[string]string
		Experiments []struct {
			Accuracy  float64 `json:"accuracy"`
			TrainRows int     `json:"train_rows"`
		}
	}
	b, _ = os.ReadFile(refOut)
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("reference %v; accuracy %.4f", ref.Versions, got.Accuracy)
	for i, x := range got.Experiments {
		r := ref.Experiments[i]
		if x.TrainRows != r.TrainRows || !scalar.EqualWithinAbs(x.Accuracy, r.Accuracy, mtebAccTol) {
			t.Errorf("experiment %d: %d rows, accuracy %.6f; MTEB/scikit-learn %d rows, %.6f", i+1, x.TrainRows, x.Accuracy, r.TrainRows, r.Accuracy)
		}
	}
}

// subsetCSV copies the header and the rows of src whose label is in keep (every row
// when keep is nil) to dst, at most limit rows when limit > 0, and returns the labels
// copied.
func subsetCSV(t *testing.T, src, dst string, keep map[string]bool, limit int) map[string]bool {
	t.Helper()
	recs := testutil.ReadCSV(t, src)
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(recs[0])
	labels := map[string]bool{}
	n := 0
	for _, r := range recs[1:] {
		if (keep != nil && !keep[r[1]]) || (limit > 0 && n == limit) {
			continue
		}
		w.Write(r)
		labels[r[1]] = true
		n++
	}
	w.Flush()
	if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return labels
}

// TestExperimentBadInput checks the errors for bad input, all found before any
// extraction: nothing is written.
func TestExperimentBadInput(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	train, test := repoFile("data/banking77-sample/train.csv"), repoFile("data/banking77-sample/test.csv")
	unseen := filepath.Join(dir, "unseen.csv")
	os.WriteFile(unseen, []byte("text,label\nwhere is my card,card_arrival\nhello there,small_talk\n"), 0o644)
	unlabelled := filepath.Join(dir, "unlabelled.csv")
	os.WriteFile(unlabelled, []byte("text,label\nwhere is my card,card_arrival\nhello there,\n"), 0o644)
	out := filepath.Join(dir, "out")
	base := []string{"experiment", "--train", train, "--test", test, "--out", out}
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown strategy", []string{"--strategies", "logreg,svm"}, 2, `"svm" unknown; want one or more of logreg, mlp, concat4-logreg`},
		{"bad shots", []string{"--shots", "8,0"}, 2, "not a positive integer or all"},
		{"unfreeze deeper than the model", []string{"--unfreeze", "0,7"}, 2, "trains the top 7 blocks; the model has 6"},
		{"unfreeze all and embeddings", []string{"--unfreeze", "0,all,lora-top6+emb"}, 2, `"lora-top6+emb" unknown`},
		{"unfreeze and strategies", []string{"--unfreeze", "0,1", "--strategies", "logreg"}, 2, "give one"},
		{"unfreeze not numbers", []string{"--unfreeze", "0,x"}, 2, `--unfreeze "logreg,x": "x" unknown`},
		{"bad seeds", []string{"--seeds", "0"}, 2, "--seeds 0"},
		{"unknown protocol", []string{"--protocol", "helm"}, 2, "want one of grid, mteb"},
		{"unknown precision", []string{"--precision", "bf16"}, 2, "float32"},
		{"grid flag with mteb", []string{"--protocol", "mteb", "--shots", "8"}, 2, "--shots: not used by --protocol mteb"},
		{"shots above the smallest class", []string{"--shots", "8,25"}, 1, "has only 20 training rows"},
		{"mlp without rows to hold out", []string{"--strategies", "mlp", "--shots", "1"}, 1, "pass --valid FILE"},
		{"unseen test labels", []string{"--test", unseen}, 1, `1 label(s) that the training data ` + train + ` lacks: "small_talk"`},
		{"unseen test labels, mteb", []string{"--test", unseen, "--protocol", "mteb"}, 1, `"small_talk"`},
		{"unseen validation labels", []string{"--valid", unseen}, 1, `--valid ` + unseen},
		{"unlabelled row", []string{"--test", unlabelled}, 1, "row 1 (0-based) has no label"},
		{"missing file", []string{"--train", filepath.Join(dir, "none.csv")}, 1, "none.csv"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string(nil), base...), c.args...)
			code, _, stderr := run(t, args...)
			if code != c.code || !strings.Contains(stderr, c.msg) {
				t.Fatalf("exit %d; want %d with %q\n%s", code, c.code, c.msg, stderr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a failing run wrote output")
			}
		})
	}
}
