package features

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// cacheDir is where scripts/setup.sh puts the artifacts tests need:
// $HEADSTART_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/headstart.
func cacheDir() string {
	if d := os.Getenv("HEADSTART_CACHE"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "headstart")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "headstart")
}

// venvPython returns the reference Python of scripts/setup.sh venv. A missing venv fails
// the test (it is part of the project's setup), unless -short is set.
func venvPython(t *testing.T) string {
	t.Helper()
	p := filepath.Join(cacheDir(), "venv-test", "bin", "python")
	if _, err := os.Stat(p); err != nil {
		if testing.Short() {
			t.Skipf("reference venv missing (%v); -short set", err)
		}
		t.Fatalf("reference Python venv missing at %s: run scripts/setup.sh venv (%v)", p, err)
	}
	return p
}

// runScript runs scripts/<name> with the venv Python.
func runScript(t *testing.T, name string, args ...string) {
	t.Helper()
	py := venvPython(t)
	cmd := exec.Command(py, append([]string{filepath.Join("..", "scripts", name)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func writeF32(t *testing.T, path string, v []float32) {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeI64(t *testing.T, path string, v []int64) {
	t.Helper()
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func readI64(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]int64, len(b)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v
}

// maxAbsDiff returns the largest |a_i - b_i|, or +Inf when the lengths differ or either
// side holds a NaN, so that a NaN can never pass a `<= tol` check.
func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		x := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(x) {
			return math.Inf(1)
		}
		d = max(d, x)
	}
	return d
}
