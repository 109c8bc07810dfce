package tokenize

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/headstart-ml/headstart/internal/testutil"
)

// TestNormalFormsAligned checks that the aligned NFC, NFD, NFKC and NFKD give
// the same text as golang.org/x/text on the corpus (texts holding the
// nfdKeep code points aside), with one span per code point, each inside the
// text. Texts with more than 30 non-starters in a row are left out: there Go
// inserts U+034F (the stream-safe format) and orders the marks on either side
// of it separately; the Rust library does not, nor does nfNorm.
func TestNormalFormsAligned(t *testing.T) {
	corpus := buildCorpus(t, testutil.DataDir())
	for _, f := range []struct {
		name string
		form norm.Form
	}{{"NFC", norm.NFC}, {"NFD", norm.NFD}, {"NFKC", norm.NFKC}, {"NFKD", norm.NFKD}} {
		bad := 0
		for _, c := range corpus {
			if strings.ContainsFunc(c.text+f.form.String(c.text), func(r rune) bool {
				_, k := slices.BinarySearch(nfkKeep, r)
				return r == 0x11938 || k // where the Rust tables are meant to differ
			}) {
				continue
			}
			n := nfNorm{f.form}.normalize(newNormStr(c.text, 0))
			want := f.form.String(c.text)
			if strings.Count(want, "\u034f") > strings.Count(c.text, "\u034f") {
				continue
			}
			if got := string(n.r); got != want || len(n.o) != len(n.r) {
				bad++
				if bad < 4 {
					t.Errorf("%s(%+q) = %+q; want %+q", f.name, c.text, got, want)
				}
				continue
			}
			for _, sp := range n.o {
				if sp.start < 0 || sp.end > int32(len(c.text)) || sp.start > sp.end {
					t.Fatalf("%s(%+q): span %v outside the text", f.name, clip(c.text), sp)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d texts differ", f.name, bad)
		}
	}
}

// TestNormalFormsSingle normalises every code point alone with NFC, NFD, NFKC
// and NFKD and requires tokenizers' result (asked through
// scripts/probe_normal_forms.py), which keeps nfdKeep and nfkKeep honest.
func TestNormalFormsSingle(t *testing.T) {
	if testing.Short() {
		t.Skip("probes every code point with tokenizers, about 15 s (-short)")
	}
	out, err := exec.Command(testutil.VenvPython(t), filepath.Join("..", "scripts", "probe_normal_forms.py")).Output()
	if err != nil {
		t.Fatalf("probe_normal_forms.py: %v", err)
	}
	hf := map[string]map[rune]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		p := strings.Fields(line)
		c, _ := strconv.Atoi(p[1])
		var b strings.Builder
		for _, x := range p[2:] {
			v, _ := strconv.Atoi(x)
			b.WriteRune(rune(v))
		}
		if hf[p[0]] == nil {
			hf[p[0]] = map[rune]string{}
		}
		hf[p[0]][rune(c)] = b.String()
	}
	if len(hf) != 4 {
		t.Fatalf("probe gave forms %v; want NFC, NFD, NFKC, NFKD", slices.Collect(maps.Keys(hf)))
	}
	for name, f := range map[string]norm.Form{"NFD": norm.NFD, "NFKD": norm.NFKD, "NFC": norm.NFC, "NFKC": norm.NFKC} {
		bad := 0
		for c := rune(0); c < 0x110000; c++ {
			if !utf8.ValidRune(c) {
				continue
			}
			want, ok := hf[name][c]
			if !ok {
				want = string(c)
			}
			if got := string(nfNorm{f}.normalize(newNormStr(string(c), 0)).r); got != want {
				if bad++; bad <= 5 {
					t.Errorf("%s(%U) = %+q; tokenizers gives %+q", name, c, got, want)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d code points differ", name, bad)
		}
	}
}

// TestClassesUpToDate regenerates classes.go from the reference venv's
// tokenizers and requires the committed file to be identical.
func TestClassesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("probes every code point with tokenizers, about 30 s (-short)")
	}
	out := filepath.Join(t.TempDir(), "classes.go")
	cmd := exec.Command(testutil.VenvPython(t), filepath.Join("..", "scripts", "gen_tokenize_classes.py"), "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen_tokenize_classes.py: %v\n%s", err, b)
	}
	if b, err := exec.Command("gofmt", "-l", out).CombinedOutput(); err != nil || len(b) != 0 {
		if err == nil {
			err = exec.Command("gofmt", "-w", out).Run()
		}
		if err != nil {
			t.Fatalf("gofmt: %v", err)
		}
	}
	sameFile(t, out, "classes.go", "scripts/gen_tokenize_classes.py (then gofmt)")
}

// sameFile requires the generated file got to be identical to the committed file want,
// which gen generates.
func sameFile(t *testing.T, got, want, gen string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s differs from what %s generates now; regenerate it", want, gen)
	}
}

// TestWordCache: on the RoBERTa BPE fixture, a text encoded again from the model's word
// cache gives the same ids, tokens and offsets as the first time (words' tokens looked
// up, their offsets mapped to the new place); EncodeAll on 4 goroutines over a cold and
// then a warm cache gives Encode's results; a word found in the cache allocates nothing.
func TestWordCache(t *testing.T) {
	path := filepath.Join("testdata", "roberta-bpe.json")
	texts := readTexts(t, filepath.Join(testutil.DataDir(), "sst2", "dev.csv"))[:300]
	texts = append(texts, "naïve café naïve", "the the  the\tthe", strings.Repeat("ab", 40)+" ab") // repeats, a word over wordCacheMaxRunes
	seq, err := Load(path, Options{MaxLen: 512})
	if err != nil {
		t.Fatal(err)
	}
	type enc struct {
		e Encoding
		d Detail
	}
	first := make([]enc, len(texts))
	for i, s := range texts {
		if first[i].e, first[i].d, err = seq.EncodeDetailed(s); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range texts {
		e, d, err := seq.EncodeDetailed(s)
		if err != nil || !reflect.DeepEqual(e, first[i].e) || !reflect.DeepEqual(d, first[i].d) {
			t.Fatalf("text %d %q encoded again (from the cache) differs: %v", i, s, err)
		}
	}

	par, err := Load(path, Options{MaxLen: 512})
	if err != nil {
		t.Fatal(err)
	}
	for _, pass := range []string{"cold", "warm"} {
		all, err := par.EncodeAll(texts, 4)
		if err != nil {
			t.Fatal(err)
		}
		for i := range texts {
			if !reflect.DeepEqual(all[i], first[i].e) {
				t.Fatalf("%s cache, EncodeAll: text %d %q differs from Encode", pass, i, texts[i])
			}
		}
	}

	c, ok := seq.g.model.(*cachedModel)
	if !ok {
		t.Fatalf("the general model is %T, not a *cachedModel", seq.g.model)
	}
	w := newNormStr("wonderful", 10)
	var s genScratch
	dst, err := c.tokenize(nil, w, &s) // cached by now; dst and the scratch sized
	if err != nil || len(dst) == 0 {
		t.Fatalf("tokenize(wonderful): %v, %v", dst, err)
	}
	if n := testing.AllocsPerRun(100, func() { dst, _ = c.tokenize(dst[:0], w, &s) }); n != 0 {
		t.Errorf("a word found in the cache: %v allocations; want 0", n)
	}
}
