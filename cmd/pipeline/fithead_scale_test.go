package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/head"
)

// pokedStore writes a feature store like syntheticStore with x[row*d+col] = v (none
// when row < 0).
func pokedStore(t *testing.T, n, d, k, row, col int, v float32) string {
	t.Helper()
	return writeSynthetic(t, n, d, k, rand.NewPCG(3, 4), 10, func(x []float32) {
		if row >= 0 {
			x[row*d+col] = v
		}
	})
}

// TestFitHeadExtremeFeatures: one feature value of 3e38 makes the solver fail; fit-head
// warns about the value (naming row and column) before fitting, refuses to write the
// head, and writes it only with --allow-unconverged. A clean store fits without either.
func TestFitHeadExtremeFeatures(t *testing.T) {
	for _, k := range []int{2, 3} {
		dir := t.TempDir()
		out := filepath.Join(dir, "h.safetensors")
		bad := pokedStore(t, 60, 8, k, 5, 7, 3e38)
		code, _, stderr := runBounded(t, 2*time.Minute, nil, "fit-head", "--train", bad, "--out", out)
		if !strings.Contains(stderr, "row 5 (dataset row 15), column 7") || !strings.Contains(stderr, "3e+38") {
			t.Errorf("k=%d: stderr %q; want a warning naming row 5 (dataset row 15), column 7 and the value", k, stderr)
		}
		if code != exitError || !strings.Contains(stderr, "--allow-unconverged") {
			t.Fatalf("k=%d: exit %d; want %d and a refusal naming --allow-unconverged\n%s", k, code, exitError, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("k=%d: a head was written by a failed solve", k)
		}
		code, _, stderr = runBounded(t, 2*time.Minute, nil, "fit-head", "--train", bad, "--out", out, "--allow-unconverged")
		if code != 0 {
			t.Fatalf("k=%d: --allow-unconverged: exit %d\n%s", k, code, stderr)
		}
		if _, err := head.Load(out); err != nil {
			t.Fatal(err)
		}

		good := pokedStore(t, 60, 8, k, -1, 0, 0)
		code, _, stderr = runBounded(t, 2*time.Minute, nil, "fit-head", "--train", good, "--out", filepath.Join(dir, "g.safetensors"))
		if code != 0 || strings.Contains(stderr, "warning") {
			t.Fatalf("k=%d: clean store: exit %d\n%s", k, code, stderr)
		}
	}
}
