package tokenize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// defaultTokenizer loads the default model's tokenizer.json.
func defaultTokenizer(t testing.TB, opts Options) *Tokenizer {
	t.Helper()
	tok, err := Load(modelTokenizer(t, "all-minilm-l6-v2"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// writeVariant writes the default tokenizer.json with top-level fields
// replaced by raw JSON and returns its path.
func writeVariant(t *testing.T, fields map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(modelTokenizer(t, "all-minilm-l6-v2"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		doc[k] = json.RawMessage(v)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEncode(t *testing.T) {
	tok := defaultTokenizer(t, Options{})
	for _, tc := range []struct {
		text string
		want []int64
	}{
		{"Hello world", []int64{101, 7592, 2088, 102}},
		{"Café naïve résumé", []int64{101, 7668, 15743, 13746, 102}},
		{"", []int64{101, 102}},
		{" \t\n\u00a0\u3000\u200b", []int64{101, 102}},
		{"hello\u00a0world", []int64{101, 7592, 2088, 102}},
		{"hello [SEP] world [CLS] again [SEP]", []int64{101, 7592, 102, 2088, 101, 2153, 102, 102}},
		{"x[[SEP]]", []int64{101, 1060, 1031, 102, 1033, 102}},
		{"[sep]", []int64{101, 1031, 19802, 1033, 102}},
		{"a\u200bb", []int64{101, 11113, 102}},
		{"🥰 😀", []int64{101, 100, 100, 102}},
		{"İstanbul", []int64{101, 9960, 102}},
	} {
		e, err := tok.Encode(tc.text)
		if err != nil {
			t.Errorf("Encode(%+q): %v", tc.text, err)
			continue
		}
		if !slices.Equal(e.IDs, tc.want) {
			t.Errorf("Encode(%+q).IDs = %v; want %v", tc.text, e.IDs, tc.want)
		}
		if len(e.Mask) != len(e.IDs) || len(e.TypeIDs) != len(e.IDs) {
			t.Errorf("Encode(%+q): %d ids, %d mask, %d type ids", tc.text, len(e.IDs), len(e.Mask), len(e.TypeIDs))
		}
		for i := range e.Mask {
			if e.Mask[i] != 1 || e.TypeIDs[i] != 0 {
				t.Errorf("Encode(%+q): mask %v type ids %v; want all 1 and all 0", tc.text, e.Mask, e.TypeIDs)
				break
			}
		}
		if e.NumTokens != len(tc.want) || e.Truncated {
			t.Errorf("Encode(%+q): NumTokens %d Truncated %v; want %d false", tc.text, e.NumTokens, e.Truncated, len(tc.want))
		}
	}
}

func TestTruncation(t *testing.T) {
	const text = "the quick brown fox jumps over the lazy dog"
	full, err := defaultTokenizer(t, Options{}).Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	n := len(full.IDs) // 11: [CLS] 9 words [SEP]
	for _, maxLen := range []int{2, 3, 5, n - 1, n, n + 1} {
		e, err := defaultTokenizer(t, Options{MaxLen: maxLen}).Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		want := full.IDs
		if maxLen < n {
			want = append(slices.Clone(full.IDs[:maxLen-1]), 102)
		}
		if !slices.Equal(e.IDs, want) {
			t.Errorf("MaxLen %d: %v; want %v", maxLen, e.IDs, want)
		}
		if e.NumTokens != n || e.Truncated != (maxLen < n) || len(e.Mask) != len(e.IDs) || len(e.TypeIDs) != len(e.IDs) {
			t.Errorf("MaxLen %d: NumTokens %d Truncated %v, %d mask, %d type ids", maxLen, e.NumTokens, e.Truncated, len(e.Mask), len(e.TypeIDs))
		}
	}
}

func TestLoadSettings(t *testing.T) {
	path := modelTokenizer(t, "all-minilm-l6-v2")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	tok := defaultTokenizer(t, Options{})
	if got, want := tok.SHA256(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("SHA256 %s; want %s", got, want)
	}
	if tok.MaxLen() != 128 || tok.PadID() != 0 || tok.Path() != path {
		t.Errorf("MaxLen %d PadID %d Path %s; want 128 (the file's truncation), 0, %s", tok.MaxLen(), tok.PadID(), tok.Path(), path)
	}
	if tok := defaultTokenizer(t, Options{MaxLen: 300}); tok.MaxLen() != 300 {
		t.Errorf("MaxLen %d; want 300", tok.MaxLen())
	}
	// No truncation or padding in the file (as e5-small-v2's): 512 and [PAD].
	tok, err = Load(writeVariant(t, map[string]string{"truncation": "null", "padding": "null"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.MaxLen() != DefaultMaxLen || tok.PadID() != 0 {
		t.Errorf("MaxLen %d PadID %d; want %d, 0", tok.MaxLen(), tok.PadID(), DefaultMaxLen)
	}
	// The file's fixed padding is not applied.
	if e, _ := tok.Encode("hi"); len(e.IDs) != 3 {
		t.Errorf("Encode(hi) = %v; want 3 ids, unpadded", e.IDs)
	}
}

func TestLoadErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.json")
	if _, err := Load(missing, Options{}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v; want an error naming %s", err, missing)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, Options{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), bad) {
		t.Errorf("Load(truncated json) = %v; want ErrFormat naming %s", err, bad)
	}
	for _, tc := range []struct {
		name   string
		fields map[string]string
		opts   Options
		want   error
	}{
		{"bpe merge of unknown tokens", map[string]string{"model": `{"type":"BPE","vocab":{"a":0},"merges":["a b"]}`}, Options{}, ErrFormat},
		{"no unk", map[string]string{"model": `{"type":"WordPiece","unk_token":"<unk>","vocab":{"a":0}}`}, Options{}, ErrFormat},
		{"sequence normalizer", map[string]string{"normalizer": `{"type":"Sequence","normalizers":[{"type":"StripAccents"}]}`}, Options{}, ErrUnsupported},
		{"missing lowercase", map[string]string{"normalizer": `{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null}`}, Options{}, ErrFormat},
		{"char delimiter", map[string]string{"pre_tokenizer": `{"type":"CharDelimiterSplit","delimiter":"x"}`}, Options{}, ErrUnsupported},
		{"roberta without tokens", map[string]string{"post_processor": `{"type":"RobertaProcessing"}`}, Options{}, ErrFormat},
		{"negative added id", map[string]string{"added_tokens": `[{"id":-3,"content":"[MASK]","lstrip":true}]`}, Options{}, ErrFormat},
		{"negative MaxLen", nil, Options{MaxLen: -1}, ErrOption},
		{"MaxLen below specials", nil, Options{MaxLen: 1}, ErrOption},
	} {
		path := writeVariant(t, tc.fields)
		if _, err := Load(path, tc.opts); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Load = %v; want %v naming %s", tc.name, err, tc.want, path)
		}
	}
}

func TestInvalidUTF8(t *testing.T) {
	tok := defaultTokenizer(t, Options{})
	e, err := tok.Encode("abc\xffdef")
	if !errors.Is(err, ErrInvalidUTF8) || !strings.Contains(err.Error(), "byte 3") || len(e.IDs) != 0 {
		t.Errorf("Encode(invalid) = %v, %v; want ErrInvalidUTF8 at byte 3 and no ids", e.IDs, err)
	}
	texts := make([]string, 300)
	for i := range texts {
		texts[i] = "fine"
	}
	texts[70], texts[250] = "\xc3", "\xed\xa0\x80" // truncated sequence, surrogate
	if _, err := tok.EncodeAll(texts, 3); !errors.Is(err, ErrInvalidUTF8) || !strings.HasPrefix(err.Error(), "text 70:") {
		t.Errorf("EncodeAll = %v; want ErrInvalidUTF8 for text 70", err)
	}
}

func TestEncodeAll(t *testing.T) {
	tok := defaultTokenizer(t, Options{MaxLen: 16})
	var texts []string
	for i := range 500 {
		texts = append(texts, strings.Repeat("Café naïve [SEP] 中文 ", i%7)+"ok")
	}
	for _, workers := range []int{0, 1, 4} {
		got, err := tok.EncodeAll(texts, workers)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			want, err := tok.Encode(text)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[i].IDs, want.IDs) || !slices.Equal(got[i].Mask, want.Mask) ||
				!slices.Equal(got[i].TypeIDs, want.TypeIDs) || got[i].NumTokens != want.NumTokens || got[i].Truncated != want.Truncated {
				t.Fatalf("workers %d, text %d: %+v; want %+v", workers, i, got[i], want)
			}
		}
	}
	if encs, err := tok.EncodeAll(nil, 0); err != nil || len(encs) != 0 {
		t.Errorf("EncodeAll(nil) = %v, %v", encs, err)
	}
}

func TestEncodeIntoAllocs(t *testing.T) {
	tok := defaultTokenizer(t, Options{})
	var dst Encoding
	for _, text := range []string{
		"what is the exchange rate for my card top-up?",
		"Tiếng Việt café 中文 emoji 👍🏽 [SEP] tail",
	} {
		if err := tok.EncodeInto(&dst, text); err != nil { // grow dst and the pooled scratch
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _ = tok.EncodeInto(&dst, text) }); n > 0 {
			t.Errorf("EncodeInto(%q) with a warm dst: %v allocations; want 0", text, n)
		}
	}
}

// TestNFDKeep checks the one code point whose NFD differs between Go and
// tokenizers: U+11938 stays whole, as tokenizers leaves it (found by
// scripts/gen_tokenize_tables.py's probe; no BERT vocab holds it, so the
// parity corpus cannot see it).
func TestNFDKeep(t *testing.T) {
	p := &pipeline{norm: normalizerFlags{strip: true}}
	var s scratch
	for _, tc := range []struct{ in, want string }{
		{"\U00011938", "\U00011938"},
		{"e\u0301\U00011938e\u0301", "e\U00011938e"},
		{"\U00011935\U00011930", "\U00011935\U00011930"},
		{"ｶﾞ", "ｶﾞ"}, // half-width voiced mark is not a combining mark
		{"が", "か"},
	} {
		if got := string(p.normalize(&s, tc.in)); got != tc.want {
			t.Errorf("normalize(%+q) = %+q; want %+q", tc.in, got, tc.want)
		}
	}
}

// TestTablesVersion checks that tables.go was generated from the tokenizers
// release the reference venv pins.
func TestTablesVersion(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "scripts", "requirements-test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if pin := "tokenizers==" + tablesVersion; !strings.Contains(string(b), pin+"\n") {
		t.Errorf("scripts/requirements-test.txt does not pin %s; regenerate tables.go with scripts/gen_tokenize_tables.py", pin)
	}
}

// TestGeneralOnDemand: a BERT tokenizer.json loads without its general pipeline (the
// fast path encodes single texts); pairs and offsets parse it on first use, and give
// the ids Encode gives, from goroutines racing for it too.
func TestGeneralOnDemand(t *testing.T) {
	tok, err := Load(modelTokenizer(t, "all-minilm-l6-v2"), Options{MaxLen: 128})
	if err != nil {
		t.Fatal(err)
	}
	if tok.p == nil || tok.g != nil {
		t.Fatalf("after Load: fast path %v, general pipeline %v; want the fast path only", tok.p != nil, tok.g != nil)
	}
	if tok.VocabSize() != 30522 {
		t.Errorf("VocabSize = %d, want 30522", tok.VocabSize())
	}
	text := "The film's ending, frankly, was un-be-lievable!"
	want, err := tok.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			e, d, err := tok.EncodeDetailed(text)
			if err == nil && (!slices.Equal(e.IDs, want.IDs) || len(d.Offsets) != len(e.IDs)) {
				err = fmt.Errorf("EncodeDetailed ids %v, want Encode's %v", e.IDs, want.IDs)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if tok.g == nil || tok.data != nil {
		t.Error("the general pipeline was not kept after its first use")
	}
}
