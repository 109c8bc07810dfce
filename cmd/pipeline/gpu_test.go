package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// TestProviderWithoutCUDABuild runs --provider cuda and auto with a cache that
// holds only the CPU build (what make setup and CI fetch): cuda fails naming
// the missing provider library and the setup step; auto runs on the CPU and
// says why.
func TestProviderWithoutCUDABuild(t *testing.T) {
	testutil.Model(t, models.Default)
	lib := cache.RuntimeLib()
	if _, err := os.Stat(lib); err != nil {
		t.Fatalf("run `make setup` first: %v", err)
	}
	p, err := models.Resolve(models.Default)
	if err != nil {
		t.Fatal(err)
	}
	// A cache with the CPU build only.
	c := t.TempDir()
	cpuDir := filepath.Join(c, "onnxruntime", cache.RuntimeVersion)
	if err := os.MkdirAll(cpuDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(lib, filepath.Join(cpuDir, filepath.Base(lib))); err != nil {
		t.Fatal(err)
	}
	env := []string{"HEADSTART_CACHE=" + c, "HEADSTART_ORT_LIB="}
	data := testutil.Data(t, "sst2/dev.csv")
	out := filepath.Join(t.TempDir(), "o.safetensors")
	args := []string{"extract", "--data", data, "--limit", "8", "--threads", "1", "--model", p.Dir, "--out", out}

	code, _, stderr := runEnv(t, env, append(args, "--provider", "cuda")...)
	if code != 1 {
		t.Fatalf("--provider cuda: exit %d, want 1\n%s", code, stderr)
	}
	for _, s := range []string{"CUDA execution provider unavailable", "libonnxruntime_providers_cuda.so not found in " + cpuDir, "scripts/setup.sh gpu"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("--provider cuda: stderr %q does not mention %q", stderr, s)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("--provider cuda: output written by a failing run")
	}

	code, stdout, stderr := runEnv(t, env, append(args, "--provider", "auto", "--json")...)
	if code != 0 {
		t.Fatalf("--provider auto: exit %d, want 0\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "--provider auto: CUDA unavailable, running on cpu") || !strings.Contains(stderr, "scripts/setup.sh gpu") {
		t.Errorf("--provider auto: stderr %q; want it to say it runs on the CPU and why", stderr)
	}
	var sum struct {
		Provider string `json:"provider"`
		Fallback string `json:"provider_fallback"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if sum.Provider != "cpu" || !strings.Contains(sum.Fallback, "libonnxruntime_providers_cuda.so") {
		t.Errorf("--json: provider %q, provider_fallback %q; want cpu and the reason", sum.Provider, sum.Fallback)
	}
}

// TestProviderWithCUDABuild runs --provider cuda and auto with the CUDA build
// that scripts/setup.sh gpu fetched, when it did (optional: 2.7 GB, never
// fetched by make setup or CI). Without a GPU, cuda must fail naming the
// driver (every CUDA library loads from the cache) and auto must fall back
// with that reason; with one, both run on cuda:0.
func TestProviderWithCUDABuild(t *testing.T) {
	testutil.Model(t, models.Default)
	if _, err := os.Stat(onnx.GPULibrary()); err != nil {
		t.Skipf("optional check not run: the CUDA build is not in the cache (%s); scripts/setup.sh gpu fetches it", onnx.GPULibrary())
	}
	t.Logf("the CUDA build is in the cache (%s)", onnx.GPULibrary())
	env := []string{"HEADSTART_ORT_LIB="}
	data := testutil.Data(t, "sst2/dev.csv")
	out := filepath.Join(t.TempDir(), "o.safetensors")
	args := []string{"extract", "--data", data, "--limit", "8", "--threads", "1", "--out", out}

	code, _, stderr := runEnv(t, env, append(args, "--provider", "cuda")...)
	switch {
	case code == 0:
		if !strings.Contains(stderr, "cuda:0]") {
			t.Errorf("--provider cuda: exit 0 but the summary does not say cuda:0:\n%s", stderr)
		}
		t.Logf("--provider cuda ran on the GPU: %s", stderr)
	case !strings.Contains(stderr, "libcuda.so.1 (the NVIDIA driver) not found"):
		t.Errorf("--provider cuda: exit %d; want a GPU run or an error naming the missing driver:\n%s", code, stderr)
	case strings.Contains(stderr, "needs libraries"):
		t.Errorf("--provider cuda: a CUDA library of the cache did not load:\n%s", stderr)
	default:
		t.Logf("--provider cuda, no driver here: %s", stderr)
	}

	code, _, stderr = runEnv(t, env, append(args, "--provider", "auto")...)
	if code != 0 {
		t.Fatalf("--provider auto: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "CUDA loaded, running on cuda:0") &&
		!(strings.Contains(stderr, "CUDA unavailable, running on cpu") && strings.Contains(stderr, "libcuda.so.1")) {
		t.Errorf("--provider auto: stderr %q; want CUDA, or the CPU with the missing driver named", stderr)
	}
}
