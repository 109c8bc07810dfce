package headstart

import (
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

// defaultModel returns the pulled default model; a missing one fails the test (testutil.Model).
func defaultModel(t testing.TB) models.Paths {
	t.Helper()
	testutil.Model(t, models.Default)
	p, err := models.Resolve(models.Default)
	if err != nil {
		t.Fatalf("default model missing (run `make setup` or scripts/setup.sh): %v", err)
	}
	return p
}
