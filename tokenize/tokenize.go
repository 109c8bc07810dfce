package tokenize

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// DefaultMaxLen is the truncation length used when neither Options.MaxLen nor
// tokenizer.json sets one (BERT's position embeddings).
const DefaultMaxLen = 512

// Options configures Load. The zero value is valid.
type Options struct {
	// MaxLen is the longest encoding in tokens, special tokens included.
	// Longer texts keep their first MaxLen-2 tokens between [CLS] and [SEP]
	// (tokenizers' LongestFirst strategy, direction Right, stride 0, which is
	// what one sequence gets). It should not exceed the model's position
	// embeddings (max_position_embeddings).
	// Default (0): the truncation max_length of tokenizer.json, else
	// DefaultMaxLen (512).
	MaxLen int
	// Prefix is put before every text before it is encoded: the instruction a
	// model card asks for (e5's "query: "), as sentence-transformers' prompts
	// do (Encode, EncodeInto and EncodeAll; not the pair and detailed forms).
	// Default "": texts as they are.
	Prefix string
}

// Encoding is one text's model inputs, unpadded: every slice has the same
// length, at most the tokenizer's MaxLen.
type Encoding struct {
	IDs     []int64 // input_ids: [CLS] word pieces [SEP]
	TypeIDs []int64 // token_type_ids: the template's type ids (all 0 for BERT)
	Mask    []int64 // attention_mask: all 1; padding is the batcher's business

	// NumTokens is the length the encoding would have without truncation,
	// special tokens included; Truncated reports NumTokens > len(IDs).
	NumTokens int
	Truncated bool
}

// Tokenizer turns text into the int64 inputs of a BERT-family model, as
// HuggingFace tokenizers does with the same tokenizer.json. It is safe for
// concurrent use.
type Tokenizer struct {
	p *pipeline // BERT fast path for single texts; nil when the file is not BERT-shaped
	// g is the general pipeline: pairs, offsets, other models. With the fast path it
	// is parsed again from data when first needed (about 9 MB of tables for a BERT
	// vocabulary that an extraction never touches).
	g         *general
	gOnce     sync.Once
	gErr      error
	data      []byte // the file, while g is not parsed
	vocabSize int
	path      string
	sha256    string
	maxLen    int
	prefix    string
	padID     int64
	pool      sync.Pool // *scratch
	gpool     sync.Pool // *genScratch
}

// Load reads a tokenizer.json. The file's own padding is ignored (batches are
// padded by the caller, to their own longest row, with PadID) and its
// truncation is replaced by opts.MaxLen. Load fails with ErrUnsupported when
// the file describes a pipeline other than BERT WordPiece (see the package
// comment), with ErrFormat when it is malformed; errors name the path.
func Load(path string, opts Options) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err) // names the path
	}
	p, g, fc, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	t := &Tokenizer{p: p, g: g, vocabSize: g.vocabSize, path: path, sha256: hex.EncodeToString(sum[:]), prefix: opts.Prefix}

	switch {
	case !utf8.ValidString(opts.Prefix):
		return nil, fmt.Errorf("%s: %w: Prefix %q is not valid UTF-8", path, ErrOption, opts.Prefix)
	case opts.MaxLen < 0:
		return nil, fmt.Errorf("%s: %w: MaxLen %d is negative", path, ErrOption, opts.MaxLen)
	case opts.MaxLen > 0:
		t.maxLen = opts.MaxLen
	case fc.Truncation != nil && fc.Truncation.MaxLength > 0:
		t.maxLen = fc.Truncation.MaxLength
	default:
		t.maxLen = DefaultMaxLen
	}
	if n := numAdded(g.post, false); t.maxLen < n {
		return nil, fmt.Errorf("%s: %w: MaxLen %d is below the %d special tokens the template adds", path, ErrOption, t.maxLen, n)
	}

	// Pad id: padding.pad_id of the file, else the id of its pad token,
	// "[PAD]" or "<pad>".
	switch {
	case fc.Padding != nil && fc.Padding.PadID != nil:
		t.padID = int64(*fc.Padding.PadID)
	default:
		cands := []string{"[PAD]", "<pad>"}
		if fc.Padding != nil && fc.Padding.PadToken != "" {
			cands = []string{fc.Padding.PadToken}
		}
		t.padID = -1
		for _, tok := range cands {
			if id, ok := g.vocab[tok]; ok {
				t.padID = int64(id)
				break
			}
		}
		if t.padID < 0 {
			return nil, fmt.Errorf("%s: %w: no padding.pad_id and no %s token", path, ErrFormat, strings.Join(cands, " or "))
		}
	}
	t.pool.New = func() any { return new(scratch) }
	t.gpool.New = func() any { return new(genScratch) }
	if p != nil {
		t.g, t.data = nil, data
	}
	return t, nil
}

