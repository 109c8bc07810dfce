package tokenize

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// editFixture loads a testdata fixture as a JSON document, lets edit change
// it and writes it to a temporary tokenizer.json.
func editFixture(t *testing.T, name string, edit func(doc map[string]any)) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	if b, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func modelOf(doc map[string]any) map[string]any { return doc["model"].(map[string]any) }

// TestLoadErrorsGeneral: malformed or unsupported files fail to load with an error
// that wraps the right sentinel and says what is wrong and what is supported.
func TestLoadErrorsGeneral(t *testing.T) {
	for _, c := range []struct {
		name, fixture string
		edit          func(map[string]any)
		want          error
		says          []string
	}{
		{"bpe-merge-unknown-token", "roberta-bpe.json", func(d map[string]any) {
			m := modelOf(d)
			m["merges"] = append(m["merges"].([]any), []any{"zzqq", "Ġthe"})
		}, ErrFormat, []string{`"zzqq"`, "not in the vocab", "merge"}},
		{"bpe-merge-result-unknown", "roberta-bpe.json", func(d map[string]any) {
			m := modelOf(d)
			m["merges"] = append(m["merges"].([]any), []any{"Ġthe", "Ġthe"})
		}, ErrFormat, []string{`"ĠtheĠthe"`, "not in the vocab"}},
		{"bpe-dropout", "roberta-bpe.json", func(d map[string]any) { modelOf(d)["dropout"] = 0.1 }, ErrUnsupported, []string{"dropout"}},
		{"unigram-unk-out-of-range", "xlmr-unigram.json", func(d map[string]any) { modelOf(d)["unk_id"] = 1e6 }, ErrFormat, []string{"unk_id"}},
		{"unigram-bad-entry", "xlmr-unigram.json", func(d map[string]any) { modelOf(d)["vocab"] = []any{"a"} }, ErrFormat, []string{"[piece, score]"}},
		{"model-type", "xlmr-unigram.json", func(d map[string]any) { modelOf(d)["type"] = "WordLevel" }, ErrUnsupported, []string{`"WordLevel"`, "WordPiece, BPE or Unigram"}},
		{"normalizer-type", "xlmr-unigram.json", func(d map[string]any) { d["normalizer"] = map[string]any{"type": "StripAccents"} },
			ErrUnsupported, []string{`"StripAccents"`, "Precompiled", "NFKC"}},
		{"pre-tokenizer-type", "roberta-bpe.json", func(d map[string]any) { d["pre_tokenizer"] = map[string]any{"type": "CharDelimiterSplit"} },
			ErrUnsupported, []string{`"CharDelimiterSplit"`, "ByteLevel", "Metaspace"}},
		{"post-processor-type", "roberta-bpe.json", func(d map[string]any) { d["post_processor"] = map[string]any{"type": "Custom"} },
			ErrUnsupported, []string{`"Custom"`, "RobertaProcessing"}},
		{"split-regex", "roberta-bpe.json", func(d map[string]any) {
			d["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `a(?=b)`}, "behavior": "Isolated", "invert": false}
		}, ErrUnsupported, []string{"a(?=b)", "RE2"}},
		{"split-behavior", "roberta-bpe.json", func(d map[string]any) {
			d["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "Sideways", "invert": false}
		}, ErrFormat, []string{`"Sideways"`, "MergedWithNext"}},
		{"metaspace-scheme", "xlmr-unigram.json", func(d map[string]any) {
			d["pre_tokenizer"].(map[string]any)["prepend_scheme"] = "sometimes"
		}, ErrFormat, []string{`"sometimes"`, "always, first or never"}},
		{"precompiled-short", "xlmr-unigram.json", func(d map[string]any) {
			d["normalizer"] = map[string]any{"type": "Precompiled", "precompiled_charsmap": "AQID"}
		}, ErrFormat, []string{"too short"}},
		{"no-model", "roberta-bpe.json", func(d map[string]any) { delete(d, "model") }, ErrFormat, []string{"no model"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(editFixture(t, c.fixture, c.edit), Options{})
			if !errors.Is(err, c.want) {
				t.Fatalf("Load: %v; want an error wrapping %v", err, c.want)
			}
			for _, s := range c.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load: %v; want it to say %s", err, s)
				}
			}
			if !strings.Contains(err.Error(), "tokenizer.json") {
				t.Errorf("Load: %v; want it to name the file", err)
			}
		})
	}
}

