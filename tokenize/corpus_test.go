package tokenize

import (
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// corpusText is one text of the parity corpus; kind says where it came from,
// for failure messages.
type corpusText struct {
	kind string
	text string
	pair *string // encoded as a sentence pair with text when set
}

// corpusSeed fixes the corpus: changing it (or the pools below) changes the
// texts, and the reference is regenerated from them on every run.
const corpusSeed = 20261127

// Pools of inserts, one per kind of trouble.
var (
	poolAccents = []string{
		"café", "naïve", "résumé", "élève", "garçon", "où", "Noël", "crème brûlée", "Ça va?", "déjà vu",
		"Straße", "Müller", "Übermäßig", "schön", "Äpfel", "Öl", "GRÜSSE",
		"niño", "señor", "¿Qué tal?", "¡Hola!", "corazón", "añejo", "pingüino",
		"Tiếng Việt", "người", "Hà Nội", "đường", "phở", "Nguyễn", "cảm ơn", "ĐẶNG",
		"São Paulo", "ação", "Łódź", "żółć", "İstanbul", "ılık", "Dvořák", "Ærøskøbing", "Þingvellir",
		"ΣΊΣΥΦΟΣ", "ὀδυσσεύς", "Привет мир", "ёжик", "ﬁne ﬂow", "ǅemal", "ﬀ", "\u212b", "\u212a", // Angstrom and Kelvin signs
		"e\u0301", "n\u0303o", "a\u0308\u0304", "\u0301start", "Ꭰ Ꮳ ꭰ", "𐐀𐐨", "ẞ ß",
	}
	poolCJK = []string{
		"我爱自然语言处理", "中文字符", "北京欢迎你", "汉字", "𠀀𠀁", "丽", "豈", "㐀",
		"こんにちは", "ありがとう", "カタカナ", "ｶﾀｶﾅ", "ﾊﾟﾝ", "ｶﾞｷﾞ", "東京タワー", "ひらがなとカタカナ",
		"안녕하세요", "세계", "한국어", "ㄱㄴㄷ", "각",
		"、。「」『』【】", "ＡＢＣ１２３！", "ｈｅｌｌｏ", "〜", "・", "ー", "〇", "〶",
	}
	poolEmoji = []string{
		"😀", "🥰", "👍", "👍🏽", "👋🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "❤", "🇫🇷", "🇯🇵", "1️⃣", "#️⃣",
		"🧑🏻‍💻", "👩‍❤️‍💋‍👨", "🫠", "🪿", "☺", "✔️", "©", "™", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🤷‍♀️",
	}
	poolControl = []string{
		"\x00", "\x01", "\x07", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\r\n", "\x1b", "\x1f", "\x7f",
		"\u0085", "\u00a0", "\u00ad", "\u061c", "\u180e", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f",
		"\u2028", "\u2029", "\u202a", "\u202e", "\u202f", "\u2060", "\u2066", "\u3000", "\u2003", "\u1680",
		"\ufeff", "\ufffd", "\ufff9", "\U000e0001", "\U000e0041", "\ue000", "\U000f0000", "\ufe0f", "\U000e0100",
	}
	poolCombining = []string{
		"\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u0327", "\u0328", "\u0331", "\u034f",
		"\u0483", "\u05b4", "\u0610", "\u064b", "\u0670", "\u0903", "\u093c", "\u0e31", "\u0e48", "\u1ab0",
		"\u1dc0", "\u20d0", "\u20e3", "\u302a", "\u3099", "\ufe20", "\U0001d165", "\U0001e944", "\u1734",
		"\u07fd", "\u0898", "\U00011938",
	}
	poolRTL = []string{
		"مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "كِتَابٌ", "العربية", "فارسی", "اردو", "١٢٣",
		"שלום עולם", "שָׁלוֹם", "עִבְרִית", "\u200fשלום\u200f", "ܫܠܡܐ", "ދިވެހި",
	}
	poolMath = []string{
		"∑∫√∞", "≤≥≠±×÷", "∂∇∈∉⊂⊃∀∃", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝐀𝐁𝐂", "𝟘𝟙𝟚", "x²+y³", "½ ¼ ⅓", "ℝ ℕ ℤ", "①②③",
		"Ⅻ", "α β γ", "f(x)=e^{iπ}+1", "a≈b", "∮E·dA", "⌀", "µ", "°C", "‰", "′″",
	}
	poolOther = []string{
		"[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[sep]", "[SEP", "[[SEP]]", "[MASK][MASK]", "x[CLS]y",
		"https://example.com/a?b=c&d=e#f", "user@example.org", "3.14159", "1,000,000", "#hashtag", "@mention",
		"can't", "won't", "rock'n'roll", "e.g.", "U.S.A.", "...", "!!!", "??", "--", "—", "–", "…", "“quoted”",
		"‘single’", "«guillemets»", "¿¡", "§", "¶", "†", "•", "☃", "♥", "★", "→", "⇒", "©2024",
		"สวัสดีครับ", "नमस्ते", "தமிழ்", "ქართული", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ", "𞤀𞤢",
		strings.Repeat("a", 101), strings.Repeat("é", 100), strings.Repeat("ab", 60), "pneumonoultramicroscopicsilicovolcanoconiosis",
	}
	pools = []struct {
		name string
		pool []string
	}{
		{"accents", poolAccents}, {"cjk", poolCJK}, {"emoji", poolEmoji}, {"control", poolControl},
		{"combining", poolCombining}, {"rtl", poolRTL}, {"math", poolMath}, {"other", poolOther},
	}
)

// edgeTexts are texts worth checking whole.
var edgeTexts = []string{
	"", " ", "  ", "\t", "\n", "\r\n", "\t \n", "\u00a0", "\u3000", "\u200b", "\ufeff", "\x00", "\ufffd",
	"\u0301", "\u0301\u0301\u0301", "[CLS]", "[SEP]", "[CLS][SEP]", "[SEP] [SEP]", "[MASK]", "[UNK]", "[PAD]",
	"[", "]", "[]", "[SE", "a", "A", "İ", "ı", "ß", "Σ", "ς", "ǅ", "ﬃ", "😀", "🏳️‍🌈", "中", "ｶ", "\U0001F9D1\u200d\U0001F4BB",
	"Hello world", "Café naïve résumé", "HELLO WORLD", "hello\u00a0world", "hello\u3000world", "hello\u200bworld",
	"hello\u00adworld", "hello\x00world", "hello\x7fworld", "hello\tworld\nagain", "Z̷̢̛̮̖̫a̶̡̛̹̜l̸̨̻͎g̵̢̛̱o̴̢̧̜",
	"a" + strings.Repeat("\u0301", 40) + "b", // longer than Go's 30-non-starter segment
	"x" + strings.Repeat("\u0f39\u0f71", 20) + "y",
}

// buildCorpus returns the parity corpus: real sentences from dataDir, seeded
// variants of them, edge cases, random code points, long texts and a sweep of
// every code point of planes 0 to 3 (plus samples of the rest).
func buildCorpus(t testing.TB, dataDir string) []corpusText {
	t.Helper()
	rng := rand.New(rand.NewPCG(corpusSeed, 1))
	var out []corpusText
	add := func(kind, text string) { out = append(out, corpusText{kind: kind, text: text}) }

	// Real sentences.
	var real []string
	sst2Train := readTexts(t, filepath.Join(dataDir, "sst2", "train.csv"))
	for _, i := range rng.Perm(len(sst2Train))[:1500] {
		real = append(real, sst2Train[i])
		add("sst2-train", sst2Train[i])
	}
	for _, s := range readTexts(t, filepath.Join(dataDir, "sst2", "dev.csv")) {
		real = append(real, s)
		add("sst2-dev", s)
	}
	for _, s := range readTexts(t, filepath.Join(dataDir, "banking77", "test.csv")) {
		real = append(real, s)
		add("banking77-test", s)
	}

	// Variants: inserts from the pools, whole-text transformations.
	pick := func(p []string) string { return p[rng.IntN(len(p))] }
	for i := range 2400 {
		s := real[rng.IntN(len(real))]
		p := pools[i%len(pools)]
		for range 1 + rng.IntN(3) {
			s = insert(rng, s, pick(p.pool))
		}
		kind := "variant-" + p.name
		switch rng.IntN(8) {
		case 0:
			s, kind = strings.ToUpper(s), kind+"-upper"
		case 1:
			s, kind = norm.NFD.String(s), kind+"-nfd"
		case 2:
			s, kind = strings.ReplaceAll(s, " ", pick([]string{"\u00a0", "\u3000", "\t", "  ", "\n", "\u2003", "\u200b"})), kind+"-spaces"
		case 3:
			s, kind = insert(rng, s, pick(pools[rng.IntN(len(pools))].pool)), kind+"-mixed"
		}
		add(kind, s)
	}
	for _, s := range edgeTexts {
		add("edge", s)
	}
	for _, p := range pools {
		for _, s := range p.pool {
			add("pool-"+p.name, s)
		}
	}

	// Random code points from assorted blocks, assigned or not.
	blocks := [][2]rune{
		{0x20, 0x7f}, {0x80, 0x24f}, {0x250, 0x52f}, {0x590, 0x8ff}, {0x900, 0xdff}, {0xe00, 0x10ff},
		{0x1100, 0x11ff}, {0x1ab0, 0x1dff}, {0x1e00, 0x1fff}, {0x2000, 0x2bff}, {0x2e00, 0x2e7f},
		{0x3000, 0x30ff}, {0x3400, 0x4dbf}, {0x4e00, 0x9fff}, {0xa700, 0xa7ff}, {0xac00, 0xd7af},
		{0xf900, 0xfaff}, {0xfb00, 0xfdff}, {0xfe00, 0xffff}, {0x10000, 0x1ffff}, {0x20000, 0x2fa1f},
		{0x30000, 0x323af}, {0xe0000, 0xe01ef}, {0xf0000, 0x10ffff},
	}
	for range 400 {
		var b strings.Builder
		for range 1 + rng.IntN(40) {
			blk := blocks[rng.IntN(len(blocks))]
			r := blk[0] + rune(rng.IntN(int(blk[1]-blk[0]+1)))
			if !utf8.ValidRune(r) {
				r = ' '
			}
			b.WriteRune(r)
			if rng.IntN(4) == 0 {
				b.WriteByte(' ')
			}
		}
		add("random", b.String())
	}

	// Long texts: truncation at 128 and 512.
	for _, n := range []int{300, 600, 1000, 2000, 4000, 10000} {
		for range 6 {
			var b strings.Builder
			for b.Len() < n {
				s := real[rng.IntN(len(real))]
				if rng.IntN(3) == 0 {
					s = insert(rng, s, pick(pools[rng.IntN(len(pools))].pool))
				}
				b.WriteString(s)
				b.WriteByte(' ')
			}
			add(fmt.Sprintf("long-%d", n), b.String())
		}
	}
	// Around the truncation lengths: "hello" is one token, so k words make
	// k+2 tokens.
	for _, k := range []int{124, 125, 126, 127, 128, 129, 508, 509, 510, 511, 512, 513} {
		add(fmt.Sprintf("long-boundary-%d", k), strings.TrimSpace(strings.Repeat("hello ", k)))
		add(fmt.Sprintf("long-boundary-sep-%d", k), strings.Repeat("a[SEP]", k/2))
	}
	add("long-word", strings.Repeat("abc", 3400))
	add("long-cjk", strings.Repeat("我爱自然语言处理", 1250))
	add("long-sep", strings.Repeat("[SEP]", 2000))
	add("long-emoji", strings.Repeat("👨‍👩‍👧‍👦 ", 1000))
	add("long-punct", strings.Repeat("!?", 5000))
	add("long-marks", "a"+strings.Repeat("\u0301", 10000))
	add("long-spaces", strings.Repeat(" ", 10000)+"end")

	// Code point sweep: "x" + c + "x", 32 per text, so each code point's
	// classes (removed, space, punctuation, Chinese, mark, case) show.
	var sweep []rune
	for r := rune(0); r <= 0x323af; r++ {
		if utf8.ValidRune(r) {
			sweep = append(sweep, r)
		}
	}
	for r := rune(0xe0000); r <= 0xe01ef; r++ {
		sweep = append(sweep, r)
	}
	for r := rune(0x323b0); r <= 0x10ffff; r += 997 {
		if r < 0xe0000 || r > 0xe01ef {
			sweep = append(sweep, r)
		}
	}
	for i := 0; i < len(sweep); i += 32 {
		var b strings.Builder
		for _, r := range sweep[i:min(i+32, len(sweep))] {
			b.WriteByte('x')
			b.WriteRune(r)
			b.WriteString("x ")
		}
		add(fmt.Sprintf("sweep-U+%04X", sweep[i]), b.String())
	}
	return append(out, multilingualCorpus(t, real)...)
}

// multilingualCorpus returns the multilingual part of the corpus: the
// sentences of testdata/multilingual.txt (many scripts, right-to-left text,
// combining marks, full-width forms, emoji ZWJ sequences) whole, and seeded
// mixtures of them with real sentences: concatenations, inserted pool items,
// full-width and NFD/NFC forms, emoji sequences inside words.
func multilingualCorpus(t testing.TB, real []string) []corpusText {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "multilingual.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var ml []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			ml = append(ml, l)
		}
	}
	rng := rand.New(rand.NewPCG(corpusSeed, 2))
	var out []corpusText
	add := func(kind, text string) { out = append(out, corpusText{kind: kind, text: text}) }
	for _, s := range ml {
		add("multilingual", s)
	}
	pick := func(p []string) string { return p[rng.IntN(len(p))] }
	zwj := []string{"👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🏳️‍🌈", "🧑🏻‍💻", "🤷‍♀️", "👁️‍🗨️", "🐻‍❄️", "❤️‍🔥", "👩🏽‍🚀", "🇺🇳", "🏴󠁧󠁢󠁷󠁬󠁳󠁿"}
	for i := range 2000 {
		var s, kind string
		switch i % 5 {
		case 0:
			s, kind = pick(ml)+" "+pick(ml), "multilingual-concat"
		case 1:
			s, kind = insert(rng, pick(real), pick(ml)), "multilingual-mixed"
		case 2:
			s, kind = fullWidth(pick(real)), "multilingual-fullwidth"
		case 3:
			s, kind = pick(ml), "multilingual-emoji"
			for range 1 + rng.IntN(3) {
				s = insert(rng, s, pick(zwj))
			}
		case 4:
			s, kind = pick(ml), "multilingual-pool"
			p := pools[rng.IntN(len(pools))]
			s = insert(rng, s, pick(p.pool))
		}
		switch rng.IntN(4) {
		case 0:
			s, kind = norm.NFD.String(s), kind+"-nfd"
		case 1:
			s, kind = norm.NFC.String(s), kind+"-nfc"
		}
		add(kind, s)
	}
	return out
}

