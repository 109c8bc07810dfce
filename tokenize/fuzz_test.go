package tokenize

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// fuzzMaxLens are the truncation lengths FuzzEncode checks: one that truncates most
// texts and BERT's longest.
var fuzzMaxLens = [2]int{8, 512}

// encodeSeeds are the seed texts of FuzzEncode: plain sentences, accents, CJK, emoji,
// control and zero-width characters, combining marks, added tokens, a word past
// max_input_chars_per_word, and invalid UTF-8 (a stray continuation byte, a truncated
// sequence, an encoded surrogate, an overlong encoding, a code point past U+10FFFF).
var encodeSeeds = []string{
	"Hello world",
	"",
	"Café naïve résumé",
	"how do I top up my card? [SEP] it says declined [CLS]",
	"x[[SEP]]", "[sep] [UNK] [PAD][MASK]",
	"日本語のテキスト 中文 한국어",
	"🥰 😀 👩‍👩‍👧",
	"a\u200bb\u200d\ufeffc \u202ex\u202c \x01\x7f\u00ad",
	"e\u0301\u0301\u0301 İstanbul ǅ ﬃ",
	"\t\n\r\u00a0\u3000\u1680 ",
	strings.Repeat("a", 101) + " " + strings.Repeat("é", 100),
	strings.Repeat("the quick brown fox ", 40),
	"abc\xffdef", "\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "ok\x80",
}