// TestUnigramUnknown: a Unigram model without unk_id refuses a character it
// has no piece for (with byte_fallback too, as tokenizers does) and encodes
// text it covers; with unk_id the character becomes unk or bytes.
func TestUnigramUnknown(t *testing.T) {
	const text = "hello ☃ world"
	for _, bf := range []bool{false, true} {
		p := editFixture(t, "llama-unigram-bytefallback.json", func(d map[string]any) {
			modelOf(d)["unk_id"] = nil
			modelOf(d)["byte_fallback"] = bf
		})
		tok, err := Load(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tok.Encode(text); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), `'☃'`) {
			t.Errorf("byte_fallback %v: Encode(%q) = %v; want ErrUnknown naming '☃'", bf, text, err)
		}
		if _, err := tok.EncodePair("fine", text); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "sequence 2") {
			t.Errorf("byte_fallback %v: EncodePair = %v; want ErrUnknown in sequence 2", bf, err)
		}
		if e, err := tok.Encode("hello world"); err != nil || len(e.IDs) < 3 {
			t.Errorf("byte_fallback %v: Encode(hello world) = %v, %v", bf, e.IDs, err)
		}
	}
	tok, err := Load(filepath.Join("testdata", "llama-unigram-bytefallback.json"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := tok.EncodeDetailed(text)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(d.Tokens, " "), "<0xE2> <0x98> <0x83>") {
		t.Errorf("byte fallback tokens %q; want ☃'s bytes <0xE2> <0x98> <0x83>", d.Tokens)
	}
}

// TestPairTooShort: a MaxLen below the pair template's special tokens is an
// option error on EncodePair (one sequence still fits).
func TestPairTooShort(t *testing.T) {
	tok, err := Load(filepath.Join("testdata", "roberta-bpe.json"), Options{MaxLen: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Encode("hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.EncodePair("a", "b"); !errors.Is(err, ErrOption) {
		t.Fatalf("EncodePair at MaxLen 3 with RobertaProcessing (4 special tokens): %v; want ErrOption", err)
	}
}

// TestTruncatePair checks LongestFirst against cases worked out from
// tokenizers' truncate_encodings.
func TestTruncatePair(t *testing.T) {
	for _, c := range []struct{ n1, n2, limit, w1, w2 int }{
		{3, 100, 10, 3, 7}, {100, 3, 10, 7, 3}, {8, 9, 10, 5, 5}, {9, 8, 10, 5, 5},
		{20, 20, 11, 5, 6}, {3, 5, 6, 3, 3}, {50, 60, 0, 0, 0}, {12, 1, 5, 4, 1},
	} {
		if g1, g2 := truncatePair(c.n1, c.n2, c.limit); min(g1, c.n1) != c.w1 || min(g2, c.n2) != c.w2 {
			t.Errorf("truncatePair(%d, %d, %d) keeps %d, %d; want %d, %d", c.n1, c.n2, c.limit, min(g1, c.n1), min(g2, c.n2), c.w1, c.w2)
		}
	}
}

// TestVocabSize: the largest id plus one, added tokens included.
func TestVocabSize(t *testing.T) {
	for name, want := range map[string]int{"mpnet.json": 30527, "roberta-bpe.json": 3000, "xlmr-unigram.json": 4002} {
		tok, err := Load(filepath.Join("testdata", name), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.VocabSize(); got != want {
			t.Errorf("%s: VocabSize %d; want %d", name, got, want)
		}
	}
}
