package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runBounded is run with a guard: a command that has not exited after limit is killed
// and the test fails (a hang is the failure these tests look for).
func runBounded(t *testing.T, limit time.Duration, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, pipelineBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("pipeline %s: still running after %v; killed\n%s", strings.Join(args, " "), limit, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

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
	requireModel(t)
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