// FuzzEncode: any text gives ErrInvalidUTF8 (naming the first bad byte) exactly when
// it is not valid UTF-8, and otherwise an encoding of at most MaxLen tokens from the
// vocabulary, [CLS] first and [SEP] last, with masks and type ids of the same length;
// the untruncated length does not depend on MaxLen and the shorter encoding is a
// prefix of the longer; encoding is deterministic (again, into a used buffer, and in
// EncodeAll) and surrounding spaces change nothing.
func FuzzEncode(f *testing.F) {
	var toks [len(fuzzMaxLens)]*Tokenizer
	for i, n := range fuzzMaxLens {
		toks[i] = defaultTokenizer(f, Options{MaxLen: n})
	}
	p := toks[0].p
	cls, sep := int64(p.vocab["[CLS]"]), int64(p.vocab["[SEP]"])
	var vocabSize int64
	for _, id := range p.vocab {
		vocabSize = max(vocabSize, int64(id)+1)
	}
	var used Encoding // reused across calls, so stale contents would show
	f.Fuzz(func(t *testing.T, text string) {
		var encs [len(fuzzMaxLens)]Encoding
		for i, tok := range toks {
			e, err := tok.Encode(text)
			if !utf8.ValidString(text) {
				at := invalidPrefix(text)
				if !errors.Is(err, ErrInvalidUTF8) || !strings.HasSuffix(err.Error(), fmt.Sprintf("at byte %d", at)) {
					t.Fatalf("Encode(%+q) error %v; want ErrInvalidUTF8 at byte %d", text, err, at)
				}
				if len(e.IDs)+len(e.Mask)+len(e.TypeIDs) != 0 || e.NumTokens != 0 || e.Truncated {
					t.Fatalf("Encode(%+q) failed but returned %+v", text, e)
				}
				if err := tok.EncodeInto(&used, text); !errors.Is(err, ErrInvalidUTF8) || len(used.IDs) != 0 {
					t.Fatalf("EncodeInto(%+q) = %v with %d ids; want ErrInvalidUTF8 and none", text, err, len(used.IDs))
				}
				continue
			}
			if err != nil {
				t.Fatalf("Encode(%+q): %v", text, err)
			}
			n := len(e.IDs)
			if n < 2 || n > tok.MaxLen() || len(e.Mask) != n || len(e.TypeIDs) != n {
				t.Fatalf("Encode(%+q) at MaxLen %d: %d ids, %d mask, %d type ids", text, tok.MaxLen(), n, len(e.Mask), len(e.TypeIDs))
			}
			if e.IDs[0] != cls || e.IDs[n-1] != sep {
				t.Fatalf("Encode(%+q) = %v; want [CLS] (%d) first and [SEP] (%d) last", text, e.IDs, cls, sep)
			}
			for j, id := range e.IDs {
				if id < 0 || id >= vocabSize || e.Mask[j] != 1 || e.TypeIDs[j] != 0 {
					t.Fatalf("Encode(%+q) position %d: id %d (vocab %d), mask %d, type id %d", text, j, id, vocabSize, e.Mask[j], e.TypeIDs[j])
				}
			}
			if e.NumTokens < n || e.Truncated != (e.NumTokens > n) || e.Truncated != (n == tok.MaxLen() && e.NumTokens > n) {
				t.Fatalf("Encode(%+q) at MaxLen %d: %d ids, NumTokens %d, Truncated %v", text, tok.MaxLen(), n, e.NumTokens, e.Truncated)
			}
			again, err := tok.Encode(text)
			if err != nil || !equalEncodings(e, again) {
				t.Fatalf("Encode(%+q) is not deterministic: %v then %v (%v)", text, e.IDs, again.IDs, err)
			}
			if err := tok.EncodeInto(&used, text); err != nil || !equalEncodings(e, used) {
				t.Fatalf("EncodeInto(%+q) into a used buffer = %v; want %v (%v)", text, used.IDs, e.IDs, err)
			}
			all, err := tok.EncodeAll([]string{text, "", text}, 2)
			if err != nil || !equalEncodings(e, all[0]) || !equalEncodings(e, all[2]) {
				t.Fatalf("EncodeAll(%+q) differs from Encode (%v)", text, err)
			}
			spaced, err := tok.Encode("  " + text + " ")
			if err != nil || !slices.Equal(e.IDs, spaced.IDs) || e.NumTokens != spaced.NumTokens {
				t.Fatalf("surrounding spaces change Encode(%+q): %v; want %v (%v)", text, spaced.IDs, e.IDs, err)
			}
			encs[i] = e
		}
		if !utf8.ValidString(text) {
			return
		}
		short, long := encs[0], encs[1]
		if short.NumTokens != long.NumTokens {
			t.Fatalf("Encode(%+q): NumTokens %d at MaxLen %d, %d at MaxLen %d", text, short.NumTokens, fuzzMaxLens[0], long.NumTokens, fuzzMaxLens[1])
		}
		body := short.IDs[1 : len(short.IDs)-1]
		if !slices.Equal(body, long.IDs[1:1+len(body)]) {
			t.Fatalf("Encode(%+q): %v at MaxLen %d is not a prefix of %v", text, short.IDs, fuzzMaxLens[0], long.IDs)
		}
	})
}

// invalidPrefix returns the offset of the first invalid sequence of s, computed
// independently of invalidAt: the length of the longest valid prefix (any longer
// prefix holds that sequence, or the start of it, which is invalid too).
func invalidPrefix(s string) int {
	for j := len(s); j > 0; j-- {
		if utf8.ValidString(s[:j]) {
			return j
		}
	}
	return 0
}

func equalEncodings(a, b Encoding) bool {
	return slices.Equal(a.IDs, b.IDs) && slices.Equal(a.Mask, b.Mask) && slices.Equal(a.TypeIDs, b.TypeIDs) &&
		a.NumTokens == b.NumTokens && a.Truncated == b.Truncated
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzEncode current: -update rewrites it from
// encodeSeeds.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzEncode")
	for i, s := range encodeSeeds {
		want := fmt.Sprintf("go test fuzz v1\nstring(%s)\n", strconv.Quote(s))
		path := filepath.Join(dir, fmt.Sprintf("seed%02d", i))
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s is missing or stale (go test -run TestFuzzSeeds -update rewrites it)", path)
		}
	}
}
