package headstart

import (
	"os"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/models"
)

// defaultModel returns the pulled default model, failing (never skipping) when setup has not run.
func defaultModel(t testing.TB) models.Paths {
	t.Helper()
	p, err := models.Resolve(models.Default)
	if err != nil {
		t.Fatalf("default model missing (run `make setup` or scripts/setup.sh): %v", err)
	}
	return p
}

// venvPython returns the reference venv's python made by `scripts/setup.sh venv`.
func venvPython(t testing.TB) string {
	t.Helper()
	py := cache.VenvPython()
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("reference venv missing (run `scripts/setup.sh venv`): %v", err)
	}
	return py
}