// general returns the general pipeline, parsing it on first use when Load dropped it.
func (t *Tokenizer) general() (*general, error) {
	t.gOnce.Do(func() {
		if t.g != nil {
			return
		}
		_, t.g, _, t.gErr = parseConfig(t.data)
		if t.gErr != nil { // it parsed at Load
			t.gErr = fmt.Errorf("%s: %w", t.path, t.gErr)
		}
		t.data = nil
	})
	return t.g, t.gErr
}

// SHA256 returns the hex sha256 of the tokenizer.json bytes, to record with
// features computed from its encodings.
func (t *Tokenizer) SHA256() string { return t.sha256 }

// Path returns the file the tokenizer was loaded from.
func (t *Tokenizer) Path() string { return t.path }

// MaxLen returns the truncation length in tokens, special tokens included.
func (t *Tokenizer) MaxLen() int { return t.maxLen }

// Prefix returns the text put before every text (Options.Prefix).
func (t *Tokenizer) Prefix() string { return t.prefix }

// PadID returns the input id to pad input_ids with.
func (t *Tokenizer) PadID() int64 { return t.padID }

// Encode tokenizes text. Text that is not valid UTF-8 gives an error wrapping
// ErrInvalidUTF8 (the caller names the row). Empty text gives [CLS] [SEP].
func (t *Tokenizer) Encode(text string) (Encoding, error) {
	var e Encoding
	err := t.EncodeInto(&e, text)
	return e, err
}

// EncodeInto is Encode writing into dst, whose slices are reused when large
// enough: with a dst kept across calls, encoding allocates nothing. On error
// dst is left with empty slices.
func (t *Tokenizer) EncodeInto(dst *Encoding, text string) error {
	dst.IDs, dst.TypeIDs, dst.Mask = dst.IDs[:0], dst.TypeIDs[:0], dst.Mask[:0]
	dst.NumTokens, dst.Truncated = 0, false
	if !utf8.ValidString(text) {
		return fmt.Errorf("%w at byte %d", ErrInvalidUTF8, invalidAt(text))
	}
	if t.prefix != "" {
		text = t.prefix + text
	}
	if t.p == nil {
		return t.encodeGeneral(dst, nil, text)
	}
	s := t.pool.Get().(*scratch)
	defer t.pool.Put(s)
	p := t.p
	p.encode(s, text)

	added := p.numAdded()
	ids := s.ids
	dst.NumTokens = len(ids) + added
	if keep := t.maxLen - added; len(ids) > keep {
		ids = ids[:keep]
		dst.Truncated = true
	}
	n := len(ids) + added
	dst.IDs = slices.Grow(dst.IDs, n)
	dst.TypeIDs = slices.Grow(dst.TypeIDs, n)
	dst.Mask = slices.Grow(dst.Mask, n)
	appendPiece := func(ids []int32, typeID int64) {
		for _, id := range ids {
			dst.IDs = append(dst.IDs, int64(id))
			dst.TypeIDs = append(dst.TypeIDs, typeID)
			dst.Mask = append(dst.Mask, 1)
		}
	}
	for _, tp := range p.prefix {
		appendPiece(tp.ids, tp.typeID)
	}
	appendPiece(ids, p.seqTypeID)
	for _, tp := range p.suffix {
		appendPiece(tp.ids, tp.typeID)
	}
	return nil
}

// EncodeAll encodes texts on workers goroutines (0 or less: GOMAXPROCS) and
// returns their encodings in order. The encodings' slices are carved out of a
// few large blocks (capacity limited to their length, so appending to one
// copies it). EncodeAll stops at the first text that fails and returns an
// error naming its index (the lowest failing index when several fail at once).
func (t *Tokenizer) EncodeAll(texts []string, workers int) ([]Encoding, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	const chunk = 64 // texts a worker takes at a time
	workers = max(1, min(workers, (len(texts)+chunk-1)/chunk))
	out := make([]Encoding, len(texts))
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		errAt  = len(texts)
		err    error
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			var tmp Encoding
			var slab []int64
			carve := func(src []int64) []int64 {
				if cap(slab)-len(slab) < len(src) {
					slab = make([]int64, 0, max(16<<10, len(src)))
				}
				n := len(slab)
				slab = append(slab, src...)
				return slab[n:len(slab):len(slab)]
			}
			for !failed.Load() {
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(texts) {
					return
				}
				for i := lo; i < min(lo+chunk, len(texts)); i++ {
					if e := t.EncodeInto(&tmp, texts[i]); e != nil {
						mu.Lock()
						if i < errAt {
							errAt, err = i, fmt.Errorf("text %d: %w", i, e)
						}
						mu.Unlock()
						failed.Store(true)
						return
					}
					out[i] = Encoding{
						IDs: carve(tmp.IDs), TypeIDs: carve(tmp.TypeIDs), Mask: carve(tmp.Mask),
						NumTokens: tmp.NumTokens, Truncated: tmp.Truncated,
					}
				}
			}
		})
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return out, nil
}

