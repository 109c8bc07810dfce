package tokenize

import (
	"encoding/json"
	"fmt"
)

// postProcessor is tokenizer.json's "post_processor": it puts the special
// tokens around the (truncated) sequences and sets their type ids.
type postProcessor interface {
	// added is the number of special tokens it adds to one sequence or a pair.
	added(pair bool) int
	// process returns the encoding of a (and b, when pair).
	process(a, b []token, pair bool, text func(token) string) postOut
}

const postProcessorTypes = "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence or null"

// postOut is a post-processed encoding.
type postOut struct {
	toks  []token
	types []int64
	seqs  []int8 // sequence of each token: 0, 1, or -1 for special tokens
}

func (o *postOut) seq(ts []token, typeID int64, seq int8) {
	for _, t := range ts {
		o.toks = append(o.toks, t)
		o.types = append(o.types, typeID)
		o.seqs = append(o.seqs, seq)
	}
}

func (o *postOut) special(ids []int32, vals []string, typeID int64) {
	for i, id := range ids {
		v := ""
		if i < len(vals) {
			v = vals[i]
		}
		o.toks = append(o.toks, token{id: id, val: v})
		o.types = append(o.types, typeID)
		o.seqs = append(o.seqs, -1)
	}
}

func numAdded(p postProcessor, pair bool) int {
	if p == nil {
		return 0
	}
	return p.added(pair)
}

// parsePostProcessor reads a post_processor.
func parsePostProcessor(raw json.RawMessage) (postProcessor, error) {
	typ, err := typeOf(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: post_processor: %w", ErrFormat, err)
	}
	bad := func(err error) error { return fmt.Errorf("%w: post_processor %s: %w", ErrFormat, typ, err) }
	switch typ {
	case "null":
		return nil, nil
	case "BertProcessing", "RobertaProcessing":
		var v struct {
			Sep            []json.RawMessage `json:"sep"`
			Cls            []json.RawMessage `json:"cls"`
			TrimOffsets    *bool             `json:"trim_offsets"`
			AddPrefixSpace *bool             `json:"add_prefix_space"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		if len(v.Sep) != 2 || len(v.Cls) != 2 {
			return nil, fmt.Errorf("%w: %s sep and cls must be [token, id]", ErrFormat, typ)
		}
		var p clsSepPost
		if err := json.Unmarshal(v.Sep[0], &p.sepTok); err != nil {
			return nil, bad(err)
		}
		if err := json.Unmarshal(v.Sep[1], &p.sep); err != nil {
			return nil, bad(err)
		}
		if err := json.Unmarshal(v.Cls[0], &p.clsTok); err != nil {
			return nil, bad(err)
		}
		if err := json.Unmarshal(v.Cls[1], &p.cls); err != nil {
			return nil, bad(err)
		}
		if typ == "RobertaProcessing" {
			p.roberta, p.trim, p.prefixSpace = true, true, true // tokenizers' defaults
			if v.TrimOffsets != nil {
				p.trim = *v.TrimOffsets
			}
			if v.AddPrefixSpace != nil {
				p.prefixSpace = *v.AddPrefixSpace
			}
		}
		return p, nil
	case "ByteLevel":
		var v struct {
			TrimOffsets    *bool `json:"trim_offsets"`
			AddPrefixSpace *bool `json:"add_prefix_space"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		p := byteLevelPost{trim: true, prefixSpace: true}
		if v.TrimOffsets != nil {
			p.trim = *v.TrimOffsets
		}
		if v.AddPrefixSpace != nil {
			p.prefixSpace = *v.AddPrefixSpace
		}
		return p, nil
	case "TemplateProcessing":
		return parseTemplate(raw)
	case "Sequence":
		var v struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad(err)
		}
		var seq seqPost
		for _, r := range v.Processors {
			p, err := parsePostProcessor(r)
			if err != nil {
				return nil, err
			}
			switch p := p.(type) {
			case nil:
			case byteLevelPost:
				seq.trims = append(seq.trims, p)
			default:
				if seq.main != nil {
					return nil, fmt.Errorf("%w: post_processor Sequence with two processors that add special tokens", ErrUnsupported)
				}
				seq.main = p
			}
		}
		return seq, nil
	}
	return nil, fmt.Errorf("%w: post_processor type %q; supported: %s", ErrUnsupported, typ, postProcessorTypes)
}

