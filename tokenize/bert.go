package tokenize

import (
	"bytes"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// specialToken is an added token of tokenizer.json, matched in the raw text.
type specialToken struct {
	content string
	id      int32
}

// pipeline is a BERT WordPiece tokenizer: added-token split, BertNormalizer,
// BertPreTokenizer, WordPiece, single-sequence template. It is read-only after
// parseConfig, so one pipeline serves any number of goroutines.
type pipeline struct {
	vocab         map[string]int32
	maxTokenBytes int    // longest vocab entry in bytes: no longer WordPiece candidate can match
	unkToken      string // model.unk_token
	subPrefix     string // model.continuing_subword_prefix
	maxWordChars  int    // model.max_input_chars_per_word
	unkID         int32

	norm  normalizerFlags
	added []specialToken // longest content first

	prefix, suffix []templatePiece // special tokens around sequence A
	seqTypeID      int64           // type id of sequence A
}

// numAdded is the number of special tokens the template adds to one sequence.
func (p *pipeline) numAdded() int {
	n := 0
	for _, tp := range p.prefix {
		n += len(tp.ids)
	}
	for _, tp := range p.suffix {
		n += len(tp.ids)
	}
	return n
}

// scratch holds one encoding's working buffers; Tokenizer pools them.
type scratch struct {
	ids  []int32 // token ids of the sequence, specials not yet added
	norm []byte  // normalised segment
	nfd  []byte  // NFD of the segment before marks are dropped
	word []byte  // continuing-subword prefix + candidate piece
	next []int   // next occurrence of each added token
	iter norm.Iter
}

// ASCII classes, built from the generated tables so that the fast path agrees
// with the slow one by construction.
const (
	clsRemoved    = 1 << iota // dropped by clean_text
	clsCleanSpace             // mapped to ' ' by clean_text
	clsPreSpace               // pre-tokenizer whitespace
	clsPunct                  // pre-tokenizer punctuation
)

var asciiClass = func() (c [utf8.RuneSelf]uint8) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		if unicode.Is(hfRemoved, r) {
			c[r] |= clsRemoved
		}
		if unicode.Is(hfCleanSpace, r) {
			c[r] |= clsCleanSpace
		}
		if unicode.Is(hfPreSpace, r) {
			c[r] |= clsPreSpace
		}
		if unicode.Is(hfPunct, r) {
			c[r] |= clsPunct
		}
	}
	return c
}()

// Smallest code points of two large tables, to skip the lookup below them.
var (
	chineseLo = firstRune(hfChinese)
	marksLo   = firstRune(hfMarks)
)

func firstRune(t *unicode.RangeTable) rune {
	if len(t.R16) > 0 {
		return rune(t.R16[0].Lo)
	}
	return rune(t.R32[0].Lo)
}

// nfdKeep holds code points that Go's NFD (golang.org/x/text, Unicode 15)
// decomposes but tokenizers' NFD (an older Unicode) leaves alone: U+11938
// DIVES AKURU VOWEL SIGN O gained its decomposition in Unicode 13. All are
// starters, so NFD of the text around them is unaffected by keeping them.
var nfdKeep = []rune{0x11938}

// encode appends the token ids of text, without the template's special tokens,
// to s.ids (reset first). text must be valid UTF-8.
//
// Added tokens are cut out of the raw text first, leftmost match first and the
// longest of those starting at one position (tokenizers' AddedVocabulary with
// aho-corasick LeftmostLongest); the pieces between them are normalised,
// pre-tokenized and split into word pieces.
func (p *pipeline) encode(s *scratch, text string) {
	s.ids = s.ids[:0]
	if len(p.added) == 0 {
		p.segment(s, text)
		return
	}
	s.next = slices.Grow(s.next[:0], len(p.added))[:len(p.added)]
	for k := range s.next {
		s.next[k] = -2 // unknown
	}
	pos := 0
	for {
		best, bestAt := -1, len(text)
		for k := range p.added {
			if s.next[k] != -1 && s.next[k] < pos {
				if i := strings.Index(text[pos:], p.added[k].content); i < 0 {
					s.next[k] = -1 // no more occurrences
				} else {
					s.next[k] = pos + i
				}
			}
			if s.next[k] >= 0 && s.next[k] < bestAt { // strict: the longer token wins a tie
				best, bestAt = k, s.next[k]
			}
		}
		if best < 0 {
			p.segment(s, text[pos:])
			return
		}
		p.segment(s, text[pos:bestAt])
		s.ids = append(s.ids, p.added[best].id)
		pos = bestAt + len(p.added[best].content)
	}
}

// segment normalises a piece of text between added tokens and appends the ids
// of its words.
func (p *pipeline) segment(s *scratch, seg string) {
	if seg == "" {
		return
	}
	p.words(s, p.normalize(s, seg))
}

