package tokenize

import (
	"unicode/utf8"
)

// span is a byte range [start, end) of the original text of one sequence.
type span struct{ start, end int32 }

// normStr is text under normalisation and pre-tokenisation: its code points
// and, for each, the span of the original text it came from (tokenizers'
// NormalizedString alignments, kept per code point rather than per byte). A
// code point inserted by a normalizer takes the span of the one it was made
// from, so a token's offsets are the union of its code points' spans.
type normStr struct {
	r []rune
	o []span
}

// newNormStr returns s, which starts at byte base of the original text, with
// each code point aligned to itself.
func newNormStr(s string, base int) normStr {
	n := normStr{r: make([]rune, 0, len(s)), o: make([]span, 0, len(s))}
	for i, r := range s {
		n.r = append(n.r, r)
		n.o = append(n.o, span{int32(base + i), int32(base + i + utf8.RuneLen(r))})
	}
	return n
}

func (n normStr) String() string { return string(n.r) }

// appendUTF8 appends n's code points to dst in UTF-8, as String encodes them
// (invalid code points included), without allocating a string.
func (n normStr) appendUTF8(dst []byte) []byte {
	for _, r := range n.r {
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// slice returns code points [i, j) (sharing storage).
func (n normStr) slice(i, j int) normStr { return normStr{r: n.r[i:j:j], o: n.o[i:j:j]} }

// origin returns the original span of code points [i, j): from the start of
// the first to the end of the last, or an empty span where the first would
// start when i == j.
func (n normStr) origin(i, j int) span {
	switch {
	case len(n.r) == 0:
		return span{}
	case i >= j:
		if i < len(n.o) {
			return span{n.o[i].start, n.o[i].start}
		}
		e := n.o[len(n.o)-1].end
		return span{e, e}
	}
	return span{n.o[i].start, n.o[j-1].end}
}

// mapRunes replaces each code point by what f appends for it (zero or more
// code points), each with the span of the code point it replaces.
func (n normStr) mapRunes(f func(dst []rune, r rune) []rune) normStr {
	out := normStr{r: make([]rune, 0, len(n.r)), o: make([]span, 0, len(n.r))}
	for i, r := range n.r {
		k := len(out.r)
		out.r = f(out.r, r)
		for range len(out.r) - k {
			out.o = append(out.o, n.o[i])
		}
	}
	return out
}

// replaceRanges replaces code points [m[0], m[1]) for each m in ms (sorted,
// disjoint, not empty) by with, whose code points take the span of the last
// code point replaced (tokenizers' NormalizedString::replace inserts them
// after the removed ones).
func (n normStr) replaceRanges(ms [][2]int, with []rune) normStr {
	if len(ms) == 0 {
		return n
	}
	out := normStr{r: make([]rune, 0, len(n.r)), o: make([]span, 0, len(n.r))}
	prev := 0
	for _, m := range ms {
		out.r = append(out.r, n.r[prev:m[0]]...)
		out.o = append(out.o, n.o[prev:m[0]]...)
		sp := n.o[m[1]-1]
		for _, r := range with {
			out.r = append(out.r, r)
			out.o = append(out.o, sp)
		}
		prev = m[1]
	}
	out.r = append(out.r, n.r[prev:]...)
	out.o = append(out.o, n.o[prev:]...)
	return out
}

// prepend puts s before the text, its code points aligned to the first code
// point (tokenizers' NormalizedString::prepend). An empty text stays empty.
func (n normStr) prepend(s []rune) normStr {
	if len(n.r) == 0 {
		return n
	}
	out := normStr{r: make([]rune, 0, len(n.r)+len(s)), o: make([]span, 0, len(n.r)+len(s))}
	for _, r := range s {
		out.r = append(out.r, r)
		out.o = append(out.o, n.o[0])
	}
	out.r = append(out.r, n.r...)
	out.o = append(out.o, n.o...)
	return out
}

// byteToRune returns, for the UTF-8 encoding of rs, the index of the code
// point each byte belongs to, with one more entry (len(rs)) for the end.
func byteToRune(rs []rune, dst []int) []int {
	dst = dst[:0]
	for i, r := range rs {
		for range utf8.RuneLen(r) {
			dst = append(dst, i)
		}
	}
	return append(dst, len(rs))
}

// change is a code point of a transformation and how it changes the text,
// in tokenizers' NormalizedString::transform terms: 0 replaces the next
// original code point, 1 is inserted after the last one consumed, -k
// replaces the next one and removes the k after it.
type change struct {
	r rune
	d int
}

// transform rebuilds n from changes, with tokenizers' alignment rule: a code
// point that replaces takes the span of the original it consumes, an inserted
// one the span of the last consumed. Like the Rust library it does not
// check that the changes consume the whole text: a removal with nothing
// before it to attach to (spm_precompiled deleting the first code point)
// leaves every later span one code point behind, and the reference has the
// same offsets.
func (n normStr) transform(cs []change) normStr {
	out := normStr{r: make([]rune, 0, len(cs)), o: make([]span, 0, len(cs))}
	at := 0
	spanAt := func(i int) span {
		switch {
		case i < 0:
			return span{}
		case i < len(n.o):
			return n.o[i]
		case len(n.o) > 0:
			e := n.o[len(n.o)-1].end
			return span{e, e}
		}
		return span{}
	}
	for _, c := range cs {
		out.r = append(out.r, c.r)
		if c.d > 0 {
			out.o = append(out.o, spanAt(at-1))
			continue
		}
		out.o = append(out.o, spanAt(at))
		at += 1 - c.d
	}
	return out
}

// appendReplaced appends rep, which replaces code points with spans from, to
// out as spm_precompiled's replace aligns a replacement: the code points of
// rep take the spans of from one by one and extra ones the span of the last
// of from.
func appendReplaced(out *normStr, rep string, from []span) {
	k := 0
	for _, r := range rep {
		out.r = append(out.r, r)
		switch {
		case len(from) == 0:
			out.o = append(out.o, span{})
		case k < len(from):
			out.o = append(out.o, from[k])
		default:
			out.o = append(out.o, from[len(from)-1])
		}
		k++
	}
}
