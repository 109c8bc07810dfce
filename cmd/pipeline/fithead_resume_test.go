package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// TestFitHeadKillAndResume trains an MLP head on real features, kills a second run with
// SIGKILL once its first epoch checkpoint exists, resumes it with --resume and checks the
// head equals the uninterrupted run's byte for byte. Along the way: a leftover checkpoint
// without --resume is a usage error, a checkpoint of other settings is refused, the
// checkpoint is removed on success, and logreg's --resume (a rerun of its deterministic
// solve) gives the same bytes too.
func TestFitHeadKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	feats := filepath.Join(dir, "train.safetensors")
	if code, _, stderr := run(t, "extract", "--data", data, "--limit", "200", "--out", feats, "--threads", "1"); code != 0 {
		t.Fatalf("extract: exit %d\n%s", code, stderr)
	}
	// 15 epochs of 20-60 ms: long enough to kill in the middle, a few seconds in all.
	mlp := []string{"fit-head", "--train", feats, "--head", "mlp", "--hidden", "256", "--epochs", "15", "--patience", "15",
		"--batch-size", "16", "--dropout", "0.1", "--seed", "3", "--threads", "1"}
	full := filepath.Join(dir, "full.safetensors")
	if code, _, stderr := run(t, append(mlp, "--out", full)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
	}
	want, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(full + ".ckpt"); err == nil {
		t.Fatal("a finished run left its checkpoint")
	}

	out := filepath.Join(dir, "killed.safetensors")
	ckpt := out + ".ckpt"
	cmd := exec.Command(pipelineBin, append(mlp, "--out", out)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ckpt); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("no checkpoint within 60 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the run finished before it was killed (make its epochs slower)")
	}
	saved, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatalf("no checkpoint after the kill: %v", err)
	}

	code, _, stderr := run(t, append(mlp, "--out", out)...)
	if code != 2 || !strings.Contains(stderr, ckpt) || !strings.Contains(stderr, "--resume") {
		t.Fatalf("rerun without --resume over a checkpoint: exit %d; want 2 naming %s and --resume\n%s", code, ckpt, stderr)
	}

	code, _, stderr = run(t, append(mlp, "--out", out, "--resume")...)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	m := regexp.MustCompile(`(\d+) epochs \((\d+) resumed\)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("resume summary %q", stderr)
	}
	if n, _ := strconv.Atoi(m[2]); n < 1 {
		t.Fatalf("resumed %s epochs; want at least 1 (the kill came after the first checkpoint)\n%s", m[2], stderr)
	}
	t.Logf("killed after epoch %s of %s", m[2], m[1])
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("resumed head differs from the uninterrupted run's (%d vs %d bytes)", len(got), len(want))
	}
	if _, err := os.Stat(ckpt); err == nil {
		t.Fatal("the resumed run left its checkpoint")
	}

	// The killed run's checkpoint under another seed: refused, and kept.
	other := filepath.Join(dir, "other.safetensors")
	if err := os.WriteFile(other+".ckpt", saved, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, append(mlp, "--out", other, "--resume", "--seed", "4")...)
	if code != 1 || !strings.Contains(stderr, "other training data or settings") || !strings.Contains(stderr, other+".ckpt") {
		t.Fatalf("resume with another seed: exit %d; want 1 naming the checkpoint\n%s", code, stderr)
	}
	if _, err := os.Stat(other + ".ckpt"); err != nil {
		t.Fatal("a refused checkpoint was removed")
	}

	// logreg: no checkpoint; --resume reruns the deterministic solve.
	lr := []string{"fit-head", "--train", feats, "--head", "logreg", "--threads", "1"}
	a, b := filepath.Join(dir, "lr1.safetensors"), filepath.Join(dir, "lr2.safetensors")
	if code, _, stderr := run(t, append(lr, "--out", a)...); code != 0 {
		t.Fatalf("logreg: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := run(t, append(lr, "--out", b, "--resume", "--threads", "2")...); code != 0 {
		t.Fatalf("logreg --resume: exit %d\n%s", code, stderr)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if len(ba) == 0 || !bytes.Equal(ba, bb) {
		t.Fatal("logreg --resume gives other bytes than a first run")
	}
}
