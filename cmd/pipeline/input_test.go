package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// noLeftovers fails the test if dir holds anything but the files named in keep: no
// output, no OUT.partial checkpoint, no spool or temp file.
func noLeftovers(t *testing.T, dir string, keep ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strschr(keep, e.Name()) {
			t.Errorf("%s left behind in the output directory", e.Name())
		}
	}
}

func strschr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestOptionValidation: zero, negative and out-of-range option values are usage errors
// (exit 2) that name the flag, found before any work: no output, no checkpoint.
func TestOptionValidation(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	data := filepath.Join(dir, "d.csv")
	os.WriteFile(data, []byte("text,label\nhello,a\nworld,b\n"), 0o644)
	out := filepath.Join(dir, "o.safetensors")
	extract := []string{"extract", "--data", data, "--out", out, "--threads", "1"}
	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"max-len 0", append(extract, "--max-len", "0"), "--max-len 0"},
		{"max-len -5", append(extract, "--max-len", "-5"), "--max-len -5"},
		{"max-len 1", append(extract, "--max-len", "1"), "--max-len 1"},
		{"max-len 1000", append(extract, "--max-len", "1000"), "512"},
		{"max-len 100000", append(extract, "--max-len", "100000"), "512"},
		{"batch-size 0", append(extract, "--batch-size", "0"), "--batch-size 0"},
		{"batch-size -1", append(extract, "--batch-size", "-1"), "--batch-size -1"},
		{"chunk-rows 0", append(extract, "--chunk-rows", "0"), "--chunk-rows 0"},
		{"chunk-rows -8", append(extract, "--chunk-rows", "-8"), "--chunk-rows -8"},
		{"experiment max-len 0", []string{"experiment", "--train", data, "--test", data, "--out", filepath.Join(dir, "exp"), "--max-len", "0"}, "--max-len 0"},
		{"experiment batch-size 0", []string{"experiment", "--train", data, "--test", data, "--out", filepath.Join(dir, "exp"), "--batch-size", "0"}, "--batch-size 0"},
		{"experiment max-len 1000", []string{"experiment", "--train", data, "--test", data, "--out", filepath.Join(dir, "exp"), "--max-len", "1000"}, "512"},
		{"serve max-len 1000", []string{"serve", "--max-len", "1000", "--addr", "127.0.0.1:0"}, "512"},
		{"fit-head mlp batch-size 0", []string{"fit-head", "--train", data, "--out", out, "--head", "mlp", "--batch-size", "0"}, "--batch-size 0"},
		{"fit-head mlp epochs 0", []string{"fit-head", "--train", data, "--out", out, "--head", "mlp", "--epochs", "0"}, "--epochs 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runBounded(t, time.Minute, nil, c.args...)
			if code != exitUsage {
				t.Fatalf("exit %d; want %d (usage)\n%s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, c.msg) {
				t.Fatalf("stderr %q; want it to mention %q", stderr, c.msg)
			}
			noLeftovers(t, dir, "d.csv")
		})
	}
}

// tinyHead writes a logistic-regression head for the default model's mean-pooled last
// layer at max_len 128 with zero weights: enough for predict to run.
func tinyHead(t *testing.T, path string) {
	t.Helper()
	p, err := models.Resolve(models.Default)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(f string) string {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	const dim = 384
	h := &head.Head{
		Kind: head.LogReg, Classes: []string{"a", "b"}, Dim: dim, Output: head.Softmax,
		Fingerprint: head.Fingerprint{Backbone: p.Name, BackboneSHA256: sum(p.Model), TokenizerSHA256: sum(p.Tokenizer),
			Spec: features.Spec{Pooling: "mean", Layers: []int{6}, MaxLen: 128}, Dim: dim},
		Layers: []head.Dense{{Out: 2, In: dim, W: make([]float64, 2*dim), B: make([]float64, 2)}},
	}
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
}

// maxRSS is the peak resident memory of a finished command, in bytes.
func maxRSS(cmd *exec.Cmd) int64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}

// rssBound is the peak memory allowed to a command refusing an input without line ends:
// the model and runtime (a few hundred MiB) plus the 4 MiB row bound; before the bound,
// such a run grew by gigabytes within seconds.
const rssBound = 1 << 30

