package tokenize

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode/utf8"
)

// token is one token of a sequence: its id, the span of the original text it
// covers, and its text when that is not the vocabulary entry of id (an added
// token with stripped spaces, an unknown piece of a Unigram model).
type token struct {
	id  int32
	sp  span
	val string
}

// model is tokenizer.json's "model": it turns one pre-tokenized word into
// tokens.
type model interface {
	tokenize(dst []token, w normStr, s *genScratch) ([]token, error)
}

const modelTypes = "WordPiece, BPE or Unigram"

// wordPiece is the WordPiece model (see pipeline.wordpiece for the rule).
type wordPiece struct {
	vocab         map[string]int32
	unkID         int32
	prefix        string
	maxWordChars  int
	maxTokenBytes int
}

func (m *wordPiece) tokenize(dst []token, w normStr, s *genScratch) ([]token, error) {
	if len(w.r) > m.maxWordChars {
		return append(dst, token{id: m.unkID, sp: w.origin(0, len(w.r))}), nil
	}
	s.text = w.appendUTF8(s.text[:0])
	word := s.text
	s.idx = byteToRune(w.r, s.idx)
	mark := len(dst)
	for start := 0; start < len(word); {
		id, end, ok := longestPiece(m.vocab, m.prefix, m.maxTokenBytes, word, start, &s.word)
		if !ok {
			return append(dst[:mark], token{id: m.unkID, sp: w.origin(0, len(w.r))}), nil
		}
		dst = append(dst, token{id: id, sp: w.origin(s.idx[start], s.idx[end])})
		start = end
	}
	return dst, nil
}

// bpe is the BPE model: a word starts as one symbol per code point (with the
// continuing-subword prefix on all but the first and the end-of-word suffix on
// the last), unknown code points become their UTF-8 bytes' <0xXX> tokens
// (byte_fallback) or unk_token (consecutive ones fused when fuse_unk) or are
// dropped (no unk_token); then the adjacent pair of lowest merge rank, the
// leftmost among equals, is merged until no pair has a merge (tokenizers'
// Word::merge_all with dropout null).
type bpe struct {
	vocab        map[string]int32
	merges       map[[2]int32]bpeMerge
	unkID        int32 // -1: none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string
	suffix       string
	byteIDs      [256]int32 // <0xXX> ids, -1 where absent
}

type bpeMerge struct{ rank, id int32 }

// bpeSymbol is a symbol of a word being merged: code points [lo, hi) of the
// word, and its neighbours (-1 for none).
type bpeSymbol struct {
	id         int32
	lo, hi     int32
	prev, next int32
}