// clsSepPost is BertProcessing ([CLS] A [SEP], pair [CLS] A [SEP] B [SEP]
// with B's part type 1) and RobertaProcessing (<s> A </s>, pair
// <s> A </s> </s> B </s>, all type 0, offsets trimmed of the spaces a token
// starts or ends with when trim_offsets is set).
type clsSepPost struct {
	cls, sep          int32
	clsTok, sepTok    string
	roberta           bool
	trim, prefixSpace bool
}

func (p clsSepPost) added(pair bool) int {
	switch {
	case !pair:
		return 2
	case p.roberta:
		return 4
	}
	return 3
}

func (p clsSepPost) process(a, b []token, pair bool, text func(token) string) postOut {
	if p.trim {
		a = trimOffsets(a, p.prefixSpace, text)
		b = trimOffsets(b, p.prefixSpace, text)
	}
	var o postOut
	n := len(a) + len(b) + p.added(pair)
	o.toks, o.types, o.seqs = make([]token, 0, n), make([]int64, 0, n), make([]int8, 0, n)
	o.special([]int32{p.cls}, []string{p.clsTok}, 0)
	o.seq(a, 0, 0)
	o.special([]int32{p.sep}, []string{p.sepTok}, 0)
	if pair {
		typ := int64(1)
		if p.roberta {
			typ = 0
			o.special([]int32{p.sep}, []string{p.sepTok}, 0)
		}
		o.seq(b, typ, 1)
		o.special([]int32{p.sep}, []string{p.sepTok}, typ)
	}
	return o
}

// byteLevelPost is the ByteLevel post-processor: offsets trimmed only.
type byteLevelPost struct{ trim, prefixSpace bool }

func (byteLevelPost) added(bool) int { return 0 }

func (p byteLevelPost) process(a, b []token, pair bool, text func(token) string) postOut {
	var o postOut
	if p.trim {
		a = trimOffsets(a, p.prefixSpace, text)
		b = trimOffsets(b, p.prefixSpace, text)
	}
	o.seq(a, 0, 0)
	if pair {
		o.seq(b, 1, 1)
	}
	return o
}

// seqPost is a Sequence: ByteLevel offset trimming and at most one processor
// that adds special tokens.
type seqPost struct {
	trims []byteLevelPost
	main  postProcessor
}

func (s seqPost) added(pair bool) int { return numAdded(s.main, pair) }

func (s seqPost) process(a, b []token, pair bool, text func(token) string) postOut {
	for _, t := range s.trims {
		if t.trim {
			a = trimOffsets(a, t.prefixSpace, text)
			b = trimOffsets(b, t.prefixSpace, text)
		}
	}
	if s.main == nil {
		return byteLevelPost{}.process(a, b, pair, text)
	}
	return s.main.process(a, b, pair, text)
}

// trimOffsets is tokenizers' byte-level process_offsets: a token's offsets
// lose the spaces ('Ġ' or white space) it starts or ends with, except the one
// space add_prefix_space put before the first token. ts is copied.
func trimOffsets(ts []token, prefixSpace bool, text func(token) string) []token {
	if len(ts) == 0 {
		return ts
	}
	out := make([]token, len(ts))
	copy(out, ts)
	isSpace := func(r rune) bool { return r == byteChar[' '] || isRustSpace(r) }
	for i := range out {
		t := &out[i]
		rs := []rune(text(*t))
		lead, trail := 0, 0
		for lead < len(rs) && isSpace(rs[lead]) {
			lead++
		}
		for trail < len(rs) && isSpace(rs[len(rs)-1-trail]) {
			trail++
		}
		if lead > 0 {
			first := i == 0 || t.sp.start == 0
			if first && prefixSpace && lead == 1 {
				lead = 0
			}
			t.sp.start = min(t.sp.start+int32(lead), t.sp.end)
		}
		if trail > 0 && t.sp.end >= int32(trail) {
			t.sp.end = max(t.sp.end-int32(trail), t.sp.start)
		}
	}
	return out
}

