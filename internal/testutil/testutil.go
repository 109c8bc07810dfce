// Package testutil holds what the tests of several packages share: where the
// repository's datasets are. It is imported by _test.go files only.
package testutil

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
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