// invalidAt returns the byte offset of the first invalid UTF-8 sequence in s.
func invalidAt(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(s)
}

// Detail is what an encoding's tokens are, beside their ids: for each token
// its text (the vocabulary entry, or for an added token and an unknown
// Unigram piece the text it matched, as tokenizers reports them), its byte
// span [start, end) in the text of its own sequence ([0, 0] for special
// tokens the template adds), and which sequence it belongs to (0 the text, 1
// the pair, -1 a special token of the template).
type Detail struct {
	Tokens   []string
	Offsets  [][2]int
	Sequence []int
}

// EncodePair encodes a sentence pair with the template's pair form (for BERT
// [CLS] text [SEP] pair [SEP], the pair's part with type id 1). When the two
// exceed MaxLen, tokenizers' LongestFirst cuts the longer one down to the
// shorter, then both to half of what is left (the first gets the smaller
// half). Errors name which sequence is invalid UTF-8.
func (t *Tokenizer) EncodePair(text, pair string) (Encoding, error) {
	var e Encoding
	err := t.EncodePairInto(&e, text, pair)
	return e, err
}

// EncodePairInto is EncodePair writing into dst, as EncodeInto does.
func (t *Tokenizer) EncodePairInto(dst *Encoding, text, pair string) error {
	return t.encodeGeneral(dst, nil, text, pair)
}

// EncodeDetailed encodes one text, or a pair when pair is given, and reports
// each token's text, offsets and sequence as well. It takes the slower path
// that keeps offsets; its ids equal Encode's and EncodePair's.
func (t *Tokenizer) EncodeDetailed(text string, pair ...string) (Encoding, Detail, error) {
	var e Encoding
	var d Detail
	if len(pair) > 1 {
		panic("tokenize: EncodeDetailed takes at most one pair text")
	}
	err := t.encodeGeneral(&e, &d, append([]string{text}, pair...)...)
	return e, d, err
}

// VocabSize is the largest token id the tokenizer can produce plus one: the
// number of rows the model's word embedding table needs.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// encodeGeneral encodes texts (one or a pair) with the general pipeline.
func (t *Tokenizer) encodeGeneral(dst *Encoding, d *Detail, texts ...string) error {
	dst.IDs, dst.TypeIDs, dst.Mask = dst.IDs[:0], dst.TypeIDs[:0], dst.Mask[:0]
	dst.NumTokens, dst.Truncated = 0, false
	for i, s := range texts {
		if !utf8.ValidString(s) {
			if len(texts) == 2 {
				return fmt.Errorf("sequence %d: %w at byte %d", i+1, ErrInvalidUTF8, invalidAt(s))
			}
			return fmt.Errorf("%w at byte %d", ErrInvalidUTF8, invalidAt(s))
		}
	}
	g, err := t.general()
	if err != nil {
		return err
	}
	s := t.gpool.Get().(*genScratch)
	defer t.gpool.Put(s)
	e, err := g.encode(s, t.maxLen, texts...)
	if err != nil {
		return err
	}
	n := len(e.toks)
	dst.IDs = slices.Grow(dst.IDs, n)
	dst.TypeIDs = slices.Grow(dst.TypeIDs, n)
	dst.Mask = slices.Grow(dst.Mask, n)
	for i, tk := range e.toks {
		dst.IDs = append(dst.IDs, int64(tk.id))
		dst.TypeIDs = append(dst.TypeIDs, e.types[i])
		dst.Mask = append(dst.Mask, 1)
	}
	dst.NumTokens, dst.Truncated = e.n, e.trunc
	if d != nil {
		d.Tokens, d.Offsets, d.Sequence = make([]string, n), make([][2]int, n), make([]int, n)
		for i, tk := range e.toks {
			d.Tokens[i] = g.tokenText(tk)
			d.Offsets[i] = [2]int{int(tk.sp.start), int(tk.sp.end)}
			d.Sequence[i] = int(e.seq[i])
		}
	}
	return nil
}