// templatePost is TemplateProcessing.
type templatePost struct {
	single, pair []templateItem
}

// templateItem is a piece of a template: sequence A (0) or B (1), or special
// token ids (seq -1).
type templateItem struct {
	seq    int8
	ids    []int32
	vals   []string
	typeID int64
}

// templatePieceJSON is one piece of a TemplateProcessing template in tokenizer.json:
// a special token or a sequence (A or B), each with its token type id.
type templatePieceJSON struct {
	SpecialToken *templateRefJSON `json:"SpecialToken"`
	Sequence     *templateRefJSON `json:"Sequence"`
}

type templateRefJSON struct {
	ID     string `json:"id"`
	TypeID int64  `json:"type_id"`
}

func parseTemplate(raw json.RawMessage) (postProcessor, error) {
	type piece = templatePieceJSON
	var v struct {
		Single        []piece `json:"single"`
		Pair          []piece `json:"pair"`
		SpecialTokens map[string]struct {
			IDs    []int32  `json:"ids"`
			Tokens []string `json:"tokens"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: post_processor TemplateProcessing: %w", ErrFormat, err)
	}
	conv := func(name string, ps []piece, want string) ([]templateItem, error) {
		var out []templateItem
		seen := ""
		for _, p := range ps {
			switch {
			case p.Sequence != nil:
				var seq int8
				switch p.Sequence.ID {
				case "A":
				case "B":
					seq = 1
				default:
					return nil, fmt.Errorf("%w: TemplateProcessing %s template names sequence %q; want A or B", ErrFormat, name, p.Sequence.ID)
				}
				seen += p.Sequence.ID
				out = append(out, templateItem{seq: seq, typeID: p.Sequence.TypeID})
			case p.SpecialToken != nil:
				st, ok := v.SpecialTokens[p.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%w: TemplateProcessing special token %q not in special_tokens", ErrFormat, p.SpecialToken.ID)
				}
				out = append(out, templateItem{seq: -1, ids: st.IDs, vals: st.Tokens, typeID: p.SpecialToken.TypeID})
			default:
				return nil, fmt.Errorf("%w: TemplateProcessing piece is neither SpecialToken nor Sequence", ErrFormat)
			}
		}
		if seen != want {
			return nil, fmt.Errorf("%w: TemplateProcessing %s template holds sequences %q; want %q", ErrUnsupported, name, seen, want)
		}
		return out, nil
	}
	var t templatePost
	var err error
	if t.single, err = conv("single", v.Single, "A"); err != nil {
		return nil, err
	}
	if len(v.Pair) == 0 { // tokenizers' default pair template: single's, then B
		t.pair = append(append([]templateItem{}, t.single...), templateItem{seq: 1, typeID: 1})
	} else if t.pair, err = conv("pair", v.Pair, "AB"); err != nil {
		return nil, err
	}
	return t, nil
}

func (t templatePost) added(pair bool) int {
	items := t.single
	if pair {
		items = t.pair
	}
	n := 0
	for _, it := range items {
		n += len(it.ids)
	}
	return n
}

func (t templatePost) process(a, b []token, pair bool, _ func(token) string) postOut {
	items := t.single
	if pair {
		items = t.pair
	}
	var o postOut
	n := len(a) + len(b) + t.added(pair)
	o.toks, o.types, o.seqs = make([]token, 0, n), make([]int64, 0, n), make([]int8, 0, n)
	for _, it := range items {
		switch it.seq {
		case -1:
			o.special(it.ids, it.vals, it.typeID)
		case 0:
			o.seq(a, it.typeID, 0)
		case 1:
			o.seq(b, it.typeID, 1)
		}
	}
	return o
}
