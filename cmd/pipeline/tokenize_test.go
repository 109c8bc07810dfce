package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestTokenizeCommand runs pipeline tokenize on two rows with the RoBERTa-style
// BPE fixture and all-mpnet-base-v2's tokenizer and compares the lines with
// what tokenizers 0.23.3 gives for the same texts (ids and character offsets
// pasted from Python: Tokenizer.from_file(...).encode(text), no truncation).
func TestTokenizeCommand(t *testing.T) {
	const text = "Hello world <mask>, it's café 東京 👨‍👩‍👧"
	dir := t.TempDir()
	data := filepath.Join(dir, "texts.csv")
	if err := os.WriteFile(data, []byte("text\n\""+text+"\"\nshort\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fixture string
		ids     []int64
		offsets [][2]int
	}{
		{"mpnet.json", []int64{0, 7596, 2092, 30526, 1014, 2013, 1009, 1059, 7672, 1883, 1759, 104, 2},
			[][2]int{{0, 0}, {0, 5}, {6, 11}, {12, 18}, {18, 19}, {20, 22}, {22, 23}, {23, 24}, {25, 29}, {30, 31}, {31, 32}, {33, 38}, {0, 0}}},
		{"roberta-bpe.json", []int64{0, 1856, 1288, 4, 16, 309, 471, 1091, 74, 815, 225, 2646, 1931, 106, 1614, 107, 1614, 105, 2},
			[][2]int{{0, 0}, {0, 5}, {6, 11}, {12, 18}, {18, 19}, {20, 22}, {22, 24}, {25, 27}, {27, 28}, {28, 29}, {30, 30}, {30, 32}, {33, 34}, {33, 34}, {34, 36}, {35, 36}, {36, 38}, {37, 38}, {0, 0}}},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			out := filepath.Join(dir, c.fixture+".jsonl")
			var stderr bytes.Buffer
			err := runTokenize(context.Background(), tokenizeOptions{
				Model: filepath.Join("..", "..", "tokenize", "testdata", c.fixture), Data: data, Out: out, TextCol: "text", MaxLen: 512,
			}, &bytes.Buffer{}, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var recs []tokenizeRecord
			for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
				var r tokenizeRecord
				if err := json.Unmarshal(line, &r); err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				recs = append(recs, r)
			}
			if len(recs) != 2 || recs[0].Row != 0 || recs[1].Row != 1 {
				t.Fatalf("%d records %+v; want rows 0 and 1", len(recs), recs)
			}
			r := recs[0]
			if !slices.Equal(r.IDs, c.ids) || !slices.Equal(r.Offsets, c.offsets) || len(r.Tokens) != len(c.ids) ||
				len(r.TypeIDs) != len(c.ids) || r.NumTokens != len(c.ids) || r.Truncated {
				t.Errorf("row 0 = %+v;\nwant ids %v offsets %v", r, c.ids, c.offsets)
			}
		})
	}

	// Truncation is reported; a bad --out is a usage error.
	out := filepath.Join(dir, "short.jsonl")
	if err := runTokenize(context.Background(), tokenizeOptions{
		Model: filepath.Join("..", "..", "tokenize", "testdata", "xlmr-unigram.json"), Data: data, Out: out, TextCol: "text", MaxLen: 4,
	}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	var r tokenizeRecord
	if err := json.Unmarshal(bytes.SplitN(b, []byte("\n"), 2)[0], &r); err != nil || !r.Truncated || len(r.IDs) != 4 || r.NumTokens <= 4 {
		t.Errorf("MaxLen 4: %+v (%v); want 4 ids and truncated", r, err)
	}
	err := runTokenize(context.Background(), tokenizeOptions{Model: "x", Data: data, Out: filepath.Join(dir, "a.csv")}, &bytes.Buffer{}, &bytes.Buffer{})
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("--out a.csv: %v; want a usage error", err)
	}
}
