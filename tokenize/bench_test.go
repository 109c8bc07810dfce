package tokenize

import (
	"github.com/headstart-ml/headstart/internal/testutil"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkEncode measures one goroutine encoding SST-2 dev sentences (short
// English reviews), Banking77 test queries, and the parity corpus's Unicode
// variants, with a reused dst; texts/s is per core.
func BenchmarkEncode(b *testing.B) {
	tok := defaultTokenizer(b, Options{MaxLen: 512})
	var variants []string
	for _, c := range buildCorpus(b, testutil.DataDir()) {
		if strings.HasPrefix(c.kind, "variant") {
			variants = append(variants, c.text)
		}
	}
	for _, set := range []struct {
		name  string
		texts []string
	}{
		{"sst2", readTexts(b, filepath.Join(testutil.DataDir(), "sst2", "dev.csv"))},
		{"banking77", readTexts(b, filepath.Join(testutil.DataDir(), "banking77", "test.csv"))},
		{"unicode", variants},
	} {
		b.Run(set.name, func(b *testing.B) {
			var dst Encoding
			tokens := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := tok.EncodeInto(&dst, set.texts[i%len(set.texts)]); err != nil {
					b.Fatal(err)
				}
				tokens += len(dst.IDs)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "texts/s")
			b.ReportMetric(float64(tokens)/float64(b.N), "tokens/text")
		})
	}
}

// BenchmarkEncodeAll measures EncodeAll over SST-2 dev on all cores, with the
// allocation of the returned encodings.
func BenchmarkEncodeAll(b *testing.B) {
	tok := defaultTokenizer(b, Options{MaxLen: 512})
	texts := readTexts(b, filepath.Join(testutil.DataDir(), "sst2", "dev.csv"))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := tok.EncodeAll(texts, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "texts/s")
}
