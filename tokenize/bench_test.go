package tokenize

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
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

// benchTexts are the texts BenchmarkFixtures and scripts/bench_tokenize.py
// encode: SST-2 dev (872 English reviews) and testdata/multilingual.txt (57
// lines in many scripts).
func benchTexts(b *testing.B) map[string][]string {
	ml, err := os.ReadFile(filepath.Join("testdata", "multilingual.txt"))
	if err != nil {
		b.Fatal(err)
	}
	return map[string][]string{
		"sst2":         readTexts(b, filepath.Join(testutil.DataDir(), "sst2", "dev.csv")),
		"multilingual": strings.Split(strings.TrimSpace(string(ml)), "\n"),
	}
}

// BenchmarkFixtures measures every tokenizer.json fixture and the default
// model's tokenizer at max_len 512: one goroutine calling EncodeInto with a
// reused dst ("seq"), and EncodeAll on all cores ("all").
func BenchmarkFixtures(b *testing.B) {
	sets := benchTexts(b)
	files := map[string]string{"minilm-wordpiece": modelTokenizer(b, "all-minilm-l6-v2")}
	for _, f := range parityFixtures {
		files[f.name] = filepath.Join("testdata", f.file)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		tok, err := Load(files[name], Options{MaxLen: 512})
		if err != nil {
			b.Fatal(err)
		}
		for _, set := range []string{"sst2", "multilingual"} {
			texts := sets[set]
			b.Run(name+"/"+set+"/seq", func(b *testing.B) {
				var dst Encoding
				for i := range b.N {
					if err := tok.EncodeInto(&dst, texts[i%len(texts)]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "texts/s")
			})
			b.Run(name+"/"+set+"/all", func(b *testing.B) {
				for range b.N {
					if _, err := tok.EncodeAll(texts, 0); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "texts/s")
			})
		}
	}
}
