package tokenize

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// general is the tokenizer.json pipeline in full (tokenizers' Tokenizer::encode):
// added tokens cut out of the raw text, the normalizer, added tokens with
// normalized set cut out of the normalised text, the pre-tokenizer, the model,
// truncation, the post-processor. Every token keeps the span of the original
// text it covers. It is read-only after parseGeneral.
type general struct {
	rawAdded  []addedTok // matched in the raw text
	normAdded []addedTok // matched in the normalised text (content normalised)
	norm      normalizer
	pre       preTokenizer
	model     model
	post      postProcessor
	idToTok   map[int32]string // model vocabulary and added tokens
	vocab     map[string]int32 // the same, token to id
	vocabSize int              // largest id + 1
}

// addedTok is an entry of tokenizer.json's added_tokens.
type addedTok struct {
	content                    string
	id                         int32
	singleWord, lstrip, rstrip bool
}

// genScratch holds one encoding's working buffers.
type genScratch struct {
	idx   []int
	word  []byte
	text  []byte // a word's UTF-8 (WordPiece)
	syms  []bpeSymbol
	heap  []bpeCand
	nodes []viterbiNode
	toks  []token
	words []normStr
	next  []int
	ident []span
	key   []byte // a word's UTF-8, cachedModel's lookup key
}

// parseGeneral builds the general pipeline of a decoded tokenizer.json.
func parseGeneral(fc *fileConfig) (*general, error) {
	g := &general{idToTok: map[int32]string{}}
	var err error
	var vocab map[string]int32
	if g.model, vocab, err = parseModel(fc.ModelRaw); err != nil {
		return nil, err
	}
	g.model = &cachedModel{m: g.model}
	g.vocab = make(map[string]int32, len(vocab)+len(fc.AddedTokens))
	for tok, id := range vocab {
		g.vocab[tok] = id
		if _, dup := g.idToTok[id]; !dup || tok < g.idToTok[id] {
			g.idToTok[id] = tok
		}
		g.vocabSize = max(g.vocabSize, int(id)+1)
	}
	if g.norm, err = parseNormalizer(fc.Normalizer); err != nil {
		return nil, err
	}
	if g.pre, err = parsePreTokenizer(fc.PreTokenizer); err != nil {
		return nil, err
	}
	if g.post, err = parsePostProcessor(fc.PostProcessor); err != nil {
		return nil, err
	}
	for _, at := range fc.AddedTokens {
		if at.Content == "" {
			return nil, fmt.Errorf("%w: added token %d has no content", ErrFormat, at.ID)
		}
		if at.ID < 0 || at.ID > math.MaxInt32 {
			return nil, fmt.Errorf("%w: added token %q has id %d", ErrFormat, at.Content, at.ID)
		}
		a := addedTok{content: at.Content, id: int32(at.ID), singleWord: at.SingleWord, lstrip: at.LStrip, rstrip: at.RStrip}
		g.idToTok[a.id] = at.Content
		g.vocab[at.Content] = a.id
		g.vocabSize = max(g.vocabSize, int(a.id)+1)
		if at.Normalized && g.norm != nil {
			a.content = string(g.norm.normalize(newNormStr(at.Content, 0)).r)
			if a.content == "" {
				continue
			}
			g.normAdded = append(g.normAdded, a)
		} else {
			g.rawAdded = append(g.rawAdded, a)
		}
	}
	return g, nil
}