// TestInputWithoutLineEnds: /dev/zero as --data (through a symbolic link, and as
// standard input) is refused quickly, naming the row bound, with bounded memory, and
// leaves nothing behind.
func TestInputWithoutLineEnds(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.csv")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	h := filepath.Join(dir, "h.safetensors")
	tinyHead(t, h)
	out := filepath.Join(dir, "o.safetensors")
	for _, c := range []struct {
		name  string
		stdin bool
		args  []string
	}{
		{"extract symlink", false, []string{"extract", "--data", zero, "--out", out, "--threads", "1"}},
		{"extract stdin", true, []string{"extract", "--data", "-", "--out", out, "--threads", "1"}},
		{"predict stdin", true, []string{"predict", "--head", h, "--data", "-", "--threads", "1"}},
		{"predict symlink", false, []string{"predict", "--head", h, "--data", zero, "--threads", "1", "--out", filepath.Join(dir, "p.csv")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, pipelineBin, c.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if c.stdin {
				f, err := os.Open("/dev/zero")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.Stdin = f
			}
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after a minute: %s", stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitError {
				t.Fatalf("err %v; want exit %d\n%s", err, exitError, stderr.String())
			}
			if !strings.Contains(stderr.String(), "longer than 4194304 bytes") || !strings.Contains(stderr.String(), "--max-line-bytes") {
				t.Fatalf("stderr %q; want the row bound named", stderr.String())
			}
			if rss := maxRSS(cmd); rss > rssBound {
				t.Errorf("peak memory %d MiB; want at most %d", rss>>20, rssBound>>20)
			}
			noLeftovers(t, dir, "zero.csv", "h.safetensors")
		})
	}
}

