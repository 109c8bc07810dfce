package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// TestServeBinary starts `pipeline serve` on a free loopback port, embeds, and stops it
// with SIGTERM: exit code 0 after a graceful shutdown.
func TestServeBinary(t *testing.T) {
	testutil.Model(t, models.Default)
	cmd := exec.Command(pipelineBin, "serve", "--addr", "127.0.0.1:0", "--threads", "1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	addr := make(chan string, 1)
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if strings.Contains(line, "listening on http://") {
				addr <- line
			}
		}
	}()
	var url, listening string
	select {
	case listening = <-addr:
		_, rest, _ := strings.Cut(listening, "listening on http://")
		url = "http://" + strings.Fields(rest)[0]
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not report its address")
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("listening on %s; want loopback", url)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// One session: one scheduler P more than the runtime's default.
		if want := fmt.Sprintf("GOMAXPROCS %d)", runtime.GOMAXPROCS(0)+1); !strings.Contains(listening, want) {
			t.Errorf("serve said %q; want %q", listening, want)
		}
	}
	resp, err := http.Post(url+"/v1/embed", "application/json", strings.NewReader(`{"texts": ["hello", "world"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Embeddings [][]float32 }
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(got.Embeddings) != 2 || len(got.Embeddings[0]) != 384 {
		t.Fatalf("embed: %d, %v", resp.StatusCode, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-logDone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "serve: stopped") {
		t.Fatalf("stderr:\n%s", log.String())
	}
}

// TestRunServe runs the command in-process with a head; cancelling its context stops it.
func TestRunServe(t *testing.T) {
	testutil.Model(t, models.Default)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, serveOptions{
			Model: "all-minilm-l6-v2", Addr: "127.0.0.1:0", Sessions: 1, Threads: 1, Provider: "cpu",
			Spec: specFlags{Pooling: "mean"}, Layers: "-1", MaxBatch: 8, MaxWait: time.Millisecond, MaxBody: 1 << 20,
			MaxTexts: 16, MaxTextBytes: 1000, ShutdownTimeout: 5 * time.Second,
			ready: func(a string) { ready <- a },
		}, io.Discard, io.Discard)
	}()
	var url string
	select {
	case a := <-ready:
		url = "http://" + a
	case err := <-done:
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, "/v1/classify": 405, "/nope": 404} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d; want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServeProcs(t *testing.T) {
	for _, c := range []struct {
		flag, sessions int
		env            string
		current, want  int
	}{
		{0, 2, "", 2, 4},  // default: one P per session on top of the cores
		{0, 1, "", 8, 9},  //
		{3, 2, "", 2, 3},  // the flag wins
		{3, 2, "6", 6, 3}, // even over the variable
		{0, 2, "6", 6, 0}, // the variable, already applied: leave it
		{0, 2, "x", 2, 4}, // not a number: the runtime ignored it too
	} {
		if got := serveProcs(c.flag, c.sessions, c.env, c.current); got != c.want {
			t.Errorf("serveProcs(%d, %d, %q, %d) = %d; want %d", c.flag, c.sessions, c.env, c.current, got, c.want)
		}
	}
}

func TestServeUsage(t *testing.T) {
	testutil.Model(t, models.Default)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"serve", "--max-batch", "0"}, exitUsage, "--max-batch"},
		{[]string{"serve", "--addr", "8080"}, exitUsage, "--addr"},
		{[]string{"serve", "--pooling", "avg"}, exitUsage, "pooling"},
		{[]string{"serve", "--max-wait", "soon"}, exitUsage, "max-wait"},
		{[]string{"serve", "--go-procs", "-1"}, exitUsage, "--go-procs -1: want 0 (automatic) or more"},
		{[]string{"serve", "--pack-len", "-1"}, exitUsage, "--pack-len -1: want 0 (off) or more"},
		{[]string{"serve", "--threshold", "1"}, exitUsage, "--threshold 1: want a probability in (0, 1)"},
		{[]string{"serve", "--threshold", "0"}, exitUsage, "--threshold 0: want a probability in (0, 1)"},
		{[]string{"serve", "--threshold", "0.3"}, exitUsage, "--threshold applies to multi-label heads"},
		{[]string{"serve", "--head", filepath.Join(t.TempDir(), "none.safetensors")}, exitError, "none.safetensors"},
	} {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}
