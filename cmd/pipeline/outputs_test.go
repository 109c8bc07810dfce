package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// outputFixtures makes, in dir, a small labelled CSV, its feature store, a head fitted
// on it and the two shard stores of the same data, through the binary.
func outputFixtures(t *testing.T, dir string) (csv, store, hd, s0, s1 string) {
	t.Helper()
	csv = filepath.Join(dir, "s.csv")
	var b strings.Builder
	b.WriteString("text,label\n")
	for i := range 8 {
		fmt.Fprintf(&b, "%s number %d,%s\n", []string{"a good film", "a bad film"}[i%2], i, []string{"pos", "neg"}[i%2])
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	store, hd = filepath.Join(dir, "f.st"), filepath.Join(dir, "h.st")
	s0, s1 = filepath.Join(dir, "s0.st"), filepath.Join(dir, "s1.st")
	for _, args := range [][]string{
		{"extract", "--data", csv, "--out", store, "--threads", "1"},
		{"fit-head", "--train", store, "--out", hd},
		{"extract", "--data", csv, "--out", s0, "--shard", "0/2", "--threads", "1"},
		{"extract", "--data", csv, "--out", s1, "--shard", "1/2", "--threads", "1"},
	} {
		if code, _, stderr := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	return
}

// TestOutputIsInput runs every command that writes with its output naming one of its
// inputs (by name, through a symlink, through a hard link): each must refuse before any
// work, exit 1, and leave the input byte for byte as it was (issue 17, item 1).
func TestOutputIsInput(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	csv, store, hd, s0, s1 := outputFixtures(t, dir)
	sym, hard := filepath.Join(dir, "sym.csv"), filepath.Join(dir, "hard.csv")
	if err := os.Symlink(csv, sym); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(csv, hard); err != nil {
		t.Fatal(err)
	}
	jsonl := filepath.Join(dir, "t.jsonl")
	os.WriteFile(jsonl, []byte(`{"text":"hello"}`+"\n"), 0o644)
	storeLink := filepath.Join(dir, "f-link.st")
	if err := os.Link(store, storeLink); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		input string // the file that must survive
		args  []string
	}{
		{"extract", csv, []string{"extract", "--data", csv, "--out", csv}},
		{"extract symlink", csv, []string{"extract", "--data", csv, "--out", sym}},
		{"extract hard link", csv, []string{"extract", "--data", csv, "--out", hard}},
		{"extract cache-out", csv, []string{"extract", "--data", csv, "--out", filepath.Join(dir, "x.st"), "--cut-top", "1", "--cache-out", csv}},
		{"predict", csv, []string{"predict", "--head", hd, "--data", csv, "--out", csv}},
		{"predict head", hd, []string{"predict", "--head", hd, "--data", csv, "--out", hd}},
		{"eval plot", store, []string{"eval", "--features", store, "--head", hd, "--plot", store}},
		{"eval plot head", hd, []string{"eval", "--features", store, "--head", hd, "--plot", hd}},
		{"fit-head", store, []string{"fit-head", "--train", store, "--out", store}},
		{"fit-head hard link", store, []string{"fit-head", "--train", store, "--out", storeLink}},
		{"fit-head valid", store, []string{"fit-head", "--train", s0, "--valid", store, "--out", store}},
		{"fit-head mode", store, []string{"fit-head", "--mode", "lora", "--train", store, "--out", store}},
		{"export", hd, []string{"export", "--head", hd, "--out", hd}},
		{"features merge", s0, []string{"features", "merge", "--out", s0, s0, s1}},
		{"tokenize", jsonl, []string{"tokenize", "--data", jsonl, "--out", jsonl}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, err := os.ReadFile(c.input)
			if err != nil {
				t.Fatal(err)
			}
			code, _, stderr := run(t, c.args...)
			after, err := os.ReadFile(c.input)
			if err != nil {
				t.Fatalf("input %s gone: %v", c.input, err)
			}
			if !bytes.Equal(before, after) {
				os.WriteFile(c.input, before, 0o644) // for the cases after this one
				t.Fatalf("input %s was overwritten (exit %d)\n%s", c.input, code, stderr)
			}
			if code != 1 || !strings.Contains(stderr, "destroy the input") {
				t.Fatalf("exit %d; want 1 and a message that the output is an input\n%s", code, stderr)
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, "*.partial*"))
			if len(leftovers) > 0 {
				t.Fatalf("left %v", leftovers)
			}
		})
	}
}

