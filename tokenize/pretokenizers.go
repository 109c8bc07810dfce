package tokenize

import (
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// preTokenizer is tokenizer.json's "pre_tokenizer": it cuts a normalised piece
// of text into words (and may change them, as ByteLevel and Metaspace do).
type preTokenizer interface {
	// split appends the words of n to dst. Empty words are never appended.
	split(dst []normStr, n normStr) []normStr
}

const preTokenizerTypes = "BertPreTokenizer, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Punctuation, Digits, Split, Sequence or null"

// splitBehavior is tokenizers' SplitDelimiterBehavior.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseBehavior(s, where string) (splitBehavior, error) {
	switch s {
	case "Removed":
		return splitRemoved, nil
	case "Isolated":
		return splitIsolated, nil
	case "MergedWithPrevious":
		return splitMergedWithPrevious, nil
	case "MergedWithNext":
		return splitMergedWithNext, nil
	case "Contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("%w: %s behavior %q; want Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous", ErrFormat, where, s)
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	typ, err := typeOf(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: pre_tokenizer: %w", ErrFormat, err)
	}
	bad := func(err error) error { return fmt.Errorf("%w: pre_tokenizer %s: %w", ErrFormat, typ, err) }
	switch typ {
	case "null":
		return nil, nil
	case "BertPreTokenizer":
		return bertPre{}, nil
	case "Whitespace":
		return whitespacePre{}, nil
	case "WhitespaceSplit":
		return predicatePre{isRustSpace, splitRemoved}, nil
	case "Punctuation":
		var v struct {
			Behavior *string `json:"behavior"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		b := splitIsolated
		if v.Behavior != nil {
			if b, err = parseBehavior(*v.Behavior, "Punctuation"); err != nil {
				return nil, err
			}
		}
		return predicatePre{isBertPunct, b}, nil
	case "Digits":
		var v struct {
			Individual bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		b := splitContiguous
		if v.Individual {
			b = splitIsolated
		}
		return predicatePre{isRustNumeric, b}, nil
	case "Split":
		var v struct {
			Pattern  stringOrRegex `json:"pattern"`
			Behavior string        `json:"behavior"`
			Invert   bool          `json:"invert"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		m, err := v.Pattern.matcher("Split")
		if err != nil {
			return nil, err
		}
		b, err := parseBehavior(v.Behavior, "Split")
		if err != nil {
			return nil, err
		}
		return splitPre{m, b, v.Invert}, nil
	case "ByteLevel":
		var v struct {
			AddPrefixSpace *bool `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		b := byteLevelPre{addPrefixSpace: true, useRegex: true} // tokenizers' defaults
		if v.AddPrefixSpace != nil {
			b.addPrefixSpace = *v.AddPrefixSpace
		}
		if v.UseRegex != nil {
			b.useRegex = *v.UseRegex
		}
		return b, nil
	case "Metaspace":
		var v struct {
			Replacement    *string `json:"replacement"`
			PrependScheme  *string `json:"prepend_scheme"`
			AddPrefixSpace *bool   `json:"add_prefix_space"` // before tokenizers 0.19
			Split          *bool   `json:"split"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		m := metaspacePre{replacement: '▁', scheme: prependAlways, splitWords: true}
		if v.Replacement != nil {
			rs := []rune(*v.Replacement)
			if len(rs) != 1 {
				return nil, fmt.Errorf("%w: Metaspace replacement %q must be one character", ErrFormat, *v.Replacement)
			}
			m.replacement = rs[0]
		}
		if v.AddPrefixSpace != nil && !*v.AddPrefixSpace {
			m.scheme = prependNever
		}
		if v.PrependScheme != nil {
			switch *v.PrependScheme {
			case "always":
				m.scheme = prependAlways
			case "first":
				m.scheme = prependFirst
			case "never":
				m.scheme = prependNever
			default:
				return nil, fmt.Errorf("%w: Metaspace prepend_scheme %q; want always, first or never", ErrFormat, *v.PrependScheme)
			}
		}
		if v.Split != nil {
			m.splitWords = *v.Split
		}
		return m, nil
	case "Sequence":
		var v struct {
			PreTokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		var seq seqPre
		for _, r := range v.PreTokenizers {
			p, err := parsePreTokenizer(r)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("%w: pre_tokenizer type %q; supported: %s", ErrUnsupported, typ, preTokenizerTypes)
}

// splitMatches cuts n at the matches (sorted, disjoint code point ranges) as
// tokenizers' NormalizedString::split does with behavior b, and appends the
// non-empty pieces to dst. With invert the matches are the gaps between them.
func splitMatches(dst []normStr, n normStr, ms [][2]int, b splitBehavior, invert bool) []normStr {
	type part struct {
		lo, hi int
		match  bool
	}
	var parts []part
	prev := 0
	for _, m := range ms {
		if m[0] == m[1] {
			continue
		}
		if prev < m[0] {
			parts = append(parts, part{prev, m[0], invert})
		}
		parts = append(parts, part{m[0], m[1], !invert})
		prev = m[1]
	}
	if prev < len(n.r) {
		parts = append(parts, part{prev, len(n.r), invert})
	}
	var out []part
	switch b {
	case splitRemoved:
		for _, p := range parts {
			if !p.match {
				out = append(out, p)
			}
		}
	case splitIsolated:
		out = parts
	case splitMergedWithPrevious:
		prevMatch := false
		for _, p := range parts {
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].hi = p.hi
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
	case splitMergedWithNext:
		prevMatch := false
		for i := len(parts) - 1; i >= 0; i-- {
			p := parts[i]
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].lo = p.lo
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case splitContiguous:
		prevMatch := false
		for _, p := range parts {
			if p.match == prevMatch && len(out) > 0 {
				out[len(out)-1].hi = p.hi
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
	}
	for _, p := range out {
		if p.lo < p.hi {
			dst = append(dst, n.slice(p.lo, p.hi))
		}
	}
	return dst
}

// predicateMatches returns each code point satisfying f as a match of its own.
func predicateMatches(rs []rune, f func(rune) bool) [][2]int {
	var ms [][2]int
	for i, r := range rs {
		if f(r) {
			ms = append(ms, [2]int{i, i + 1})
		}
	}
	return ms
}

// predicatePre splits on code points satisfying f (WhitespaceSplit,
// Punctuation, Digits).
type predicatePre struct {
	f func(rune) bool
	b splitBehavior
}

func (p predicatePre) split(dst []normStr, n normStr) []normStr {
	return splitMatches(dst, n, predicateMatches(n.r, p.f), p.b, false)
}

// isBertPunct is tokenizers' is_bert_punc / is_punc (ASCII punctuation or a
// Unicode P* category of its tables).
func isBertPunct(r rune) bool { return isIn(r, hfPunct, clsPunct) }

// isRustNumeric is Rust's char::is_numeric (Nd, Nl, No of its Unicode).
func isRustNumeric(r rune) bool {
	if r < 0x80 {
		return '0' <= r && r <= '9'
	}
	return unicode.Is(hfNumeric, r)
}

// bertPre is BertPreTokenizer: split on whitespace (removed), then isolate
// each punctuation code point.
type bertPre struct{}

func (bertPre) split(dst []normStr, n normStr) []normStr {
	start := -1
	for i, r := range n.r {
		space := isRustSpace(r)
		punct := !space && isBertPunct(r)
		if space || punct {
			if start >= 0 {
				dst = append(dst, n.slice(start, i))
				start = -1
			}
			if punct {
				dst = append(dst, n.slice(i, i+1))
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		dst = append(dst, n.slice(start, len(n.r)))
	}
	return dst
}

// whitespacePre is Whitespace: the matches of \w+|[^\w\s]+ (the Rust regex
// crate's Unicode \w and \s), everything else removed.
type whitespacePre struct{}

// isRegexWord and isRegexSpace are \w and \s of the Rust regex crate, which
// the Whitespace pre-tokenizer uses (classes.go).
func isRegexWord(r rune) bool  { return unicode.Is(hfRegexWord, r) }
func isRegexSpace(r rune) bool { return unicode.Is(hfRegexSpace, r) }

func (whitespacePre) split(dst []normStr, n normStr) []normStr {
	for i := 0; i < len(n.r); {
		r := n.r[i]
		switch {
		case isRegexWord(r):
			j := i + 1
			for j < len(n.r) && isRegexWord(n.r[j]) {
				j++
			}
			dst = append(dst, n.slice(i, j))
			i = j
		case !isRegexSpace(r):
			j := i + 1
			for j < len(n.r) && !isRegexWord(n.r[j]) && !isRegexSpace(n.r[j]) {
				j++
			}
			dst = append(dst, n.slice(i, j))
			i = j
		default:
			i++
		}
	}
	return dst
}

// isOnigSpace is Oniguruma's Unicode \s.
func isOnigSpace(r rune) bool { return unicode.Is(hfOnigSpace, r) }

// splitPre is Split: a pattern's matches cut with a behavior.
type splitPre struct {
	m      matcher
	b      splitBehavior
	invert bool
}

func (s splitPre) split(dst []normStr, n normStr) []normStr {
	return splitMatches(dst, n, s.m.find(n.r), s.b, s.invert)
}

// seqPre is a Sequence of pre-tokenizers, each applied to every word of the
// one before.
type seqPre []preTokenizer

func (s seqPre) split(dst []normStr, n normStr) []normStr {
	words := []normStr{n}
	for _, p := range s {
		var next []normStr
		for _, w := range words {
			next = p.split(next, w)
		}
		words = next
	}
	return append(dst, words...)
}

// prependScheme is Metaspace's prepend_scheme.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePre is Metaspace: ' ' becomes the replacement (U+2581 '▁'), which
// is prepended when the piece does not start with it (always, or only for the
// piece at the start of the text), and the text is cut before each
// replacement (MergedWithNext) when split is set.
type metaspacePre struct {
	replacement rune
	scheme      prependScheme
	splitWords  bool
}

func (m metaspacePre) split(dst []normStr, n normStr) []normStr {
	n = n.mapRunes(func(dst []rune, r rune) []rune {
		if r == ' ' {
			r = m.replacement
		}
		return append(dst, r)
	})
	if len(n.r) > 0 && n.r[0] != m.replacement {
		if m.scheme == prependAlways || (m.scheme == prependFirst && n.o[0].start == 0) {
			n = n.prepend([]rune{m.replacement})
		}
	}
	if !m.splitWords {
		if len(n.r) > 0 {
			dst = append(dst, n)
		}
		return dst
	}
	return splitMatches(dst, n, predicateMatches(n.r, func(r rune) bool { return r == m.replacement }), splitMergedWithNext, false)
}

// byteLevelPre is ByteLevel: a space put before the piece when it lacks one
// (add_prefix_space), the GPT-2 split (use_regex), then each UTF-8 byte
// written as the code point GPT-2's bytes_to_unicode assigns it.
type byteLevelPre struct {
	addPrefixSpace, useRegex bool
}

func (b byteLevelPre) split(dst []normStr, n normStr) []normStr {
	if b.addPrefixSpace && len(n.r) > 0 && n.r[0] != ' ' {
		n = n.prepend([]rune{' '})
	}
	k := len(dst)
	if b.useRegex {
		dst = splitMatches(dst, n, gpt2Matcher{}.find(n.r), splitIsolated, false)
	} else if len(n.r) > 0 {
		dst = append(dst, n)
	}
	// Every piece is mapped into one pair of buffers (allocated per text, not per
	// word; a code point past ASCII maps to several); each piece is then a slice of them capped at its own end, so that an
	// append to one piece cannot write into the next.
	var buf [4]byte
	size := 0
	for _, p := range dst[k:] {
		size += len(p.r)
	}
	all := normStr{r: make([]rune, 0, size), o: make([]span, 0, size)}
	ends := make([]int, len(dst)-k)
	for i := k; i < len(dst); i++ {
		for j, r := range dst[i].r {
			n0 := len(all.r)
			for _, c := range buf[:utf8.EncodeRune(buf[:], r)] {
				all.r = append(all.r, byteChar[c])
			}
			for range len(all.r) - n0 {
				all.o = append(all.o, dst[i].o[j])
			}
		}
		ends[i-k] = len(all.r)
	}
	start := 0
	for i := k; i < len(dst); i++ {
		end := ends[i-k]
		dst[i] = normStr{r: all.r[start:end:end], o: all.o[start:end:end]}
		start = end
	}
	return dst
}

// byteChar is GPT-2's bytes_to_unicode: printable Latin-1 bytes ('!'..'~',
// '¡'..'¬', '®'..'ÿ') stand for themselves, the other 68 for U+0100 onwards
// in byte order.
var byteChar = func() (m [256]rune) {
	next := rune(256)
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xa1 <= b && b <= 0xac) || (0xae <= b && b <= 0xff) {
			m[b] = rune(b)
		} else {
			m[b] = next
			next++
		}
	}
	return m
}()

// gpt2Pattern is the split pattern of GPT-2 (ByteLevel's built-in regex),
// as it appears in tokenizer.json.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// gpt2Matcher matches gpt2Pattern (which has a look-ahead, beyond RE2) with
// Oniguruma's ordered alternation, by hand.
type gpt2Matcher struct{}

func isOnigLetter(r rune) bool { return unicode.Is(hfLetter, r) }
func isOnigNumber(r rune) bool { return unicode.Is(hfNumber, r) }
func isGPT2Other(r rune) bool  { return !isOnigSpace(r) && !isOnigLetter(r) && !isOnigNumber(r) }

func (gpt2Matcher) find(rs []rune) [][2]int {
	var ms [][2]int
	run := func(i int, f func(rune) bool) int {
		for i < len(rs) && f(rs[i]) {
			i++
		}
		return i
	}
	for i := 0; i < len(rs); {
		r := rs[i]
		end := -1
		if r == '\'' && i+1 < len(rs) {
			switch rs[i+1] {
			case 's', 't', 'm', 'd':
				end = i + 2
			case 'r', 'v':
				if i+2 < len(rs) && rs[i+2] == 'e' {
					end = i + 3
				}
			case 'l':
				if i+2 < len(rs) && rs[i+2] == 'l' {
					end = i + 3
				}
			}
		}
		if end < 0 {
			for _, f := range [...]func(rune) bool{isOnigLetter, isOnigNumber, isGPT2Other} {
				if r == ' ' && i+1 < len(rs) && f(rs[i+1]) {
					end = run(i+1, f)
					break
				}
				if f(r) {
					end = run(i, f)
					break
				}
			}
		}
		if end < 0 { // r is white space
			k := run(i, isOnigSpace)
			switch {
			case k == len(rs) || k-i == 1:
				end = k
			default:
				end = k - 1 // \s+(?!\S): leave the last space to the next word
			}
		}
		ms = append(ms, [2]int{i, end})
		i = end
	}
	return ms
}