func (m *bpe) tokenize(dst []token, w normStr, s *genScratch) ([]token, error) {
	if len(w.r) == 0 {
		return dst, nil
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[string(w.r)]; ok {
			return append(dst, token{id: id, sp: w.origin(0, len(w.r))}), nil
		}
	}
	syms := s.syms[:0]
	add := func(id int32, lo, hi int) {
		syms = append(syms, bpeSymbol{id: id, lo: int32(lo), hi: int32(hi), prev: int32(len(syms) - 1), next: int32(len(syms) + 1)})
	}
	unk, unkLo, unkHi := false, 0, 0
	flushUnk := func() {
		if unk {
			add(m.unkID, unkLo, unkHi)
			unk = false
		}
	}
	for i, r := range w.r {
		s.word = s.word[:0]
		if i > 0 {
			s.word = append(s.word, m.prefix...)
		}
		s.word = utf8.AppendRune(s.word, r)
		if i == len(w.r)-1 {
			s.word = append(s.word, m.suffix...)
		}
		if id, ok := m.vocab[string(s.word)]; ok {
			flushUnk()
			add(id, i, i+1)
			continue
		}
		if m.byteFallback {
			all := true
			for _, b := range s.word {
				if m.byteIDs[b] < 0 {
					all = false
					break
				}
			}
			if all {
				// tokenizers leaves a pending unk where it is and adds the
				// bytes after it.
				for _, b := range s.word {
					syms = append(syms, bpeSymbol{id: m.byteIDs[b], lo: int32(i), hi: int32(i + 1), prev: int32(len(syms) - 1), next: int32(len(syms) + 1)})
				}
				continue
			}
		}
		if m.unkID < 0 {
			continue
		}
		switch {
		case unk && m.fuseUnk:
			unkHi = i + 1
		default:
			flushUnk()
			unk, unkLo, unkHi = true, i, i+1
		}
	}
	flushUnk()
	if len(syms) == 0 {
		s.syms = syms
		return dst, nil
	}
	syms[len(syms)-1].next = -1

	// Merge: a heap of candidate pairs by (rank, position of the left symbol).
	h := s.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[[2]int32{syms[i].id, syms[i+1].id}]; ok {
			h = heapPush(h, bpeCand{mg.rank, int32(i), mg.id})
		}
	}
	for len(h) > 0 {
		var top bpeCand
		top, h = heapPop(h)
		a := &syms[top.pos]
		if a.lo == a.hi || a.next < 0 {
			continue
		}
		b := &syms[a.next]
		if mg, ok := m.merges[[2]int32{a.id, b.id}]; !ok || mg.id != top.id {
			continue // stale
		}
		a.id, a.hi = top.id, b.hi
		b.lo = b.hi // removed
		a.next = b.next
		if a.next >= 0 {
			syms[a.next].prev = top.pos
		}
		if a.prev >= 0 {
			if mg, ok := m.merges[[2]int32{syms[a.prev].id, a.id}]; ok {
				h = heapPush(h, bpeCand{mg.rank, a.prev, mg.id})
			}
		}
		if a.next >= 0 {
			if mg, ok := m.merges[[2]int32{a.id, syms[a.next].id}]; ok {
				h = heapPush(h, bpeCand{mg.rank, top.pos, mg.id})
			}
		}
	}
	s.heap = h
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, token{id: syms[i].id, sp: w.origin(int(syms[i].lo), int(syms[i].hi))})
	}
	s.syms = syms
	return dst, nil
}

// bpeCand is a candidate merge of the symbol at pos with its next.
type bpeCand struct{ rank, pos, id int32 }

func candLess(a, b bpeCand) bool { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos) }

