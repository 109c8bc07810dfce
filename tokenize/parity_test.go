package tokenize

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/internal/testutil"
)

// refVersion is the tokenizers release the reference must come from: the one
// tables.go was generated from and scripts/requirements-test.txt pins.
const refVersion = tablesVersion

// parityMaxLens are the truncation lengths the parity test checks.
var parityMaxLens = []int{128, 512}

func modelTokenizer(t testing.TB, model string) string {
	p := filepath.Join(cache.ModelDir(model), "tokenizer.json")
	testutil.Artifact(t, p, "model "+model)
	return p
}

type refHeader struct {
	Format          string `json:"format"`
	Tokenizers      string `json:"tokenizers"`
	TokenizerSHA256 string `json:"tokenizer_sha256"`
	MaxLengths      []int  `json:"max_lengths"`
	Count           int    `json:"count"`
}

type refRecord struct {
	N    int                `json:"n"`
	IDs  map[string][]int64 `json:"ids"`
	Mask map[string][]int64 `json:"mask"`
	Type map[string][]int64 `json:"type"`
	Off  [][2]int           `json:"off"` // with offsets, at the largest max length
	Seq  []int              `json:"seq"`
	Tok  []string           `json:"tok"`
}

// reference runs scripts/ref_tokenize.py on the corpus and reads its output.
func reference(t *testing.T, python, tokPath string, corpus []corpusText, offsets ...bool) (refHeader, []refRecord) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "corpus.jsonl"), filepath.Join(dir, "ref.jsonl")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, c := range corpus {
		rec := map[string]string{"text": c.text}
		if c.pair != nil {
			rec["pair"] = *c.pair
		}
		if err := enc.Encode(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	args := []string{filepath.Join("..", "scripts", "ref_tokenize.py"), "--tokenizer", tokPath, "--input", in, "--out", out}
	for _, m := range parityMaxLens {
		args = append(args, "--max-len", strconv.Itoa(m))
	}
	if len(offsets) > 0 && offsets[0] {
		args = append(args, "--offsets")
	}
	start := time.Now()
	cmd := exec.Command(python, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", python, strings.Join(args, " "), err, b)
	}
	t.Logf("reference for %d texts in %v", len(corpus), time.Since(start).Round(time.Millisecond))

	rf, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(rf, 1<<20))
	var hdr refHeader
	if err := dec.Decode(&hdr); err != nil {
		t.Fatalf("%s: header: %v", out, err)
	}
	if hdr.Format != "headstart-ref-tokenize/1" || hdr.Count != len(corpus) {
		t.Fatalf("%s: header %+v; want format headstart-ref-tokenize/1 and %d texts", out, hdr, len(corpus))
	}
	if hdr.Tokenizers != refVersion {
		t.Fatalf("reference made with tokenizers %s; want %s (scripts/requirements-test.txt, tables.go)", hdr.Tokenizers, refVersion)
	}
	recs := make([]refRecord, len(corpus))
	for i := range recs {
		if err := dec.Decode(&recs[i]); err != nil {
			t.Fatalf("%s: record %d: %v", out, i, err)
		}
	}
	return hdr, recs
}