// encodeSeq tokenizes one sequence (without special tokens of the template).
func (g *general) encodeSeq(s *genScratch, text string) ([]token, error) {
	var out []token
	var err error
	for _, m := range findAdded(s, text, g.rawAdded) {
		if m.tok >= 0 {
			out = append(out, token{id: g.rawAdded[m.tok].id, sp: span{int32(m.lo), int32(m.hi)}, val: text[m.lo:m.hi]})
			continue
		}
		n := newNormStr(text[m.lo:m.hi], m.lo)
		if g.norm != nil {
			n = g.norm.normalize(n)
		}
		if len(g.normAdded) == 0 {
			if out, err = g.words(s, out, n); err != nil {
				return nil, err
			}
			continue
		}
		ns := string(n.r)
		idx := byteToRune(n.r, nil)
		for _, nm := range findAdded(s, ns, g.normAdded) {
			lo, hi := idx[nm.lo], idx[nm.hi]
			if nm.tok >= 0 {
				out = append(out, token{id: g.normAdded[nm.tok].id, sp: n.origin(lo, hi), val: ns[nm.lo:nm.hi]})
				continue
			}
			if out, err = g.words(s, out, n.slice(lo, hi)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// words pre-tokenizes n and appends the model's tokens for each word.
func (g *general) words(s *genScratch, dst []token, n normStr) ([]token, error) {
	if len(n.r) == 0 {
		return dst, nil
	}
	s.words = s.words[:0]
	if g.pre != nil {
		s.words = g.pre.split(s.words, n)
	} else {
		s.words = append(s.words, n)
	}
	var err error
	for _, w := range s.words {
		if dst, err = g.model.tokenize(dst, w, s); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// addedMatch is a piece of text: an added token (tok >= 0, its index) or the
// text between them (tok -1), as byte offsets.
type addedMatch struct{ lo, hi, tok int }

// findAdded cuts text at the added tokens as tokenizers' AddedVocabulary does:
// non-overlapping matches, leftmost first and the longest of those starting at
// one place (aho-corasick LeftmostLongest); a single_word token is skipped
// unless no letter or digit touches it on either side; lstrip and rstrip
// widen the match over the white space before and after it.
func findAdded(s *genScratch, text string, toks []addedTok) []addedMatch {
	if len(toks) == 0 {
		return []addedMatch{{0, len(text), -1}}
	}
	s.next = slices.Grow(s.next[:0], len(toks))[:len(toks)]
	for k := range s.next {
		s.next[k] = -2
	}
	var out []addedMatch
	startOff := 0
	for pos := 0; pos <= len(text); {
		best, bestAt := -1, len(text)+1
		for k := range toks {
			if s.next[k] != -1 && s.next[k] < pos {
				if i := strings.Index(text[pos:], toks[k].content); i < 0 {
					s.next[k] = -1
				} else {
					s.next[k] = pos + i
				}
			}
			if at := s.next[k]; at >= 0 && (at < bestAt || (at == bestAt && len(toks[k].content) > len(toks[best].content))) {
				best, bestAt = k, at
			}
		}
		if best < 0 {
			break
		}
		t := toks[best]
		start, stop := bestAt, bestAt+len(t.content)
		pos = stop
		if t.singleWord {
			before, _ := utf8.DecodeLastRuneInString(text[:start])
			after, _ := utf8.DecodeRuneInString(text[stop:])
			if (start > 0 && isRustAlnum(before)) || (stop < len(text) && isRustAlnum(after)) {
				continue
			}
		}
		if t.lstrip {
			ns := start
			for ns > 0 {
				r, size := utf8.DecodeLastRuneInString(text[:ns])
				if !isRustSpace(r) {
					break
				}
				ns -= size
			}
			start = max(ns, startOff)
		}
		if t.rstrip {
			for stop < len(text) {
				r, size := utf8.DecodeRuneInString(text[stop:])
				if !isRustSpace(r) {
					break
				}
				stop += size
			}
		}
		if startOff < start {
			out = append(out, addedMatch{startOff, start, -1})
		}
		out = append(out, addedMatch{start, stop, best})
		startOff = stop
	}
	if startOff < len(text) {
		out = append(out, addedMatch{startOff, len(text), -1})
	}
	return out
}

// isRustAlnum is Rust's char::is_alphanumeric.
func isRustAlnum(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }

// encoded is a post-processed encoding with what Detail reports.
type encoded struct {
	toks   []token
	types  []int64
	seq    []int8 // 0, 1, or -1 for a special token
	n      int    // length before truncation
	trunc  bool
	single bool
}

// encode tokenizes one text or a pair, truncates to maxLen as tokenizers'
// LongestFirst (direction right, stride 0) and applies the post-processor.
func (g *general) encode(s *genScratch, maxLen int, texts ...string) (encoded, error) {
	pair := len(texts) == 2
	var seqs [2][]token
	for i, t := range texts {
		toks, err := g.encodeSeq(s, t)
		if err != nil {
			if pair {
				return encoded{}, fmt.Errorf("sequence %d: %w", i+1, err)
			}
			return encoded{}, err
		}
		seqs[i] = toks
	}
	added := numAdded(g.post, pair)
	total := len(seqs[0]) + len(seqs[1])
	e := encoded{n: total + added}
	if maxLen < added {
		return encoded{}, fmt.Errorf("%w: MaxLen %d is below the %d special tokens the template adds to a pair", ErrOption, maxLen, added)
	}
	if limit := maxLen - added; total > limit {
		e.trunc = true
		if !pair {
			seqs[0] = seqs[0][:limit]
		} else {
			n1, n2 := truncatePair(len(seqs[0]), len(seqs[1]), limit)
			seqs[0], seqs[1] = seqs[0][:min(n1, len(seqs[0]))], seqs[1][:min(n2, len(seqs[1]))]
		}
	}
	var out postOut
	if g.post == nil {
		out.seq(seqs[0], 0, 0)
		if pair {
			out.seq(seqs[1], 1, 1)
		}
	} else {
		out = g.post.process(seqs[0], seqs[1], pair, g.tokenText)
	}
	e.toks, e.types, e.seq = out.toks, out.types, out.seqs
	return e, nil
}

// truncatePair is tokenizers' LongestFirst for a pair of lengths n1, n2 that
// together exceed limit: the longer one is cut first, then both to half.
func truncatePair(n1, n2, limit int) (int, int) {
	swap := false
	if n1 > n2 {
		n1, n2, swap = n2, n1, true
	}
	if n1 > limit {
		n2 = n1
	} else {
		n2 = max(n1, limit-n1)
	}
	if n1+n2 > limit {
		n1 = limit / 2
		n2 = n1 + limit%2
	}
	if swap {
		n1, n2 = n2, n1
	}
	return n1, n2
}

// tokenText is the text of t as tokenizers reports it.
func (g *general) tokenText(t token) string {
	if t.val != "" {
		return t.val
	}
	return g.idToTok[t.id]
}
