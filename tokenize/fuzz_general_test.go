package tokenize

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzGeneralSeeds are encodeSeeds plus the multilingual sentences and text
// that meets each fixture's special cases (added tokens with lstrip, byte
// fallback, runs of spaces, contractions).
func fuzzGeneralSeeds(f *testing.F) {
	for _, s := range encodeSeeds {
		f.Add(s)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "multilingual.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f.Add(l)
	}
	for _, s := range []string{
		"it's <mask> and   <mask>", "<s></s><pad><unk>", "  leading and trailing  ", "we'll've'd 's",
		"☃☃ \U0001d11e", "\u3000\u3000x", "<mask><mask>x<mask>", "a\u200d\u200db",
	} {
		f.Add(s)
	}
}

// fuzzFixture checks, for any text, the properties every tokenizer.json
// pipeline must have: invalid UTF-8 is ErrInvalidUTF8 and nothing else is an
// error; ids lie in [0, VocabSize); at MaxLen 8 and 512 the lengths agree with
// NumTokens and Truncated and NumTokens does not depend on MaxLen;
// EncodeDetailed gives Encode's ids with in-bounds, ordered offsets and
// sequence ids; encoding is deterministic; a pair of the text with itself
// encodes and counts both sequences.
func fuzzFixture(f *testing.F, names ...string) {
	type tk struct{ short, long *Tokenizer }
	var toks []tk
	for _, n := range names {
		s, err := Load(filepath.Join("testdata", n), Options{MaxLen: 8})
		if err != nil {
			f.Fatal(err)
		}
		l, err := Load(filepath.Join("testdata", n), Options{MaxLen: 512})
		if err != nil {
			f.Fatal(err)
		}
		toks = append(toks, tk{s, l})
	}
	fuzzGeneralSeeds(f)
	f.Fuzz(func(t *testing.T, text string) {
		for _, tp := range toks {
			name := filepath.Base(tp.long.Path())
			el, err := tp.long.Encode(text)
			if !utf8.ValidString(text) {
				if !errors.Is(err, ErrInvalidUTF8) {
					t.Fatalf("%s: Encode(%+q) = %v; want ErrInvalidUTF8", name, text, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: Encode(%+q): %v", name, text, err)
			}
			es, err := tp.short.Encode(text)
			if err != nil {
				t.Fatalf("%s: Encode(%+q) at MaxLen 8: %v", name, text, err)
			}
			for _, c := range []struct {
				e   Encoding
				max int
			}{{el, 512}, {es, 8}} {
				n := len(c.e.IDs)
				if n != min(c.e.NumTokens, c.max) || c.e.Truncated != (c.e.NumTokens > c.max) || len(c.e.Mask) != n || len(c.e.TypeIDs) != n {
					t.Fatalf("%s: Encode(%+q) at MaxLen %d: %d ids, NumTokens %d, Truncated %v", name, text, c.max, n, c.e.NumTokens, c.e.Truncated)
				}
				for _, id := range c.e.IDs {
					if id < 0 || id >= int64(tp.long.VocabSize()) {
						t.Fatalf("%s: Encode(%+q): id %d outside [0, %d)", name, text, id, tp.long.VocabSize())
					}
				}
			}
			if es.NumTokens != el.NumTokens {
				t.Fatalf("%s: Encode(%+q): NumTokens %d at MaxLen 8, %d at 512", name, text, es.NumTokens, el.NumTokens)
			}
			ed, d, err := tp.long.EncodeDetailed(text)
			if err != nil || !equalEncodings(ed, el) {
				t.Fatalf("%s: EncodeDetailed(%+q) = %v (%v); want Encode's %v", name, text, ed.IDs, err, el.IDs)
			}
			if len(d.Tokens) != len(ed.IDs) || len(d.Offsets) != len(ed.IDs) || len(d.Sequence) != len(ed.IDs) {
				t.Fatalf("%s: EncodeDetailed(%+q): %d tokens, %d offsets, %d sequence ids for %d ids", name, text, len(d.Tokens), len(d.Offsets), len(d.Sequence), len(ed.IDs))
			}
			for i, o := range d.Offsets {
				if o[0] < 0 || o[0] > o[1] || o[1] > len(text) || (d.Sequence[i] < 0 && o != [2]int{}) || d.Sequence[i] > 0 {
					t.Fatalf("%s: EncodeDetailed(%+q): token %d (%q) offsets %v, sequence %d", name, text, i, d.Tokens[i], o, d.Sequence[i])
				}
			}
			again, err := tp.long.Encode(text)
			if err != nil || !equalEncodings(again, el) {
				t.Fatalf("%s: Encode(%+q) is not deterministic", name, text)
			}
			pair, err := tp.long.EncodePair(text, text)
			if err != nil {
				t.Fatalf("%s: EncodePair(%+q): %v", name, text, err)
			}
			single := el.NumTokens - numAdded(tp.long.g.post, false)
			if want := 2*single + numAdded(tp.long.g.post, true); pair.NumTokens != want || len(pair.IDs) != min(want, 512) {
				t.Fatalf("%s: EncodePair(%+q): NumTokens %d, %d ids; want %d", name, text, pair.NumTokens, len(pair.IDs), want)
			}
			if slices.Contains(pair.TypeIDs, -1) {
				t.Fatalf("%s: EncodePair(%+q): negative type id", name, text)
			}
		}
	})
}

// FuzzBPE fuzzes the byte-level BPE (RoBERTa style) and the BPE with
// continuing_subword_prefix and end_of_word_suffix.
func FuzzBPE(f *testing.F) { fuzzFixture(f, "roberta-bpe.json", "wordpiece-bpe-suffix.json") }

// FuzzUnigram fuzzes the SentencePiece Unigram fixtures (Precompiled
// normalizer, Metaspace, unk and byte fallback).
func FuzzUnigram(f *testing.F) {
	fuzzFixture(f, "xlmr-unigram.json", "llama-unigram-bytefallback.json")
}

// FuzzWordPieceGeneral fuzzes all-mpnet-base-v2's WordPiece through the
// general pipeline (RobertaProcessing, <mask> with lstrip, a normalized
// added token).
func FuzzWordPieceGeneral(f *testing.F) { fuzzFixture(f, "mpnet.json") }