// TestOutputChecksBeforeWork: --out naming an existing directory, or in a directory
// that does not exist, is refused before the data is read or the model run; a
// checkpoint of an interrupted run is not discarded by a rerun without --resume
// (issue 17, item 9).
func TestOutputChecksBeforeWork(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	csv := filepath.Join(dir, "s.csv")
	os.WriteFile(csv, []byte("text,label\nhello,a\n"), 0o644)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	// A dataset that fails to parse on its last line shows whether the data was read.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("text,label\nhello,a\n\"unterminated\n"), 0o644)

	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"extract dir", []string{"extract", "--data", bad, "--out", sub}, "is a directory"},
		{"extract no dir", []string{"extract", "--data", bad, "--out", filepath.Join(dir, "nope", "o.st")}, "nope"},
		{"fit-head dir", []string{"fit-head", "--train", bad, "--out", sub}, "is a directory"},
		{"predict dir", []string{"predict", "--head", bad, "--data", bad, "--out", sub}, "is a directory"},
		{"export dir", []string{"export", "--head", bad, "--out", sub}, "is a directory"},
		{"eval dir", []string{"eval", "--features", bad, "--head", bad, "--plot", sub}, "is a directory"},
		{"merge dir", []string{"features", "merge", "--out", sub, bad}, "is a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := run(t, c.args...)
			if code != 1 || !strings.Contains(stderr, c.msg) || strings.Contains(stderr, "unterminated") || strings.Contains(stderr, "bad.csv") {
				t.Fatalf("exit %d; want 1 and %q before the input is read\n%s", code, c.msg, stderr)
			}
		})
	}

	t.Run("checkpoint kept", func(t *testing.T) {
		out := filepath.Join(dir, "o.st")
		part := []byte("rows of an interrupted run")
		meta := []byte(`{"version":1,"key":"k","dim":384,"rows":0,"bytes":0}` + "\n")
		os.WriteFile(out+".partial", part, 0o644)
		os.WriteFile(out+".partial.json", meta, 0o644)
		code, _, stderr := run(t, "extract", "--data", csv, "--out", out)
		if code != 1 || !strings.Contains(stderr, "--resume") {
			t.Fatalf("exit %d; want 1 and a message to pass --resume\n%s", code, stderr)
		}
		if b, _ := os.ReadFile(out + ".partial"); !bytes.Equal(b, part) {
			t.Fatal("the checkpoint's data was discarded")
		}
		if b, _ := os.ReadFile(out + ".partial.json"); !bytes.Equal(b, meta) {
			t.Fatal("the checkpoint's sidecar was discarded")
		}
	})
}

