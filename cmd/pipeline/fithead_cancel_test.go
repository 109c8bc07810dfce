package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/features"
)

// syntheticStore writes a single-label feature store of n random rows of d features in
// k classes (class means apart, so the fits have something to learn) and returns its
// path.
func syntheticStore(t *testing.T, n, d, k int) string {
	t.Helper()
	return writeSynthetic(t, n, d, k, rand.NewPCG(1, 2), 0, nil)
}

// writeSynthetic writes syntheticStore's rows drawn from src, with row ids from idBase,
// after poke (when not nil) has edited the n*d features, and returns the store's path.
func writeSynthetic(t *testing.T, n, d, k int, src rand.Source, idBase int64, poke func(x []float32)) string {
	t.Helper()
	rng := rand.New(src)
	names := make([]string, k)
	for c := range names {
		names[c] = string(rune('a' + c))
	}
	x := make([]float32, n*d)
	labels := make([]int64, n)
	ids := make([]int64, n)
	for i := range n {
		labels[i], ids[i] = int64(i%k), idBase+int64(i)
		for j := range d {
			x[i*d+j] = float32(rng.NormFloat64())
			if j%k == i%k {
				x[i*d+j] += 1
			}
		}
	}
	if poke != nil {
		poke(x)
	}
	path := filepath.Join(t.TempDir(), "train.safetensors")
	m := features.Manifest{Tool: "test", Spec: features.Spec{Pooling: "mean", MaxLen: 128}, LabelNames: names}
	w, err := features.NewWriter(path, m, n, d, features.Float32)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRows(x, labels, ids); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// cancelOnLine is a progress writer that cancels a context at its nth line.
type cancelOnLine struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (w *cancelOnLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Count(w.buf.Bytes(), []byte("\n")) >= w.n {
		w.cancel()
	}
	return len(p), nil
}

// TestFitHeadCancel cancels runFitHead's context from its second progress line: the
// logreg and MLP fits stop with context.Canceled at once; the MLP keeps
// its checkpoint and says to rerun with --resume.
func TestFitHeadCancel(t *testing.T) {
	train := syntheticStore(t, 400, 16, 4)
	for _, kind := range []string{"logreg", "mlp"} {
		t.Run(kind, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "head.safetensors")
			// Limits far beyond what the test waits for: only the cancellation ends
			// the run early.
			o := fitHeadOptions{Train: train, Out: out, Kind: kind, C: "1", MaxIter: 1000000, Tol: 1e-300,
				ClassWeight: "none", Precision: "float32", Hidden: "8", LR: 1e-3, WD: 0.01, Epochs: 1000000,
				Patience: 1000000, BatchSize: 32, Threads: 1}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stderr := &cancelOnLine{n: 2, cancel: cancel}
			start := time.Now()
			err := runFitHead(ctx, o, io.Discard, stderr)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v; want context.Canceled", err)
			}
			if lines := strings.Count(stderr.buf.String(), "\n"); lines > 2 {
				t.Errorf("%d progress lines; want 2: the fit went on after the cancellation\n%s", lines, stderr.buf.String())
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("cancelled fit took %v", d)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a cancelled fit wrote the head")
			}
			if kind != "mlp" {
				return
			}
			if !strings.Contains(err.Error(), "--resume") || !strings.Contains(err.Error(), out+".ckpt") {
				t.Errorf("err %q; want it to name the checkpoint and --resume", err)
			}
			if _, err := os.Stat(out + ".ckpt"); err != nil {
				t.Errorf("the checkpoint is gone after the cancellation: %v", err)
			}
		})
	}
}

// TestFitHeadSIGINT sends SIGINT to a running `pipeline fit-head --head mlp` once its
// first checkpoint exists: it exits 130 promptly, keeps the checkpoint and says to rerun
// with --resume.
func TestFitHeadSIGINT(t *testing.T) {
	train := syntheticStore(t, 2000, 32, 4)
	out := filepath.Join(t.TempDir(), "head.safetensors")
	ckpt := out + ".ckpt"
	cmd := exec.Command(pipelineBin, "fit-head", "--train", train, "--out", out, "--head", "mlp", "--hidden", "16",
		"--epochs", "1000000", "--patience", "1000000", "--batch-size", "8", "--threads", "1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case err := <-done:
			t.Fatalf("fit-head ended before the signal: %v\n%s", err, stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("no checkpoint within 60 s\n%s", stderr.String())
		case <-time.After(5 * time.Millisecond):
			if _, err := os.Stat(ckpt); err == nil {
				break wait
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("fit-head still running 30 s after SIGINT\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v; want code %d\n%s", err, exitInterrupted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--resume") {
		t.Errorf("stderr does not say to rerun with --resume:\n%s", stderr.String())
	}
	if _, err := os.Stat(ckpt); err != nil {
		t.Errorf("the checkpoint is gone after the interrupt: %v", err)
	}
}