func heapPush(h []bpeCand, c bpeCand) []bpeCand {
	h = append(h, c)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !candLess(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []bpeCand) (bpeCand, []bpeCand) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && candLess(h[l], h[m]) {
			m = l
		}
		if r < n && candLess(h[r], h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top, h
}

// unigram is the Unigram model: the segmentation of the word into vocabulary
// pieces with the highest total score (Viterbi over code point boundaries,
// candidates shortest first, ties kept by the first), where a code point no
// single piece covers is an unknown piece scoring the lowest score less 10;
// adjacent unknown pieces are fused, and each becomes its bytes' <0xXX>
// tokens (byte_fallback) or unk_id (tokenizers' Unigram::encode_optimized
// and tokenize).
type unigram struct {
	ids          map[string]int32
	scores       []float64
	prefixes     map[string]struct{} // every proper prefix of a piece, to stop the search
	maxPiece     int                 // longest piece in bytes
	unkID        int32               // -1: none
	byteFallback bool
	unkScore     float64
	byteIDs      [256]int32
}

const unigramUnkPenalty = 10.0

func (m *unigram) tokenize(dst []token, w normStr, s *genScratch) ([]token, error) {
	if len(w.r) == 0 {
		return dst, nil
	}
	text := string(w.r)
	s.idx = byteToRune(w.r, s.idx)
	n := len(text)
	nodes := s.nodes[:0]
	for range n + 1 {
		nodes = append(nodes, viterbiNode{from: -1})
	}
	for start := 0; start < n; {
		base := nodes[start].score
		_, mb := utf8.DecodeRuneInString(text[start:])
		single := false
		for end := start + 1; end <= n && end-start <= m.maxPiece; end++ {
			if end < n && !utf8.RuneStart(text[end]) {
				continue
			}
			piece := text[start:end]
			if id, ok := m.ids[piece]; ok {
				c := base + m.scores[id]
				if nd := &nodes[end]; nd.from < 0 || c > nd.score {
					nd.score, nd.from, nd.id = c, start, id
				}
				if end-start == mb {
					single = true
				}
			}
			if _, ok := m.prefixes[piece]; !ok {
				break
			}
		}
		if !single {
			if m.unkID < 0 {
				r, _ := utf8.DecodeRuneInString(text[start:])
				return dst, fmt.Errorf("%w: %q", ErrUnknown, r)
			}
			c := base + m.unkScore
			if nd := &nodes[start+mb]; nd.from < 0 || c > nd.score {
				nd.score, nd.from, nd.id = c, start, m.unkID
			}
		}
		start += mb
	}
	s.nodes = nodes
	// Back from the end, fusing runs of unknown pieces.
	mark := len(dst)
	for end := n; end > 0; {
		nd := nodes[end]
		lo := nd.from
		if nd.id == m.unkID {
			for lo > 0 && nodes[lo].id == m.unkID {
				lo = nodes[lo].from
			}
		}
		dst = append(dst, token{id: nd.id, sp: span{int32(lo), int32(end)}})
		end = lo
	}
	// Reverse, then map byte ranges to spans; unknown pieces fall back to bytes.
	for i, j := mark, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	out := dst[:mark]
	s.toks = append(s.toks[:0], dst[mark:]...)
	for _, t := range s.toks {
		lo, hi := int(t.sp.start), int(t.sp.end)
		sp := w.origin(s.idx[lo], s.idx[hi])
		if t.id != m.unkID {
			out = append(out, token{id: t.id, sp: sp})
			continue
		}
		piece := text[lo:hi]
		if id, ok := m.ids[piece]; ok { // an unknown piece that is the unk token itself
			out = append(out, token{id: id, sp: sp})
			continue
		}
		if m.byteFallback {
			all := true
			for i := 0; i < len(piece); i++ {
				if m.byteIDs[piece[i]] < 0 {
					all = false
					break
				}
			}
			if all {
				for i := 0; i < len(piece); i++ {
					out = append(out, token{id: m.byteIDs[piece[i]], sp: sp})
				}
				continue
			}
		}
		out = append(out, token{id: m.unkID, sp: sp, val: piece})
	}
	return out, nil
}

type viterbiNode struct {
	score float64
	from  int
	id    int32
}

// parseModel reads tokenizer.json's model. vocab is filled with the model's
// vocabulary (token to id).
func parseModel(raw json.RawMessage) (model, map[string]int32, error) {
	typ, err := typeOf(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: model: %w", ErrFormat, err)
	}
	bad := func(err error) error { return fmt.Errorf("%w: model %s: %w", ErrFormat, typ, err) }
	switch typ {
	case "WordPiece":
		return parseWordPiece(raw, bad)
	case "BPE":
		return parseBPE(raw, bad)
	case "Unigram":
		return parseUnigram(raw, bad)
	}
	return nil, nil, fmt.Errorf("%w: model type %q; supported: %s", ErrUnsupported, typ, modelTypes)
}

// parseWordPiece parses a WordPiece model; bad wraps a JSON error.
func parseWordPiece(raw json.RawMessage, bad func(error) error) (model, map[string]int32, error) {
	var v struct {
		UnkToken                *string          `json:"unk_token"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    *int             `json:"max_input_chars_per_word"`
		Vocab                   map[string]int64 `json:"vocab"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, nil, bad(err)
	}
	vocab, err := checkVocab(v.Vocab)
	if err != nil {
		return nil, nil, err
	}
	m := &wordPiece{vocab: vocab, prefix: "##", maxWordChars: 100}
	unk := "[UNK]"
	if v.UnkToken != nil {
		unk = *v.UnkToken
	}
	if v.ContinuingSubwordPrefix != nil {
		m.prefix = *v.ContinuingSubwordPrefix
	}
	if v.MaxInputCharsPerWord != nil {
		m.maxWordChars = *v.MaxInputCharsPerWord
	}
	id, ok := vocab[unk]
	if !ok {
		return nil, nil, fmt.Errorf("%w: WordPiece unk_token %q not in the vocab", ErrFormat, unk)
	}
	m.unkID = id
	for tok := range vocab {
		m.maxTokenBytes = max(m.maxTokenBytes, len(tok))
	}
	return m, vocab, nil
}

// parseBPE parses a BPE model; bad wraps a JSON error.
func parseBPE(raw json.RawMessage, bad func(error) error) (model, map[string]int32, error) {
	var v struct {
		Dropout                 *float64         `json:"dropout"`
		UnkToken                *string          `json:"unk_token"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
		FuseUnk                 bool             `json:"fuse_unk"`
		ByteFallback            bool             `json:"byte_fallback"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		Vocab                   map[string]int64 `json:"vocab"`
		Merges                  []json.RawMessage
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, nil, bad(err)
	}
	if v.Dropout != nil && *v.Dropout != 0 {
		return nil, nil, fmt.Errorf("%w: BPE dropout %v; only null (no dropout) is reproducible", ErrUnsupported, *v.Dropout)
	}
	vocab, err := checkVocab(v.Vocab)
	if err != nil {
		return nil, nil, err
	}
	m := &bpe{vocab: vocab, unkID: -1, fuseUnk: v.FuseUnk, byteFallback: v.ByteFallback, ignoreMerges: v.IgnoreMerges}
	if v.ContinuingSubwordPrefix != nil {
		m.prefix = *v.ContinuingSubwordPrefix
	}
	if v.EndOfWordSuffix != nil {
		m.suffix = *v.EndOfWordSuffix
	}
	if v.UnkToken != nil {
		id, ok := vocab[*v.UnkToken]
		if !ok {
			return nil, nil, fmt.Errorf("%w: BPE unk_token %q not in the vocab", ErrFormat, *v.UnkToken)
		}
		m.unkID = id
	}
	m.byteIDs = byteTokenIDs(vocab)
	m.merges = make(map[[2]int32]bpeMerge, len(v.Merges))
	for rank, rm := range v.Merges {
		a, b, err := parseMerge(rm)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: BPE merge %d: %w", ErrFormat, rank, err)
		}
		ia, ok1 := vocab[a]
		ib, ok2 := vocab[b]
		if !ok1 || !ok2 {
			unknown := a
			if ok1 {
				unknown = b
			}
			return nil, nil, fmt.Errorf("%w: BPE merge %d (%q %q) names %q, which is not in the vocab", ErrFormat, rank, a, b, unknown)
		}
		joined := a + b
		if m.prefix != "" && len(b) >= len(m.prefix) {
			joined = a + b[len(m.prefix):]
		}
		id, ok := vocab[joined]
		if !ok {
			return nil, nil, fmt.Errorf("%w: BPE merge %d (%q %q) makes %q, which is not in the vocab", ErrFormat, rank, a, b, joined)
		}
		if _, dup := m.merges[[2]int32{ia, ib}]; !dup {
			m.merges[[2]int32{ia, ib}] = bpeMerge{int32(rank), id}
		}
	}
	return m, vocab, nil
}