// checkParity encodes the corpus with the Go tokenizer at each max length and
// requires ids, masks, type ids and untruncated lengths equal to the reference
// (texts with a pair through EncodePair, the others through EncodeAll). When
// the reference has offsets, it also requires EncodeDetailed's ids, tokens,
// offsets and sequence ids at the largest max length to equal them.
func checkParity(t *testing.T, tokPath string, corpus []corpusText, hdr refHeader, recs []refRecord) {
	t.Helper()
	texts := make([]string, len(corpus))
	for i, c := range corpus {
		texts[i] = c.text
	}
	for _, maxLen := range parityMaxLens {
		tok, err := Load(tokPath, Options{MaxLen: maxLen})
		if err != nil {
			t.Fatal(err)
		}
		if tok.SHA256() != hdr.TokenizerSHA256 {
			t.Fatalf("sha256 %s; the reference read %s", tok.SHA256(), hdr.TokenizerSHA256)
		}
		encs, err := tok.EncodeAll(texts, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range corpus {
			if c.pair != nil {
				if encs[i], err = tok.EncodePair(c.text, *c.pair); err != nil {
					t.Fatalf("text %d: %v", i, err)
				}
			}
		}
		if maxLen == slices.Max(parityMaxLens) && len(recs) > 0 && recs[0].Off != nil {
			checkOffsets(t, tok, corpus, recs)
		}
		key := strconv.Itoa(maxLen)
		var bad, truncated int
		for i, e := range encs {
			r := recs[i]
			if e.Truncated {
				truncated++
			}
			field, got, want := "", []int64(nil), []int64(nil)
			switch {
			case !slices.Equal(e.IDs, r.IDs[key]):
				field, got, want = "ids", e.IDs, r.IDs[key]
			case !slices.Equal(e.Mask, r.Mask[key]):
				field, got, want = "attention mask", e.Mask, r.Mask[key]
			case !slices.Equal(e.TypeIDs, r.Type[key]):
				field, got, want = "type ids", e.TypeIDs, r.Type[key]
			case e.NumTokens != r.N || e.Truncated != (r.N > maxLen):
				field = fmt.Sprintf("NumTokens %d Truncated %v; want %d", e.NumTokens, e.Truncated, r.N)
			default:
				continue
			}
			bad++
			if bad <= 5 {
				t.Errorf("max_len %d, text %d (%s) %s differ:\n  text %s\n%s", maxLen, i, corpus[i].kind, field, clip(corpus[i].text), idDiff(got, want))
			}
		}
		t.Logf("max_len %d: %d texts (%d truncated), %d mismatches", maxLen, len(encs), truncated, bad)
		if bad > 0 {
			t.Errorf("max_len %d: %d of %d texts differ from tokenizers %s", maxLen, bad, len(encs), hdr.Tokenizers)
		}
	}
}

// checkOffsets requires EncodeDetailed to give the reference's ids, offsets
// and sequence ids.
func checkOffsets(t *testing.T, tok *Tokenizer, corpus []corpusText, recs []refRecord) {
	t.Helper()
	key := strconv.Itoa(tok.MaxLen())
	bad := 0
	for i, c := range corpus {
		var pair []string
		if c.pair != nil {
			pair = []string{*c.pair}
		}
		e, d, err := tok.EncodeDetailed(c.text, pair...)
		if err != nil {
			t.Fatalf("text %d: %v", i, err)
		}
		r := recs[i]
		var what string
		switch {
		case !slices.Equal(e.IDs, r.IDs[key]):
			what = "ids:\n" + idDiff(e.IDs, r.IDs[key])
		case !slices.Equal(d.Offsets, r.Off):
			what = fmt.Sprintf("offsets:\n  go: %v\n  hf: %v\n  tokens %q", d.Offsets, r.Off, r.Tok)
		case !slices.Equal(d.Sequence, r.Seq):
			what = fmt.Sprintf("sequence ids:\n  go: %v\n  hf: %v", d.Sequence, r.Seq)
		case !slices.Equal(d.Tokens, r.Tok):
			what = fmt.Sprintf("tokens:\n  go: %q\n  hf: %q", d.Tokens, r.Tok)
		default:
			continue
		}
		bad++
		if bad <= 5 {
			t.Errorf("EncodeDetailed, text %d (%s) %s\n  text %s", i, c.kind, what, clip(c.text))
		}
	}
	t.Logf("EncodeDetailed at max_len %s: %d texts, %d mismatches (ids, offsets, sequence ids, tokens)", key, len(corpus), bad)
	if bad > 0 {
		t.Errorf("EncodeDetailed: %d of %d texts differ from tokenizers", bad, len(corpus))
	}
}

// clip quotes s, shortened to about 300 bytes.
func clip(s string) string {
	if len(s) > 300 {
		r := []rune(s)
		if len(r) > 150 {
			return fmt.Sprintf("%+q... (%d runes)", string(r[:150]), len(r))
		}
	}
	return fmt.Sprintf("%+q", s)
}

// idDiff shows both id lists around their first difference.
func idDiff(got, want []int64) string {
	if got == nil && want == nil {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-8)
	win := func(s []int64) string {
		hi := min(len(s), i+24)
		if lo > hi {
			return "[]"
		}
		pre := ""
		if lo > 0 {
			pre = "... "
		}
		return fmt.Sprintf("%s%v (len %d)", pre, s[lo:hi], len(s))
	}
	return fmt.Sprintf("  first difference at %d\n  go: %s\n  hf: %s", i, win(got), win(want))
}

// TestParity compares the default model's tokenizer with tokenizers on the
// whole corpus and pairs drawn from it at max_len 128 and 512: the BERT fast
// path for single texts, the general pipeline for pairs and, with offsets,
// for every text.
func TestParity(t *testing.T) {
	python := testutil.VenvPython(t)
	tokPath := modelTokenizer(t, "all-minilm-l6-v2")
	corpus := buildCorpus(t, testutil.DataDir())
	corpus = append(corpus, pairCorpus(corpus, 3)...)
	if len(corpus) < 5000 {
		t.Fatalf("corpus has %d texts; want at least 5000", len(corpus))
	}
	kinds := map[string]int{}
	for _, c := range corpus {
		k, _, _ := strings.Cut(c.kind, "-")
		kinds[k]++
	}
	t.Logf("corpus: %d texts by kind %v", len(corpus), kinds)
	hdr, recs := reference(t, python, tokPath, corpus, true)
	checkParity(t, tokPath, corpus, hdr, recs)
}

// TestParityVariants checks other BertNormalizer and post-processor settings
// (cased, accents kept, everything off), written over the default model's
// tokenizer.json, on every other text of the corpus.
func TestParityVariants(t *testing.T) {
	if testing.Short() {
		t.Skip("extended parity check (-short)")
	}
	python := testutil.VenvPython(t)
	base := modelTokenizer(t, "all-minilm-l6-v2")
	full := buildCorpus(t, testutil.DataDir())
	var corpus []corpusText
	for i, c := range full {
		if i%2 == 0 || strings.HasPrefix(c.kind, "sweep") {
			corpus = append(corpus, c)
		}
	}
	raw, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		name       string
		normalizer string
		post       string
	}{
		{"cased", `{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":false}`,
			`{"type":"BertProcessing","sep":["[SEP]",102],"cls":["[CLS]",101]}`},
		{"lowercase-keep-accents", `{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":false,"lowercase":true}`, ""},
		{"strip-accents-cased", `{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":true,"lowercase":false}`, ""},
		{"all-off", `{"type":"BertNormalizer","clean_text":false,"handle_chinese_chars":false,"strip_accents":false,"lowercase":false}`, ""},
	} {
		t.Run(v.name, func(t *testing.T) {
			var doc map[string]json.RawMessage
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			doc["normalizer"] = json.RawMessage(v.normalizer)
			if v.post != "" {
				doc["post_processor"] = json.RawMessage(v.post)
			}
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "tokenizer.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			hdr, recs := reference(t, python, path, corpus)
			checkParity(t, path, corpus, hdr, recs)
		})
	}
}

// TestParityE5 checks e5-small-v2-q's tokenizer.json (also uncased BERT) on a
// sample, when that optional model has been pulled.
func TestParityE5(t *testing.T) {
	python := testutil.VenvPython(t)
	path := filepath.Join(cache.ModelDir("e5-small-v2-q"), "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("optional model not pulled (scripts/setup.sh model e5-small-v2-q): %v", err)
	}
	full := buildCorpus(t, testutil.DataDir())
	var corpus []corpusText
	for i, c := range full {
		if i%4 == 0 {
			corpus = append(corpus, c)
		}
	}
	hdr, recs := reference(t, python, path, corpus)
	checkParity(t, path, corpus, hdr, recs)
}

// TestTablesUpToDate regenerates tables.go from the reference venv's
// tokenizers and requires the committed file to be identical.
func TestTablesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("probes every code point with tokenizers, about 5 s (-short)")
	}
	python := testutil.VenvPython(t)
	out := filepath.Join(t.TempDir(), "tables.go")
	cmd := exec.Command(python, filepath.Join("..", "scripts", "gen_tokenize_tables.py"), "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen_tokenize_tables.py: %v\n%s", err, b)
	}
	sameFile(t, out, "tables.go", "scripts/gen_tokenize_tables.py")
}
