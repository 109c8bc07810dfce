package tokenize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// fileConfig is the part of a HuggingFace tokenizer.json that tokenize reads.
type fileConfig struct {
	Truncation *struct {
		MaxLength int `json:"max_length"`
	} `json:"truncation"`
	Padding *struct {
		PadID    *int   `json:"pad_id"`
		PadToken string `json:"pad_token"`
	} `json:"padding"`
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	ModelRaw      json.RawMessage `json:"model"`
}

// bertModel is the part of a WordPiece model the BERT fast path reads.
type bertModel struct {
	Type                    string         `json:"type"`
	UnkToken                *string        `json:"unk_token"`
	ContinuingSubwordPrefix *string        `json:"continuing_subword_prefix"`
	MaxInputCharsPerWord    *int           `json:"max_input_chars_per_word"`
	Vocab                   map[string]int `json:"vocab"`
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// bertNormalizer mirrors tokenizers' BertNormalizer. The Rust library refuses a
// file that lacks any field but strip_accents, which may also be null.
type bertNormalizer struct {
	Type               string `json:"type"`
	CleanText          *bool  `json:"clean_text"`
	HandleChineseChars *bool  `json:"handle_chinese_chars"`
	StripAccents       *bool  `json:"strip_accents"`
	Lowercase          *bool  `json:"lowercase"`
}

// normalizerFlags is a resolved BertNormalizer.
type normalizerFlags struct {
	clean, chinese, strip, lower bool
}

// templatePiece is one special token of a template: its ids and their type id.
type templatePiece struct {
	ids    []int32
	typeID int64
}

// parseConfig reads data as tokenizer.json and returns its general pipeline,
// and the BERT fast path when the file describes a BERT WordPiece tokenizer
// (nil otherwise). Errors do not name the file; Load adds the path.
func parseConfig(data []byte) (*pipeline, *general, *fileConfig, error) {
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fc); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if isNull(fc.ModelRaw) {
		return nil, nil, nil, fmt.Errorf("%w: no model", ErrFormat)
	}
	g, err := parseGeneral(&fc)
	if err != nil {
		return nil, nil, nil, err
	}
	p, _, err := parseBert(&fc)
	if err != nil {
		p = nil // not BERT-shaped: the general pipeline encodes everything
	}
	return p, g, &fc, nil
}

// parseBert checks that fc describes a BERT WordPiece tokenizer that the fast
// path reproduces exactly and returns its pipeline.
func parseBert(fc *fileConfig) (*pipeline, *fileConfig, error) {
	p := &pipeline{}

	// Model: WordPiece.
	m := &bertModel{}
	if err := json.Unmarshal(fc.ModelRaw, m); err != nil {
		return nil, nil, fmt.Errorf("%w: model: %w", ErrFormat, err)
	}
	if m.Type != "WordPiece" {
		return nil, nil, fmt.Errorf("%w: model type %q; want WordPiece", ErrUnsupported, m.Type)
	}
	if len(m.Vocab) == 0 {
		return nil, nil, fmt.Errorf("%w: model has no vocab", ErrFormat)
	}
	p.vocab = make(map[string]int32, len(m.Vocab))
	for tok, id := range m.Vocab {
		if id < 0 || id > math.MaxInt32 {
			return nil, nil, fmt.Errorf("%w: vocab id %d of %q out of range", ErrFormat, id, tok)
		}
		p.vocab[tok] = int32(id)
		p.maxTokenBytes = max(p.maxTokenBytes, len(tok))
	}
	p.unkToken, p.subPrefix, p.maxWordChars = "[UNK]", "##", 100 // tokenizers' WordPiece defaults
	if m.UnkToken != nil {
		p.unkToken = *m.UnkToken
	}
	if m.ContinuingSubwordPrefix != nil {
		p.subPrefix = *m.ContinuingSubwordPrefix
	}
	if m.MaxInputCharsPerWord != nil {
		p.maxWordChars = *m.MaxInputCharsPerWord
	}
	unk, ok := p.vocab[p.unkToken]
	if !ok {
		return nil, nil, fmt.Errorf("%w: unk_token %q not in the vocab", ErrFormat, p.unkToken)
	}
	p.unkID = unk

	// Normalizer: BertNormalizer or none.
	if !isNull(fc.Normalizer) {
		var bn bertNormalizer
		if err := json.Unmarshal(fc.Normalizer, &bn); err != nil {
			return nil, nil, fmt.Errorf("%w: normalizer: %w", ErrFormat, err)
		}
		if bn.Type != "BertNormalizer" {
			return nil, nil, fmt.Errorf("%w: normalizer type %q; want BertNormalizer or null", ErrUnsupported, bn.Type)
		}
		for _, f := range []struct {
			name string
			v    *bool
		}{{"clean_text", bn.CleanText}, {"handle_chinese_chars", bn.HandleChineseChars}, {"lowercase", bn.Lowercase}} {
			if f.v == nil {
				return nil, nil, fmt.Errorf("%w: BertNormalizer lacks %s", ErrFormat, f.name)
			}
		}
		p.norm = normalizerFlags{clean: *bn.CleanText, chinese: *bn.HandleChineseChars, lower: *bn.Lowercase}
		// tokenizers: strip_accents.unwrap_or(lowercase).
		p.norm.strip = p.norm.lower
		if bn.StripAccents != nil {
			p.norm.strip = *bn.StripAccents
		}
	}

	// Pre-tokenizer: BertPreTokenizer only.
	if typ, err := typeOf(fc.PreTokenizer); err != nil {
		return nil, nil, fmt.Errorf("%w: pre_tokenizer: %w", ErrFormat, err)
	} else if typ != "BertPreTokenizer" {
		return nil, nil, fmt.Errorf("%w: pre_tokenizer type %q; want BertPreTokenizer", ErrUnsupported, typ)
	}

	// Post-processor: TemplateProcessing, BertProcessing or none.
	if err := p.parsePostProcessor(fc.PostProcessor); err != nil {
		return nil, nil, err
	}

	// Added tokens: matched in the raw text, before normalisation.
	for _, at := range fc.AddedTokens {
		if at.Content == "" {
			return nil, nil, fmt.Errorf("%w: added token %d has no content", ErrFormat, at.ID)
		}
		if at.Normalized || at.SingleWord || at.LStrip || at.RStrip {
			return nil, nil, fmt.Errorf("%w: added token %q sets normalized, single_word, lstrip or rstrip; want all false", ErrUnsupported, at.Content)
		}
		if at.ID < 0 || at.ID > math.MaxInt32 {
			return nil, nil, fmt.Errorf("%w: added token %q has id %d", ErrFormat, at.Content, at.ID)
		}
		p.added = append(p.added, specialToken{content: at.Content, id: int32(at.ID)})
	}
	// Longest first, so that the first match at a position is the longest.
	slices.SortStableFunc(p.added, func(a, b specialToken) int { return len(b.content) - len(a.content) })
	return p, fc, nil
}

