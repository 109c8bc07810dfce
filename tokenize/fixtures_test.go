package tokenize

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// parityFixtures are the tokenizer.json files of testdata, made by
// scripts/make_tokenize_fixtures.py: trained here with tokenizers and
// sentencepiece, and all-mpnet-base-v2's real one.
var parityFixtures = []struct {
	name, file string
}{
	{"bpe-roberta", "roberta-bpe.json"},
	{"bpe-suffix-bert", "wordpiece-bpe-suffix.json"},
	{"unigram-xlmr-precompiled", "xlmr-unigram.json"},
	{"unigram-bytefallback", "llama-unigram-bytefallback.json"},
	{"wordpiece-mpnet", "mpnet.json"},
}

// TestParityFixtures compares every fixture with tokenizers on the whole
// corpus (single texts) and on sentence pairs drawn from it, at max_len 128
// and 512, and compares offsets, tokens and sequence ids at 512.
func TestParityFixtures(t *testing.T) {
	python := testutil.VenvPython(t)
	full := buildCorpus(t, testutil.DataDir())
	corpus := append(full, pairCorpus(full, 3)...)
	t.Logf("corpus: %d single texts, %d pairs", len(full), len(corpus)-len(full))
	for _, f := range parityFixtures {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join("testdata", f.file)
			hdr, recs := reference(t, python, path, corpus, true)
			checkParity(t, path, corpus, hdr, recs)
		})
	}
}

// TestMultilingualCorpus checks the corpus holds the multilingual part the
// fixtures are meant to meet.
func TestMultilingualCorpus(t *testing.T) {
	n := 0
	for _, c := range multilingualCorpus(t, []string{"a real sentence"}) {
		if strings.HasPrefix(c.kind, "multilingual") {
			n++
		}
	}
	if n < 2000 {
		t.Fatalf("%d multilingual texts; want at least 2000", n)
	}
}