// normalize applies tokenizers' BertNormalizer to seg, in its order:
//
//	clean_text            drop hfRemoved, map hfCleanSpace to ' '
//	handle_chinese_chars  ' ' + c + ' ' for c in hfChinese
//	strip_accents         NFD, then drop hfMarks
//	lowercase             per code point, hfLower*
//
// The result is in s.norm.
func (p *pipeline) normalize(s *scratch, seg string) []byte {
	f := p.norm
	out := s.norm[:0]
	if isASCII(seg) { // NFD and the Unicode tables are no-ops on ASCII
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if f.clean {
				if asciiClass[c]&clsRemoved != 0 {
					continue
				}
				if asciiClass[c]&clsCleanSpace != 0 {
					c = ' '
				}
			}
			if f.lower && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			out = append(out, c)
		}
		s.norm = out
		return out
	}

	// Pass 1: clean_text and handle_chinese_chars, and lowercase when no NFD
	// comes between them (all three act on single code points).
	lowerNow := f.lower && !f.strip
	for _, r := range seg {
		if f.clean {
			if isIn(r, hfRemoved, clsRemoved) {
				continue
			}
			if isIn(r, hfCleanSpace, clsCleanSpace) {
				r = ' '
			}
		}
		if f.chinese && r >= chineseLo && unicode.Is(hfChinese, r) {
			out = append(out, ' ')
			out = utf8.AppendRune(out, r)
			out = append(out, ' ')
			continue
		}
		if lowerNow {
			out = appendLower(out, r)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	if !f.strip {
		s.norm = out
		return out
	}

	// Pass 2: NFD, drop non-spacing marks, then lowercase.
	s.nfd = appendNFD(s.nfd[:0], out, &s.iter)
	out = out[:0]
	for b := s.nfd; len(b) > 0; {
		r, size := rune(b[0]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(b)
		}
		b = b[size:]
		if r >= marksLo && unicode.Is(hfMarks, r) {
			continue
		}
		if f.lower {
			out = appendLower(out, r)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	s.norm = out
	return out
}

// appendNFD appends the NFD of src to dst, leaving the nfdKeep code points as
// they are. it is reused across calls (norm.NFD.Append allocates on every
// call; an Iter does not).
func appendNFD(dst, src []byte, it *norm.Iter) []byte {
	nfd := func(dst, src []byte) []byte {
		it.Init(norm.NFD, src)
		for !it.Done() {
			dst = append(dst, it.Next()...)
		}
		return dst
	}
	for {
		cut, keep := -1, rune(0)
		for _, k := range nfdKeep {
			var buf [utf8.UTFMax]byte
			enc := buf[:utf8.EncodeRune(buf[:], k)]
			if i := bytes.Index(src, enc); i >= 0 && (cut < 0 || i < cut) {
				cut, keep = i, k
			}
		}
		if cut < 0 {
			return nfd(dst, src)
		}
		dst = nfd(dst, src[:cut])
		dst = utf8.AppendRune(dst, keep)
		src = src[cut+utf8.RuneLen(keep):]
	}
}

// appendLower appends tokenizers' lowercase of r (Rust's char::to_lowercase,
// one code point at a time).
func appendLower(dst []byte, r rune) []byte {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return append(dst, byte(r))
	}
	if i, ok := slices.BinarySearch(hfLowerFrom[:], r); ok {
		return utf8.AppendRune(dst, hfLowerTo[i])
	}
	if m, ok := hfLowerMulti[r]; ok {
		return append(dst, m...)
	}
	return utf8.AppendRune(dst, r)
}

// isIn reports whether r is in table, looking ASCII up in asciiClass.
func isIn(r rune, table *unicode.RangeTable, cls uint8) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&cls != 0
	}
	return unicode.Is(table, r)
}

// words splits normalised text as tokenizers' BertPreTokenizer does (split on
// hfPreSpace, removing it; isolate each hfPunct code point) and appends the
// word pieces of each word.
func (p *pipeline) words(s *scratch, b []byte) {
	start := -1
	for i := 0; i < len(b); {
		c := b[i]
		size := 1
		var space, punct bool
		if c < utf8.RuneSelf {
			cls := asciiClass[c]
			space, punct = cls&clsPreSpace != 0, cls&clsPunct != 0
		} else {
			var r rune
			r, size = utf8.DecodeRune(b[i:])
			space = unicode.Is(hfPreSpace, r)
			punct = !space && unicode.Is(hfPunct, r)
		}
		if space || punct {
			if start >= 0 {
				p.wordpiece(s, b[start:i])
				start = -1
			}
			if punct {
				p.wordpiece(s, b[i:i+size])
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		p.wordpiece(s, b[start:])
	}
}

// wordpiece appends the ids of word w as tokenizers' WordPiece model does:
// greedy longest-match-first from the left, continuing pieces looked up with
// the subword prefix, and the whole word as unk_token when it has more than
// max_input_chars_per_word code points or some position matches no piece.
func (p *pipeline) wordpiece(s *scratch, w []byte) {
	if utf8.RuneCount(w) > p.maxWordChars {
		s.ids = append(s.ids, p.unkID)
		return
	}
	mark := len(s.ids)
	for start := 0; start < len(w); {
		id, end, ok := longestPiece(p.vocab, p.subPrefix, p.maxTokenBytes, w, start, &s.word)
		if !ok {
			s.ids = append(s.ids[:mark], p.unkID)
			return
		}
		s.ids = append(s.ids, id)
		start = end
	}
}

// longestPiece finds the longest piece of w at byte start that vocab holds (looked
// up with prefix, the continuing-subword prefix, unless start is 0) and returns its
// id and where it ends; ok is false when none does. Candidates longer than maxBytes,
// the longest vocab entry, cannot match: the search starts at the last code point
// boundary within reach and shortens a code point at a time. buf is scratch.
func longestPiece(vocab map[string]int32, prefix string, maxBytes int, w []byte, start int, buf *[]byte) (id int32, end int, ok bool) {
	end = len(w)
	if end-start > maxBytes {
		end = start + maxBytes
		for end > start && !utf8.RuneStart(w[end]) {
			end--
		}
	}
	for end > start {
		if start == 0 {
			id, ok = vocab[string(w[:end])] // no allocation: map index by converted bytes
		} else {
			*buf = append(append((*buf)[:0], prefix...), w[start:end]...)
			id, ok = vocab[string(*buf)]
		}
		if ok {
			return id, end, true
		}
		_, size := utf8.DecodeLastRune(w[start:end])
		end -= size
	}
	return 0, end, false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