// parsePostProcessor reads the single-sequence template.
func (p *pipeline) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	typ, err := typeOf(raw)
	if err != nil {
		return fmt.Errorf("%w: post_processor: %w", ErrFormat, err)
	}
	switch typ {
	case "TemplateProcessing":
		var tp struct {
			Single        []templatePieceJSON `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &tp); err != nil {
			return fmt.Errorf("%w: post_processor: %w", ErrFormat, err)
		}
		seen := false
		for _, piece := range tp.Single {
			switch {
			case piece.Sequence != nil:
				if seen || piece.Sequence.ID != "A" {
					return fmt.Errorf("%w: TemplateProcessing single template must hold sequence A once", ErrUnsupported)
				}
				seen = true
				p.seqTypeID = piece.Sequence.TypeID
			case piece.SpecialToken != nil:
				st, ok := tp.SpecialTokens[piece.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("%w: TemplateProcessing special token %q not in special_tokens", ErrFormat, piece.SpecialToken.ID)
				}
				tp := templatePiece{typeID: piece.SpecialToken.TypeID}
				for _, id := range st.IDs {
					tp.ids = append(tp.ids, int32(id))
				}
				if seen {
					p.suffix = append(p.suffix, tp)
				} else {
					p.prefix = append(p.prefix, tp)
				}
			default:
				return fmt.Errorf("%w: TemplateProcessing piece is neither SpecialToken nor Sequence", ErrFormat)
			}
		}
		if !seen {
			return fmt.Errorf("%w: TemplateProcessing single template lacks sequence A", ErrUnsupported)
		}
	case "BertProcessing":
		var bp struct {
			Sep []json.RawMessage `json:"sep"`
			Cls []json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &bp); err != nil {
			return fmt.Errorf("%w: post_processor: %w", ErrFormat, err)
		}
		if len(bp.Sep) != 2 || len(bp.Cls) != 2 {
			return fmt.Errorf("%w: BertProcessing sep and cls must be [token, id]", ErrFormat)
		}
		var sep, cls int32
		if err := json.Unmarshal(bp.Sep[1], &sep); err != nil {
			return fmt.Errorf("%w: BertProcessing sep: %w", ErrFormat, err)
		}
		if err := json.Unmarshal(bp.Cls[1], &cls); err != nil {
			return fmt.Errorf("%w: BertProcessing cls: %w", ErrFormat, err)
		}
		p.prefix = []templatePiece{{ids: []int32{cls}}}
		p.suffix = []templatePiece{{ids: []int32{sep}}}
	default:
		return fmt.Errorf("%w: post_processor type %q; want TemplateProcessing, BertProcessing or null", ErrUnsupported, typ)
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func typeOf(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "null", nil
	}
	var t struct {
		Type string `json:"type"`
	}
	err := json.Unmarshal(raw, &t)
	return t.Type, err
}
