package lora_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
)

// TestMPNetRealBlockParity checks MPNet's block math (the random-weight fixture's
// test is TestBlockMathRandomWeightFixtures/mpnet) on all-mpnet-base-v2's real
// weights, blocks 11 and 0, with sentences up to 128 tokens (the last relative
// position buckets), outside CI: it runs when scripts/setup.sh mpnet has
// exported the model and is skipped otherwise.
func TestMPNetRealBlockParity(t *testing.T) {
	dir := filepath.Join(cache.Dir(), "mpnet", "all-mpnet-base-v2")
	modelPath := filepath.Join(dir, "model.onnx")
	if _, err := os.Stat(modelPath); err != nil {
		t.Skipf("all-mpnet-base-v2 (real weights) not exported: %v; run scripts/setup.sh mpnet", err)
	}
	long := strings.Repeat("a sentence long enough to reach the last relative position buckets, ", 12)
	checkBlockParity(t, "all-mpnet-base-v2", modelPath, filepath.Join(dir, "tokenizer.json"),
		append(append([]string{}, paritySentences...), long), []int{11, 0})
}