// fullWidth writes ASCII letters, digits, punctuation and spaces in their
// full-width forms (U+FF01..U+FF5E, U+3000).
func fullWidth(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ':
			return '\u3000'
		case '!' <= r && r <= '~':
			return r - '!' + '\uff01'
		}
		return r
	}, s)
}

// pairCorpus returns sentence pairs drawn from corpus: every k-th text paired
// with another text of the corpus (seeded), long pairs included.
func pairCorpus(corpus []corpusText, k int) []corpusText {
	rng := rand.New(rand.NewPCG(corpusSeed, 3))
	var out []corpusText
	for i := 0; i < len(corpus); i += k {
		j := rng.IntN(len(corpus))
		p := corpus[j].text
		out = append(out, corpusText{kind: corpus[i].kind + "+" + corpus[j].kind, text: corpus[i].text, pair: &p})
	}
	return out
}

// insert puts ins into s at a random word boundary, or inside a word.
func insert(rng *rand.Rand, s, ins string) string {
	words := strings.Split(s, " ")
	i := rng.IntN(len(words) + 1)
	if rng.IntN(4) == 0 && i < len(words) && utf8.RuneCountInString(words[i]) > 1 {
		w := []rune(words[i])
		j := 1 + rng.IntN(len(w)-1)
		words[i] = string(w[:j]) + ins + string(w[j:])
		return strings.Join(words, " ")
	}
	words = append(words[:i], append([]string{ins}, words[i:]...)...)
	return strings.Join(words, " ")
}

// readTexts reads the text column of a CSV with header "text,label".
func readTexts(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if testing.Short() {
			t.Skipf("%v (-short)", err)
		}
		t.Fatalf("%v (the datasets live in the repository's data/ folder)", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) == 0 || rows[0][0] != "text" {
		t.Fatalf("%s: header %v; want text,label", path, rows[:min(1, len(rows))])
	}
	var texts []string
	for _, r := range rows[1:] {
		texts = append(texts, r[0])
	}
	return texts
}
