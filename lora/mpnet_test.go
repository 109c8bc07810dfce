package lora_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
)

// mpnetFixture is scripts/make_mpnet_fixture.py's randomly initialised MPNet
// encoder (3 blocks, hidden 32, 4 heads, 32 relative-position buckets).
var mpnetFixture = filepath.Join("..", "testdata", "layouts", "mpnet")

// mpnetSentences reach relative distances past the exact buckets (the long
// one splits into characters: over 60 tokens).
var mpnetSentences = []string{
	"hello world",
	"the quick brown fox jumps over the lazy dog .",
	"a",
	"headstart reads mpnet graphs ; zyxwvut qrstuv and 0123456789 split into many many pieces !",
}

// TestMPNetRandomWeightsBlockParity: the block math of MPNet (post-LN BERT
// blocks plus the encoder's relative position bias) on random weights: the
// Go block on every block of the fixture equals onnxruntime (parityTol).
func TestMPNetRandomWeightsBlockParity(t *testing.T) {
	checkBlockParity(t, "random MPNet", filepath.Join(mpnetFixture, "model.onnx"), filepath.Join(mpnetFixture, "tokenizer.json"),
		mpnetSentences, []int{2, 1, 0})
}

// TestMPNetRealBlockParity is the same check on all-mpnet-base-v2's real
// weights (blocks 11 and 0), outside CI: it runs when scripts/setup.sh mpnet
// has exported the model and is skipped otherwise.
func TestMPNetRealBlockParity(t *testing.T) {
	dir := filepath.Join(cache.Dir(), "mpnet", "all-mpnet-base-v2")
	modelPath := filepath.Join(dir, "model.onnx")
	if _, err := os.Stat(modelPath); err != nil {
		t.Skipf("all-mpnet-base-v2 (real weights) not exported: %v; run scripts/setup.sh mpnet", err)
	}
	tokPath := filepath.Join(dir, "tokenizer.json")
	long := strings.Repeat("a sentence long enough to reach the last relative position buckets, ", 12)
	checkBlockParity(t, "all-mpnet-base-v2", modelPath, tokPath, append(append([]string{}, paritySentences...), long), []int{11, 0})
}