// startBounded starts the pipeline binary with stdin (may be nil) and returns the
// command, its stderr and a channel closed when it exits.
func startBounded(t *testing.T, stdin io.Reader, args ...string) (*exec.Cmd, *bytes.Buffer, chan struct{}) {
	t.Helper()
	cmd := exec.Command(pipelineBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdin = &stderr, stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, &stderr, done
}

// interrupt sends SIGINT once the command has had time to install its handler (the
// first thing main does) and reach its read, and checks it exits 130 within a guard.
func interrupt(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer, done chan struct{}) {
	signalAndWait(t, cmd, stderr, done, os.Interrupt)
}

func signalAndWait(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer, done chan struct{}, sig os.Signal) {
	t.Helper()
	time.Sleep(time.Second)
	select {
	case <-done:
		t.Fatalf("exited before the signal: %v\n%s", cmd.ProcessState, stderr.String())
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20 s after %v\n%s", sig, stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("exit %d after %v; want %d\n%s", code, sig, exitInterrupted, stderr.String())
	}
}

// TestSignalWhileReading: SIGINT stops extract and predict while they wait on a FIFO
// with no writer, on a FIFO or a pipe whose writer sent a few rows and went quiet; they
// exit 130 and leave no checkpoint, spool or temporary file.
func TestSignalWhileReading(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	h := filepath.Join(dir, "h.safetensors")
	tinyHead(t, h)
	out := filepath.Join(dir, "o.safetensors")
	mkfifo := func(name string) string {
		p := filepath.Join(dir, name)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		t.Cleanup(func() { os.Remove(p) })
		return p
	}
	// quiet opens the FIFO for writing, sends a few rows and keeps it open.
	quiet := func(p string) {
		go func() {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			f.WriteString("text,label\nhello,a\nworld,b\n")
			t.Cleanup(func() { f.Close() })
		}()
	}
	t.Run("extract FIFO without writer", func(t *testing.T) {
		p := mkfifo("none.csv")
		cmd, stderr, done := startBounded(t, nil, "extract", "--data", p, "--out", out, "--threads", "1")
		interrupt(t, cmd, stderr, done)
		noLeftovers(t, dir, "h.safetensors", "none.csv", "quiet.csv")
	})
	t.Run("extract quiet FIFO", func(t *testing.T) {
		p := mkfifo("quiet.csv")
		quiet(p)
		cmd, stderr, done := startBounded(t, nil, "extract", "--data", p, "--out", out, "--threads", "1")
		interrupt(t, cmd, stderr, done)
		noLeftovers(t, dir, "h.safetensors", "none.csv", "quiet.csv")
	})
	t.Run("extract quiet stdin SIGTERM", func(t *testing.T) {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		defer pr.Close()
		pw.WriteString("text,label\nhello,a\n")
		cmd, stderr, done := startBounded(t, pr, "extract", "--data", "-", "--out", out, "--threads", "1")
		signalAndWait(t, cmd, stderr, done, syscall.SIGTERM)
		noLeftovers(t, dir, "h.safetensors", "none.csv", "quiet.csv")
	})
	t.Run("predict quiet stdin", func(t *testing.T) {
		// An *os.File, so that exec hands it over as it is (with an io.Reader, Wait
		// would wait for a copying goroutine that never ends).
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		defer pr.Close()
		pw.WriteString("text\nhello\n")
		cmd, stderr, done := startBounded(t, pr, "predict", "--head", h, "--data", "-", "--threads", "1", "--out", filepath.Join(dir, "p.csv"))
		interrupt(t, cmd, stderr, done)
		noLeftovers(t, dir, "h.safetensors", "none.csv", "quiet.csv")
	})
}

// TestFIFOOnePass: a FIFO as --data is read once (its writer writes it once), giving
// the same features as the regular file; the spool is gone afterwards.
func TestFIFOOnePass(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	data := "text,label\nhello there,a\ngood bye,b\nhello again,a\n"
	regular := filepath.Join(dir, "d.csv")
	os.WriteFile(regular, []byte(data), 0o644)
	p := filepath.Join(dir, "pipe.csv")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			f.WriteString(data)
			f.Close()
		}
	}()
	fromFIFO, fromFile := filepath.Join(dir, "fifo.safetensors"), filepath.Join(dir, "file.safetensors")
	if code, _, stderr := runBounded(t, 2*time.Minute, nil, "extract", "--data", p, "--out", fromFIFO, "--threads", "1"); code != 0 {
		t.Fatalf("extract from a FIFO: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runBounded(t, 2*time.Minute, []byte(data), "extract", "--data", "-", "--out", filepath.Join(dir, "stdin.safetensors"), "--threads", "1"); code != 0 {
		t.Fatalf("extract from stdin: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runBounded(t, 2*time.Minute, nil, "extract", "--data", regular, "--out", fromFile, "--threads", "1"); code != 0 {
		t.Fatalf("extract from the file: exit %d\n%s", code, stderr)
	}
	a, err := features.OpenStore(fromFIFO)
	if err != nil {
		t.Fatal(err)
	}
	b, err := features.OpenStore(fromFile)
	if err != nil {
		t.Fatal(err)
	}
	if a.N != 3 || !slices.Equal(a.Features, b.Features) || !slices.Equal(a.Labels, b.Labels) ||
		a.Manifest.Dataset.SHA256 != b.Manifest.Dataset.SHA256 {
		t.Fatalf("FIFO store (%d rows, data sha %s) differs from the file's (%d rows, %s)", a.N, a.Manifest.Dataset.SHA256, b.N, b.Manifest.Dataset.SHA256)
	}
	noLeftovers(t, dir, "d.csv", "pipe.csv", "fifo.safetensors", "file.safetensors", "stdin.safetensors")
}

// TestPredictBlankText: predict refuses a text of only whitespace and control
// characters as it refuses an empty one, naming the row, unless --allow-empty.
func TestPredictBlankText(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	h := filepath.Join(dir, "h.safetensors")
	tinyHead(t, h)
	data := filepath.Join(dir, "d.csv")
	os.WriteFile(data, []byte("text\nfine\n\" \t\u200b\"\n"), 0o644)
	code, _, stderr := runBounded(t, time.Minute, nil, "predict", "--head", h, "--data", data, "--threads", "1")
	if code != exitError || !strings.Contains(stderr, "row 1") || !strings.Contains(stderr, "--allow-empty") {
		t.Fatalf("exit %d, stderr %q; want exit %d naming row 1 and --allow-empty", code, stderr, exitError)
	}
	code, stdout, stderr := runBounded(t, time.Minute, nil, "predict", "--head", h, "--data", data, "--threads", "1", "--allow-empty")
	if code != 0 || strings.Count(stdout, "\n") != 3 {
		t.Fatalf("--allow-empty: exit %d, %q\n%s", code, stdout, stderr)
	}
}
