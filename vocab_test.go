package headstart

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/tokenize"
)

// TestVocabMismatch: a tokenizer.json with ids past the model's word
// embedding table (here an added token with id 40000 next to MiniLM's 30,522
// rows) is refused when the encoder opens, naming both files.
func TestVocabMismatch(t *testing.T) {
	p := defaultModel(t)
	b, err := os.ReadFile(p.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["added_tokens"] = append(doc["added_tokens"].([]any), map[string]any{
		"id": 40000, "content": "<extra>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	p.Tokenizer = filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p.Tokenizer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = NewEncoder(p, EncoderOptions{})
	if !errors.Is(err, tokenize.ErrVocabSize) || !strings.Contains(err.Error(), "40000") || !strings.Contains(err.Error(), "30522 rows") ||
		!strings.Contains(err.Error(), p.Tokenizer) {
		t.Fatalf("NewEncoder: %v; want ErrVocabSize naming the tokenizer, id 40000 and 30522 rows", err)
	}
}