// TestOutputModes: predict and export write their outputs with mode 0666 less the umask,
// as every other output (issue 17, item 9).
func TestOutputModes(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	csv, store, hd, _, _ := outputFixtures(t, dir)
	pred, onnxOut, plot := filepath.Join(dir, "p.csv"), filepath.Join(dir, "m.onnx"), filepath.Join(dir, "c.png")
	for _, args := range [][]string{
		{"predict", "--head", hd, "--data", csv, "--out", pred},
		{"export", "--head", hd, "--out", onnxOut},
		{"eval", "--features", store, "--head", hd, "--plot", plot},
	} {
		// Under umask 027 as well as 022: the mode must follow it.
		for _, umask := range []int{0o022, 0o027} {
			cmd := exec.Command("bash", append([]string{"-c", fmt.Sprintf(`umask %03o; exec "$0" "$@"`, umask), pipelineBin}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			path := args[len(args)-1]
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := os.FileMode(0o666 &^ umask); st.Mode().Perm() != want {
				t.Errorf("%s under umask %03o: mode %v; want %v", args[0], umask, st.Mode().Perm(), want)
			}
			os.Remove(path)
		}
	}
}

// TestSecondRunRefused holds the lock of an output as a running extract does and starts
// an extract to the same output: it must be refused at once, naming the holder, without
// touching the output or its checkpoint (issue 17, item 2).
func TestSecondRunRefused(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	csv := filepath.Join(dir, "s.csv")
	os.WriteFile(csv, []byte("text,label\nhello,a\n"), 0o644)
	out := filepath.Join(dir, "o.st")
	f, err := os.OpenFile(out+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "pid %d: pipeline extract (the test)\n", os.Getpid())
	for _, args := range [][]string{
		{"extract", "--data", csv, "--out", out},
		{"extract", "--data", csv, "--out", out, "--resume"},
		{"fit-head", "--train", csv, "--out", out},
	} {
		code, _, stderr := run(t, args...)
		if code != 1 || !strings.Contains(stderr, "another run") || !strings.Contains(stderr, fmt.Sprintf("pid %d", os.Getpid())) {
			t.Fatalf("%v: exit %d; want 1 and the other run named\n%s", args, code, stderr)
		}
	}
	if m, _ := filepath.Glob(out + "*"); len(m) != 1 {
		t.Fatalf("files %v; want only the lock", m)
	}

	// experiment locks its output directory the same way (OUT/experiment.lock).
	exp := filepath.Join(dir, "exp")
	os.Mkdir(exp, 0o755)
	g, err := os.OpenFile(filepath.Join(exp, "experiment.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := syscall.Flock(int(g.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(g, "pid %d: pipeline experiment (the test)\n", os.Getpid())
	code, _, stderr := run(t, "experiment", "--train", repoFile("data/banking77-sample/train.csv"), "--test", repoFile("data/banking77-sample/test.csv"), "--shots", "8", "--out", exp)
	if code != 1 || !strings.Contains(stderr, "another run") || !strings.Contains(stderr, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("experiment: exit %d; want 1 and the other run named\n%s", code, stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(exp, "features", "*")); len(m) > 0 {
		t.Fatalf("a refused experiment wrote %v", m)
	}
}

// TestConcurrentExtractsDoNotMix starts two extracts to one output at once, with
// different pooling, a few times: each result must be one of the two runs' stores byte
// for byte (one run refused, or the two one after the other), never a mix (issue 17,
// item 2).
func TestConcurrentExtractsDoNotMix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	common := []string{"extract", "--data", data, "--limit", "128", "--chunk-rows", "32", "--batch-size", "16", "--threads", "1"}
	ref := map[string][]byte{}
	for _, p := range []string{"mean", "cls"} {
		out := filepath.Join(dir, p+".st")
		if code, _, stderr := run(t, append(common, "--pooling", p, "--out", out)...); code != 0 {
			t.Fatalf("reference %s: exit %d\n%s", p, code, stderr)
		}
		ref[p], _ = os.ReadFile(out)
	}
	const tries = 3
	for try := range tries {
		out := filepath.Join(dir, fmt.Sprintf("race%d.st", try))
		var cmds [2]*exec.Cmd
		var errs [2]bytes.Buffer
		for i, p := range []string{"mean", "cls"} {
			cmds[i] = exec.Command(pipelineBin, append(common, "--pooling", p, "--out", out)...)
			cmds[i].Stderr = &errs[i]
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		ok := 0
		for i := range cmds {
			if err := cmds[i].Wait(); err == nil {
				ok++
			} else if !strings.Contains(errs[i].String(), "another run") {
				t.Fatalf("try %d: run %d failed other than by the lock: %v\n%s", try, i, err, errs[i].String())
			}
		}
		got, err := os.ReadFile(out)
		if ok == 0 || err != nil {
			t.Fatalf("try %d: no run succeeded (%v)\n%s\n%s", try, err, errs[0].String(), errs[1].String())
		}
		if !bytes.Equal(got, ref["mean"]) && !bytes.Equal(got, ref["cls"]) {
			t.Fatalf("try %d: the store is neither run's: rows mixed", try)
		}
		if m, _ := filepath.Glob(out + ".*"); len(m) > 0 {
			t.Fatalf("try %d: left %v", try, m)
		}
	}
}

// TestFeaturesInfoChecksum: features info prints a store's checksum, says when a store
// has none, and refuses a store with a flipped byte (issue 17, item 6).
func TestFeaturesInfoChecksum(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.st")
	w, err := features.NewWriter(p, features.Manifest{LabelNames: []string{"a", "b"}}, 3, 2, features.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRows([]float32{1, 2, 3, 4, 5, 6}, []int64{0, 1, 0}, []int64{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runFeaturesInfo(context.Background(), featuresInfoOptions{Store: p}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var info struct{ SHA256 string }
	if err := json.Unmarshal(out.Bytes(), &info); err != nil || len(info.SHA256) != 64 {
		t.Fatalf("info %s: %v; want a sha256", out.String(), err)
	}
	out.Reset()
	if err := runFeaturesInfo(context.Background(), featuresInfoOptions{Store: filepath.Join("..", "..", "features", "testdata", "golden_nosum.safetensors")}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"sha256": "none`) {
		t.Fatalf("info of a store without a checksum: %s", out.String())
	}
	b, _ := os.ReadFile(p)
	b[len(b)-3] ^= 1 // a feature's byte
	os.WriteFile(p, b, 0o644)
	if err := runFeaturesInfo(context.Background(), featuresInfoOptions{Store: p}, &out, io.Discard); !errors.Is(err, features.ErrCorruptStore) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("flipped byte: %v; want a checksum mismatch", err)
	}
}