// parseUnigram parses a Unigram model; bad wraps a JSON error.
func parseUnigram(raw json.RawMessage, bad func(error) error) (model, map[string]int32, error) {
	var v struct {
		UnkID        *int64            `json:"unk_id"`
		ByteFallback bool              `json:"byte_fallback"`
		Vocab        []json.RawMessage `json:"vocab"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, nil, bad(err)
	}
	if len(v.Vocab) == 0 {
		return nil, nil, fmt.Errorf("%w: Unigram model has no vocab", ErrFormat)
	}
	m := &unigram{ids: make(map[string]int32, len(v.Vocab)), prefixes: map[string]struct{}{}, unkID: -1, byteFallback: v.ByteFallback}
	minScore := math.Inf(1)
	for i, e := range v.Vocab {
		var pair []json.RawMessage
		var piece string
		var score float64
		if err := json.Unmarshal(e, &pair); err != nil || len(pair) != 2 {
			return nil, nil, fmt.Errorf("%w: Unigram vocab entry %d is not [piece, score]", ErrFormat, i)
		}
		if err := json.Unmarshal(pair[0], &piece); err != nil {
			return nil, nil, fmt.Errorf("%w: Unigram vocab entry %d: %w", ErrFormat, i, err)
		}
		if err := json.Unmarshal(pair[1], &score); err != nil {
			return nil, nil, fmt.Errorf("%w: Unigram vocab entry %d: %w", ErrFormat, i, err)
		}
		if i > math.MaxInt32 {
			return nil, nil, fmt.Errorf("%w: Unigram vocab too large", ErrFormat)
		}
		if _, dup := m.ids[piece]; !dup {
			m.ids[piece] = int32(i)
		}
		m.scores = append(m.scores, score)
		minScore = min(minScore, score)
		m.maxPiece = max(m.maxPiece, len(piece))
		for k := 1; k < len(piece); k++ {
			if utf8.RuneStart(piece[k]) {
				m.prefixes[piece[:k]] = struct{}{}
			}
		}
	}
	m.unkScore = minScore - unigramUnkPenalty
	if v.UnkID != nil {
		if *v.UnkID < 0 || *v.UnkID >= int64(len(v.Vocab)) {
			return nil, nil, fmt.Errorf("%w: Unigram unk_id %d outside the vocab of %d", ErrFormat, *v.UnkID, len(v.Vocab))
		}
		m.unkID = int32(*v.UnkID)
	}
	m.byteIDs = byteTokenIDs(m.ids)
	return m, m.ids, nil
}

// checkVocab converts a token-to-id map, refusing ids outside int32.
func checkVocab(v map[string]int64) (map[string]int32, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: model has no vocab", ErrFormat)
	}
	out := make(map[string]int32, len(v))
	for tok, id := range v {
		if id < 0 || id > math.MaxInt32 {
			return nil, fmt.Errorf("%w: vocab id %d of %q out of range", ErrFormat, id, tok)
		}
		out[tok] = int32(id)
	}
	return out, nil
}

// byteTokenIDs returns the ids of the <0xXX> tokens, -1 where absent.
func byteTokenIDs(vocab map[string]int32) (ids [256]int32) {
	for b := range 256 {
		ids[b] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			ids[b] = id
		}
	}
	return ids
}

// parseMerge reads a merge, "a b" (older files) or ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		a, b, ok := strings.Cut(s, " ")
		if !ok {
			return "", "", fmt.Errorf("%q is not two tokens separated by a space", s)
		}
		return a, b, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("%s is neither \"a b\" nor [\"a\", \"b\"]", raw)
	}
	return pair[0], pair[1], nil
}

// cachedModel remembers the tokens of words it has seen, as the Rust library's
// BPE and Unigram caches do: natural text repeats its words, and a lookup is
// much cheaper than merging or Viterbi. The model runs on the word with each
// code point's span set to its own index, so a cached result holds code point
// ranges, mapped to the word's real spans on every use. At most
// wordCacheSize words of up to wordCacheMaxRunes code points are kept; errors
// are not cached. A word is looked up by its UTF-8 in scratch, so a hit
// allocates nothing. Safe for concurrent use.
type cachedModel struct {
	m     model
	mu    sync.RWMutex
	cache map[string][]cachedToken // guarded by mu; the word's UTF-8 -> its tokens
}

type cachedToken struct {
	id     int32
	lo, hi int32
	val    string
}

const (
	wordCacheSize     = 1 << 16
	wordCacheMaxRunes = 64
)

func (c *cachedModel) tokenize(dst []token, w normStr, s *genScratch) ([]token, error) {
	if len(w.r) > wordCacheMaxRunes {
		return c.m.tokenize(dst, w, s)
	}
	s.key = w.appendUTF8(s.key[:0])
	c.mu.RLock()
	ct, ok := c.cache[string(s.key)] // no allocation: the compiler looks up without copying
	c.mu.RUnlock()
	if ok {
		for _, t := range ct {
			dst = append(dst, token{id: t.id, sp: w.origin(int(t.lo), int(t.hi)), val: t.val})
		}
		return dst, nil
	}
	s.ident = s.ident[:0]
	for i := range w.r {
		s.ident = append(s.ident, span{int32(i), int32(i + 1)})
	}
	mark := len(dst)
	dst, err := c.m.tokenize(dst, normStr{r: w.r, o: s.ident}, s)
	if err != nil {
		return dst, err
	}
	ct = make([]cachedToken, len(dst)-mark)
	for i, t := range dst[mark:] {
		ct[i] = cachedToken{id: t.id, lo: t.sp.start, hi: t.sp.end, val: t.val}
		dst[mark+i].sp = w.origin(int(t.sp.start), int(t.sp.end))
	}
	c.mu.Lock()
	if c.cache == nil {
		c.cache = make(map[string][]cachedToken)
	}
	if _, dup := c.cache[string(s.key)]; !dup && len(c.cache) < wordCacheSize {
		c.cache[string(s.key)] = ct
	}
	c.mu.Unlock()
	return dst, nil
}
