package main

import (
	"bytes"
	"context"
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

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

var pipelineBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pipeline-test")
	if err != nil {
		panic(err)
	}
	pipelineBin = filepath.Join(dir, "pipeline")
	if out, err := exec.Command("go", "build", "-o", pipelineBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs the pipeline binary and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runInput(t, "", args...)
}

// runInput is run with stdin as the command's standard input.
func runInput(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, runSpec{stdin: []byte(stdin)}, args...)
}

// runBounded is runInput with a guard: a command that has not exited after limit is
// killed and the test fails (a hang is the failure some tests look for).
func runBounded(t *testing.T, limit time.Duration, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, runSpec{stdin: stdin, limit: limit}, args...)
}

// runEnv is run with extra environment variables.
func runEnv(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, runSpec{env: env}, args...)
}

// runSpec says how runWith runs the binary: its standard input (none when nil), the
// variables added to this process's environment, and a time limit (none when 0).
type runSpec struct {
	stdin []byte
	env   []string
	limit time.Duration
}

// runWith runs the pipeline binary as s says and returns its exit code, stdout and stderr.
func runWith(t *testing.T, s runSpec, args ...string) (int, string, string) {
	t.Helper()
	ctx := context.Background()
	if s.limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.limit)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, pipelineBin, args...)
	if s.env != nil {
		cmd.Env = append(os.Environ(), s.env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if s.stdin != nil {
		cmd.Stdin = bytes.NewReader(s.stdin)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("pipeline %s: still running after %v; killed\n%s", strings.Join(args, " "), s.limit, stderr.String())
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

func TestExitCodesAndMessages(t *testing.T) {
	testutil.Model(t, models.Default)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	os.WriteFile(good, []byte("text,label\nhello,a\n"), 0o644)
	out := filepath.Join(dir, "o.safetensors")
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"help", []string{"extract", "--help"}, 0, ""},
		{"unknown pooling", []string{"extract", "--data", good, "--out", out, "--pooling", "avg"}, 2, "want one of mean, cls, max, last"},
		{"bad layers", []string{"extract", "--data", good, "--out", out, "--layers", "-1,x"}, 2, "not an integer"},
		{"unknown provider", []string{"extract", "--data", good, "--out", out, "--provider", "tpu"}, 2, "cpu"},
		{"unknown flag", []string{"extract", "--data", good, "--out", out, "--bogus"}, 2, "bogus"},
		{"missing data", []string{"extract", "--data", filepath.Join(dir, "none.csv"), "--out", out}, 1, "none.csv"},
		{"missing label column", []string{"extract", "--data", good, "--out", out, "--label-col", "intent"}, 1, "intent"},
		{"layer out of range", []string{"extract", "--data", good, "--out", out, "--layers", "7"}, 1, "out of range"},
		{"unknown model", []string{"extract", "--data", good, "--out", out, "--model", "gpt-9"}, 1, "all-minilm-l6-v2"},
		{"models pull unknown", []string{"models", "pull", "gpt-9"}, 2, "known models"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := run(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d; want %d\n%s", code, c.code, stderr)
			}
			if !strings.Contains(stderr, c.msg) {
				t.Fatalf("stderr %q; want it to mention %q", stderr, c.msg)
			}
			if c.code != 0 {
				if _, err := os.Stat(out); err == nil {
					t.Fatal("output written by a failing run")
				}
			}
		})
	}
}

// TestMissingFlagsAreUsageErrors: a command called without a required flag returns a
// usageError holding a missingFlagsError (recognised by type, not by its text), and the
// binary prints one line naming the flags and where to see them, no help page, exit 2.
// An unknown command is wrong usage too.
func TestMissingFlagsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		command string
		missing []string
		line    string
	}{
		{[]string{"predict"}, "predict", []string{"head", "data"},
			"pipeline: predict: --head and --data are required (every flag: pipeline predict --help)\n"},
		{[]string{"predict", "--head", "h.safetensors"}, "predict", []string{"data"},
			"pipeline: predict: --data is required (every flag: pipeline predict --help)\n"},
		{[]string{"features", "merge", "a.safetensors"}, "features merge", []string{"out"},
			"pipeline: features merge: --out is required (every flag: pipeline features merge --help)\n"},
		{[]string{"fit-head", "--out", "h.safetensors"}, "fit-head", []string{"train"},
			"pipeline: fit-head: --train is required (every flag: pipeline fit-head --help)\n"},
	} {
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := app.Run(append([]string{"pipeline"}, tc.args...))
		var ue usageError
		var mf missingFlagsError
		if !errors.As(err, &ue) || !errors.As(err, &mf) || mf.command != tc.command || !slices.Equal(mf.flags, tc.missing) {
			t.Errorf("%q: error %#v; want a usageError with missingFlagsError{%q, %q}", tc.args, err, tc.command, tc.missing)
		}
		code, stdout, stderr := run(t, tc.args...)
		if code != exitUsage || stdout != "" || stderr != tc.line {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2, nothing on stdout, stderr %q", tc.args, code, stdout, stderr, tc.line)
		}
	}
	code, _, stderr := run(t, "bogus")
	if code != exitUsage || !strings.HasPrefix(stderr, `pipeline: unknown command "bogus"; want one of extract, `) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("unknown command: exit %d, %q; want 2 and one line listing the commands", code, stderr)
	}
	// Every flag declared Required is checked by markUsageErrors, none by cli.
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if rf, ok := f.(cli.RequiredFlag); ok && rf.IsRequired() {
					t.Errorf("%s --%s is still Required for cli", c.Name, f.Names()[0])
				}
			}
			walk(c.Subcommands)
		}
	}
	walk(newApp().Commands)
}

// TestKillAndResume kills a running extract with SIGKILL once its checkpoint holds some
// rows, resumes it, and checks the result equals an uninterrupted run byte for byte.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	common := []string{"extract", "--data", data, "--limit", "640", "--chunk-rows", "64", "--batch-size", "16", "--threads", "1"}
	full := filepath.Join(dir, "full.safetensors")
	if code, _, stderr := run(t, append(common, "--out", full)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
	}

	out := filepath.Join(dir, "killed.safetensors")
	cmd := exec.Command(pipelineBin, append(common, "--out", out)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(out + ".partial.json"); err == nil && !bytes.Contains(b, []byte(`"rows":0`)) {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a killed run left a final output file")
	}
	code, _, stderr := run(t, append(common, "--out", out, "--resume")...)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "resumed") {
		t.Fatalf("resume summary %q", stderr)
	}
	a, _ := os.ReadFile(full)
	b, _ := os.ReadFile(out)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("resumed output differs from the uninterrupted run (%d vs %d bytes)", len(b), len(a))
	}
}

// TestDiskFull runs extract with a file-size limit so writing fails midway: a clear error,
// exit 1, and no final output.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	out := filepath.Join(dir, "o.safetensors")
	cmd := exec.Command("bash", "-c", `ulimit -f 64; exec "$0" "$@"`, pipelineBin, "extract", "--data", data, "--out", out, "--chunk-rows", "128")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("err %v; want exit 1\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "file too large") {
		t.Fatalf("stderr %q; want the write error", stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("final output exists after a failed write")
	}
}
