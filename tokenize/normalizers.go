package tokenize

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer is one step of tokenizer.json's "normalizer".
type normalizer interface {
	normalize(n normStr) normStr
}

// normalizerTypes are the normalizer types parseNormalizer reads.
const normalizerTypes = "BertNormalizer, Precompiled, Replace, Strip, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Sequence or null"

// parseNormalizer reads a normalizer object; null gives nil.
func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	typ, err := typeOf(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: normalizer: %w", ErrFormat, err)
	}
	switch typ {
	case "null":
		return nil, nil
	case "BertNormalizer":
		f, err := parseBertNormalizer(raw)
		if err != nil {
			return nil, err
		}
		return bertNorm{f}, nil
	case "Precompiled":
		var v struct {
			Charsmap *[]byte `json:"precompiled_charsmap"` // base64 in JSON
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%w: Precompiled: %w", ErrFormat, err)
		}
		if v.Charsmap == nil {
			return nil, fmt.Errorf("%w: Precompiled lacks precompiled_charsmap", ErrFormat)
		}
		if len(*v.Charsmap) == 0 { // tokenizers: an empty charsmap normalises nothing
			return nil, nil
		}
		return parsePrecompiled(*v.Charsmap)
	case "Replace":
		var v struct {
			Pattern stringOrRegex `json:"pattern"`
			Content *string       `json:"content"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%w: Replace: %w", ErrFormat, err)
		}
		if v.Content == nil {
			return nil, fmt.Errorf("%w: Replace lacks content", ErrFormat)
		}
		m, err := v.Pattern.matcher("Replace")
		if err != nil {
			return nil, err
		}
		return replaceNorm{m, []rune(*v.Content)}, nil
	case "Strip":
		var v struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%w: Strip: %w", ErrFormat, err)
		}
		return stripNorm{v.Left, v.Right}, nil
	case "NFC":
		return nfNorm{norm.NFC}, nil
	case "NFD":
		return nfNorm{norm.NFD}, nil
	case "NFKC":
		return nfNorm{norm.NFKC}, nil
	case "NFKD":
		return nfNorm{norm.NFKD}, nil
	case "Lowercase":
		return lowerNorm{}, nil
	case "Prepend":
		var v struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%w: Prepend: %w", ErrFormat, err)
		}
		return prependNorm{[]rune(v.Prepend)}, nil
	case "Sequence":
		var v struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%w: normalizer Sequence: %w", ErrFormat, err)
		}
		var seq seqNorm
		for _, r := range v.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("%w: normalizer type %q; supported: %s", ErrUnsupported, typ, normalizerTypes)
}

// parseBertNormalizer reads a BertNormalizer. The Rust library refuses a file
// that lacks any field but strip_accents, which may also be null.
func parseBertNormalizer(raw json.RawMessage) (normalizerFlags, error) {
	var bn bertNormalizer
	if err := json.Unmarshal(raw, &bn); err != nil {
		return normalizerFlags{}, fmt.Errorf("%w: normalizer: %w", ErrFormat, err)
	}
	for _, f := range []struct {
		name string
		v    *bool
	}{{"clean_text", bn.CleanText}, {"handle_chinese_chars", bn.HandleChineseChars}, {"lowercase", bn.Lowercase}} {
		if f.v == nil {
			return normalizerFlags{}, fmt.Errorf("%w: BertNormalizer lacks %s", ErrFormat, f.name)
		}
	}
	f := normalizerFlags{clean: *bn.CleanText, chinese: *bn.HandleChineseChars, lower: *bn.Lowercase}
	// tokenizers: strip_accents.unwrap_or(lowercase).
	f.strip = f.lower
	if bn.StripAccents != nil {
		f.strip = *bn.StripAccents
	}
	return f, nil
}

// bertNorm is BertNormalizer on an aligned string (the same steps as
// pipeline.normalize, which is the fast path without alignments).
type bertNorm struct{ f normalizerFlags }

func (b bertNorm) normalize(n normStr) normStr {
	f := b.f
	n = n.mapRunes(func(dst []rune, r rune) []rune {
		if f.clean {
			if isIn(r, hfRemoved, clsRemoved) {
				return dst
			}
			if isIn(r, hfCleanSpace, clsCleanSpace) {
				r = ' '
			}
		}
		if f.chinese && r >= chineseLo && unicode.Is(hfChinese, r) {
			return append(dst, ' ', r, ' ')
		}
		return append(dst, r)
	})
	if f.strip {
		n = nfNorm{norm.NFD}.normalize(n)
		n = n.mapRunes(func(dst []rune, r rune) []rune {
			if r >= marksLo && unicode.Is(hfMarks, r) {
				return dst
			}
			return append(dst, r)
		})
	}
	if f.lower {
		n = lowerNorm{}.normalize(n)
	}
	return n
}

// lowerNorm is Lowercase: Rust's char::to_lowercase per code point.
type lowerNorm struct{}

func (lowerNorm) normalize(n normStr) normStr {
	return n.mapRunes(appendLowerRune)
}

func appendLowerRune(dst []rune, r rune) []rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(dst, r)
	}
	if i, ok := slices.BinarySearch(hfLowerFrom[:], r); ok {
		return append(dst, hfLowerTo[i])
	}
	if m, ok := hfLowerMulti[r]; ok {
		return append(dst, []rune(m)...)
	}
	return append(dst, r)
}

// nfNorm is NFC, NFD, NFKC or NFKD, keeping tokenizers' alignments
// (unicode-normalization-alignments): each code point decomposes on its own
// (the first piece replacing it, the others inserted after it), runs of
// combining marks are put in canonical order, each taking its change along,
// the spans follow from the changes (normStr.transform), and for NFC and NFKC each composed segment takes
// the spans of what it was composed from as a replacement does
// (appendReplaced: a composed character keeps the span of its first code
// point). Code points in nfdKeep (and, for NFKC and NFKD, nfkKeep) are left
// as they are: their decompositions are newer than the Rust library's tables.
type nfNorm struct{ form norm.Form }

func (f nfNorm) normalize(n normStr) normStr {
	if f.form.IsNormalString(string(n.r)) {
		return n
	}
	dec, compat := norm.NFD, f.form == norm.NFKC || f.form == norm.NFKD
	if compat {
		dec = norm.NFKD
	}
	cs := make([]change, 0, len(n.r)+8)
	var buf [utf8.UTFMax]byte
	for _, r := range n.r {
		if r < utf8.RuneSelf || slices.Contains(nfdKeep, r) {
			cs = append(cs, change{r: r})
			continue
		}
		if _, keep := slices.BinarySearch(nfkKeep, r); keep && compat {
			cs = append(cs, change{r: r})
			continue
		}
		for i, x := range []rune(dec.String(string(buf[:utf8.EncodeRune(buf[:], r)]))) {
			cs = append(cs, change{r: x, d: min(i, 1)})
		}
	}
	// Canonical ordering: a stable sort of each run of non-starters by
	// class, each code point taking its change along.
	ccc := func(r rune) uint8 {
		if r < 0x300 {
			return 0
		}
		return norm.NFD.PropertiesString(string(buf[:utf8.EncodeRune(buf[:], r)])).CCC()
	}
	for i := 0; i < len(cs); {
		if ccc(cs[i].r) == 0 {
			i++
			continue
		}
		j := i
		for j < len(cs) && ccc(cs[j].r) != 0 {
			j++
		}
		slices.SortStableFunc(cs[i:j], func(a, b change) int { return int(ccc(a.r)) - int(ccc(b.r)) })
		i = j
	}
	d := n.transform(cs)
	if f.form == norm.NFD || f.form == norm.NFKD {
		return d
	}
	// Composition, one segment at a time.
	s := string(d.r)
	out := normStr{r: make([]rune, 0, len(d.r)), o: make([]span, 0, len(d.r))}
	ri := 0
	for bi := 0; bi < len(s); {
		k := f.form.NextBoundaryInString(s[bi:], true)
		if k <= 0 {
			k = len(s) - bi
		}
		piece := s[bi : bi+k]
		cnt := utf8.RuneCountInString(piece)
		// The Rust tables neither decompose nor compose the nfdKeep code
		// points, and leave the nfkKeep ones alone.
		comp := f.form.String(piece)
		if strings.ContainsFunc(piece+comp, func(r rune) bool {
			_, k := slices.BinarySearch(nfkKeep, r)
			return k || slices.Contains(nfdKeep, r)
		}) {
			comp = piece
		}
		appendReplaced(&out, comp, d.o[ri:ri+cnt])
		bi += k
		ri += cnt
	}
	return out
}

// stripNorm is Strip: whitespace (Rust's char::is_whitespace) removed from
// either end.
type stripNorm struct{ left, right bool }

func (s stripNorm) normalize(n normStr) normStr {
	i, j := 0, len(n.r)
	if s.left {
		for i < j && isRustSpace(n.r[i]) {
			i++
		}
	}
	if s.right {
		for j > i && isRustSpace(n.r[j-1]) {
			j--
		}
	}
	return n.slice(i, j)
}

// isRustSpace is Rust's char::is_whitespace (the White_Space property).
func isRustSpace(r rune) bool { return isIn(r, hfPreSpace, clsPreSpace) }

// prependNorm is Prepend: a string put before non-empty text.
type prependNorm struct{ s []rune }

func (p prependNorm) normalize(n normStr) normStr { return n.prepend(p.s) }

// replaceNorm is Replace: every match of a pattern replaced by content.
type replaceNorm struct {
	m       matcher
	content []rune
}

func (r replaceNorm) normalize(n normStr) normStr {
	return n.replaceRanges(r.m.find(n.r), r.content)
}

// seqNorm is a Sequence of normalizers, applied in order.
type seqNorm []normalizer

func (s seqNorm) normalize(n normStr) normStr {
	for _, x := range s {
		n = x.normalize(n)
	}
	return n
}

// matcher finds the non-overlapping matches of a pattern in a string of code
// points, as code point ranges [start, end), left to right.
type matcher interface {
	find(rs []rune) [][2]int
}

// stringOrRegex is tokenizer.json's pattern: {"String": s} or {"Regex": re}.
type stringOrRegex struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p stringOrRegex) matcher(where string) (matcher, error) {
	switch {
	case p.String != nil:
		if *p.String == "" {
			return nil, fmt.Errorf("%w: %s has an empty String pattern", ErrFormat, where)
		}
		return literalMatcher([]rune(*p.String)), nil
	case p.Regex != nil:
		if *p.Regex == gpt2Pattern {
			return gpt2Matcher{}, nil
		}
		re, err := compileOnig(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("%w: %s regex %q is not one Go's regexp (RE2) accepts, and not the GPT-2 pattern this package implements: %w", ErrUnsupported, where, *p.Regex, err)
		}
		return regexMatcher{re}, nil
	}
	return nil, fmt.Errorf("%w: %s pattern needs String or Regex", ErrFormat, where)
}

// literalMatcher matches a fixed string.
type literalMatcher []rune

func (l literalMatcher) find(rs []rune) [][2]int {
	var out [][2]int
	for i := 0; i+len(l) <= len(rs); {
		if slices.Equal(rs[i:i+len(l)], l) {
			out = append(out, [2]int{i, i + len(l)})
			i += len(l)
			continue
		}
		i++
	}
	return out
}

// regexMatcher matches a Go regexp; empty matches are dropped.
type regexMatcher struct{ re *regexp.Regexp }

func (m regexMatcher) find(rs []rune) [][2]int {
	s := string(rs)
	locs := m.re.FindAllStringIndex(s, -1)
	if len(locs) == 0 {
		return nil
	}
	idx := byteToRune(rs, nil)
	out := make([][2]int, 0, len(locs))
	for _, l := range locs {
		if l[0] == l[1] {
			continue
		}
		out = append(out, [2]int{idx[l[0]], idx[l[1]]})
	}
	return out
}

// compileOnig compiles an Oniguruma pattern (what tokenizers uses) with Go's
// regexp, rewriting the classes whose meaning differs: \s, \w, \p{L} and
// \p{N} become the code points Oniguruma gives them (classes.go, Unicode
// newer than Go's), \d becomes \p{Nd} (RE2's shorthands are ASCII only). A
// negated shorthand inside brackets has no RE2 spelling and is refused.
func compileOnig(p string) (*regexp.Regexp, error) {
	var (
		space = classRanges(hfOnigSpace)
		digit = `\p{Nd}`
		word  = classRanges(hfOnigWord)
	)
	p = strings.ReplaceAll(p, `\p{L}`, `\x00L`)
	p = strings.ReplaceAll(p, `\p{N}`, `\x00N`)
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' && i+1 < len(p) {
			d := p[i+1]
			i++
			var set string
			switch d {
			case 's', 'S':
				set = space
			case 'd', 'D':
				set = digit
			case 'w', 'W':
				set = word
			default:
				b.WriteByte(c)
				b.WriteByte(d)
				continue
			}
			neg := d == 'S' || d == 'D' || d == 'W'
			switch {
			case inClass && neg:
				return nil, fmt.Errorf("negated class \\%c inside brackets", d)
			case inClass:
				b.WriteString(set)
			case neg:
				b.WriteString("[^" + set + "]")
			default:
				b.WriteString("[" + set + "]")
			}
			continue
		}
		switch {
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' { // a leading ] is a literal
				b.WriteString(`\]`)
				i++
			}
			continue
		case c == ']' && inClass:
			inClass = false
		}
		b.WriteByte(c)
	}
	out := b.String()
	// \p{L} and \p{N}: the placeholders left above, inside brackets or not.
	for _, c := range []struct {
		ph  string
		set string
	}{{"\x00L", classRanges(hfLetter)}, {"\x00N", classRanges(hfNumber)}} {
		var o strings.Builder
		in := false
		for i := 0; i < len(out); i++ {
			switch {
			case strings.HasPrefix(out[i:], c.ph):
				if in {
					o.WriteString(c.set)
				} else {
					o.WriteString("[" + c.set + "]")
				}
				i += len(c.ph) - 1
				continue
			case out[i] == '\\' && i+1 < len(out):
				o.WriteString(out[i : i+2])
				i++
				continue
			case out[i] == '[':
				in = true
			case out[i] == ']':
				in = false
			}
			o.WriteByte(out[i])
		}
		out = o.String()
	}
	return regexp.Compile(out)
}

// classRanges spells a range table as the inside of an RE2 bracket
// expression.
func classRanges(t *unicode.RangeTable) string {
	var b strings.Builder
	add := func(lo, hi, stride uint32) {
		for c := lo; c <= hi; c += stride {
			if stride == 1 {
				fmt.Fprintf(&b, `\x{%x}-\x{%x}`, lo, hi)
				return
			}
			fmt.Fprintf(&b, `\x{%x}`, c)
		}
	}
	for _, r := range t.R16 {
		add(uint32(r.Lo), uint32(r.Hi), uint32(r.Stride))
	}
	for _, r := range t.R32 {
		add(r.Lo, r.Hi, r.Stride)
	}
	return b.String()
}

// Code points whose compatibility decomposition (NFKD, NFKC) Go's Unicode 15 tables have and
// tokenizers' unicode-normalization-alignments does not: it leaves them as they are. Found by
// TestNormalFormsSingle, which compares every code point with the Rust library.
var nfkKeep = []rune{
	0x32ff, 0xa7f2, 0xa7f3, 0xa7f4, 0xab69, 0x10781, 0x10782, 0x10783, 0x10784, 0x10785,
	0x10787, 0x10788, 0x10789, 0x1078a, 0x1078b, 0x1078c, 0x1078d, 0x1078e, 0x1078f, 0x10790,
	0x10791, 0x10792, 0x10793, 0x10794, 0x10795, 0x10796, 0x10797, 0x10798, 0x10799, 0x1079a,
	0x1079b, 0x1079c, 0x1079d, 0x1079e, 0x1079f, 0x107a0, 0x107a1, 0x107a2, 0x107a3, 0x107a4,
	0x107a5, 0x107a6, 0x107a7, 0x107a8, 0x107a9, 0x107aa, 0x107ab, 0x107ac, 0x107ad, 0x107ae,
	0x107af, 0x107b0, 0x107b2, 0x107b3, 0x107b4, 0x107b5, 0x107b6, 0x107b7, 0x107b8, 0x107b9,
	0x107ba, 0x1e030, 0x1e031, 0x1e032, 0x1e033, 0x1e034, 0x1e035, 0x1e036, 0x1e037, 0x1e038,
	0x1e039, 0x1e03a, 0x1e03b, 0x1e03c, 0x1e03d, 0x1e03e, 0x1e03f, 0x1e040, 0x1e041, 0x1e042,
	0x1e043, 0x1e044, 0x1e045, 0x1e046, 0x1e047, 0x1e048, 0x1e049, 0x1e04a, 0x1e04b, 0x1e04c,
	0x1e04d, 0x1e04e, 0x1e04f, 0x1e050, 0x1e051, 0x1e052, 0x1e053, 0x1e054, 0x1e055, 0x1e056,
	0x1e057, 0x1e058, 0x1e059, 0x1e05a, 0x1e05b, 0x1e05c, 0x1e05d, 0x1e05e, 0x1e05f, 0x1e060,
	0x1e061, 0x1e062, 0x1e063, 0x1e064, 0x1e065, 0x1e066, 0x1e067, 0x1e068, 0x1e069, 0x1e06a,
	0x1e06b, 0x1e06c, 0x1e06d, 0x1f16c, 0x1fbf0, 0x1fbf1, 0x1fbf2, 0x1fbf3, 0x1fbf4, 0x1fbf5,
	0x1fbf6, 0x1fbf7, 0x1fbf8, 0x1fbf9,
}
