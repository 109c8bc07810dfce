// Package testutil holds what the tests of several packages share: where the
// repository's datasets are, how a test finds the artifacts scripts/setup.sh fetches
// (the same rule everywhere: a missing artifact fails the test, naming the setup step,
// and only -short turns that into a skip), and float comparisons that fail on NaN. It is
// imported by _test.go files only, and imports nothing of the module but internal/cache,
// so that any package's tests can use it.
package testutil

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
)

// RepoRoot is the absolute path of the repository root (the folder holding go.mod),
// found from this source file's location, so it does not depend on the test's
// working directory.
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("testutil: runtime.Caller failed")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// DataDir is the absolute path of the datasets shipped in the repository
// (data/sst2, data/banking77, the demo samples; each folder has a README with its
// source, licence and checksums).
func DataDir() string { return filepath.Join(RepoRoot(), "data") }

// Data returns the absolute path of rel under DataDir ("sst2/dev.csv") and fails
// the test when the file is missing.
func Data(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(DataDir(), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("dataset %s missing from the repository's data/ folder: %v", rel, err)
	}
	return p
}

// ReadCSV returns the records of the CSV file at path, its header first; a file that
// cannot be opened or parsed fails the test.
func ReadCSV(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// Artifact returns path, a file that `scripts/setup.sh step` puts in the cache ("venv",
// "runtime", "model all-minilm-l6-v2"). When it is missing the test fails, naming the
// step, or with -short is skipped.
func Artifact(t testing.TB, path, step string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skipf("-short: %s missing (scripts/setup.sh %s)", path, step)
		}
		t.Fatalf("test artifact missing: %v; run scripts/setup.sh %s", err, step)
	}
	return path
}

// VenvPython returns the reference venv's interpreter (scripts/setup.sh venv), as
// Artifact.
func VenvPython(t testing.TB) string {
	t.Helper()
	return Artifact(t, cache.VenvPython(), "venv")
}

// Runtime returns the onnxruntime library of the cache (scripts/setup.sh runtime), as
// Artifact.
func Runtime(t testing.TB) string {
	t.Helper()
	return Artifact(t, cache.RuntimeLib(), "runtime")
}

// Model returns the folder of the pulled registry model name, holding model.onnx and
// tokenizer.json (scripts/setup.sh model NAME), as Artifact.
func Model(t testing.TB, name string) string {
	t.Helper()
	dir := cache.ModelDir(name)
	for _, f := range []string{"model.onnx", "tokenizer.json"} {
		Artifact(t, filepath.Join(dir, f), "model "+name)
	}
	return dir
}

// MaxAbsDiff returns max_i |a_i − b_i|, computed in float64; +Inf when the lengths
// differ or a difference is NaN, so that `MaxAbsDiff(a, b) <= tol` fails on NaN.
func MaxAbsDiff[F ~float32 | ~float64](a, b []F) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		m = max(m, d)
	}
	return m
}

// Within reports whether |a − b| <= tol, false when either is NaN (unlike
// `math.Abs(a-b) > tol`, which lets a NaN pass as a match).
func Within(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
