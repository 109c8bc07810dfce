package features

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Defaults of a Spec's zero fields (Spec.WithDefaults). A model card's conventions
// (models.Manifest), where a caller takes them, come before these.
const (
	// DefaultMaxLen is the truncation length, in tokens with the specials, of a Spec
	// that names none and has no model card to take it from.
	DefaultMaxLen = 128
	// DefaultPooling is the pooling of a Spec that names none.
	DefaultPooling = "mean"
	// NoPooling is the Pooling of an activation cache (TokenCache): token states are
	// kept, not pooled.
	NoPooling = "none"
)

// DefaultLayers are the hidden states pooled by a Spec that names none: the last one.
var DefaultLayers = []int{-1}

// Spec is how a text becomes a feature vector on a given backbone: the text prefix, the
// truncation length, the hidden states pooled, the pooling and the normalisation. It is
// the one value that extraction options, feature stores (Manifest), heads
// (head.Fingerprint), exported graphs (onnx.HeadSpec) and model cards
// (models.Manifest) embed; two feature sets are the same space only when their Specs
// (and backbones) are equal (Compare).
//
// The zero value is valid: WithDefaults fills its zero fields (mean pooling of the last
// hidden state, 128 tokens, no normalisation, no prefix). Its JSON form is the one
// stores and heads have always written (pooling, layers, normalize, max_len), with
// prefix added only when set, so files written before prefixes existed load unchanged.
type Spec struct {
	// Pooling is mean, cls, max or last (see Pooling), or NoPooling in an activation
	// cache. Default ("") DefaultPooling.
	Pooling string `json:"pooling"`
	// Layers are the pooled hidden states, concatenated in this order, indexed as
	// HuggingFace's output_hidden_states: 0 is the embeddings output, i the output of
	// encoder block i-1; negative values count from the end (options may hold them; a
	// store or head records them resolved). Default (nil) DefaultLayers.
	Layers []int `json:"layers"`
	// Normalize L2-normalises each vector (after concatenating the layers).
	// Default false.
	Normalize bool `json:"normalize"`
	// MaxLen truncates texts to this many tokens, [CLS] and [SEP] included.
	// Default (0) DefaultMaxLen.
	MaxLen int `json:"max_len"`
	// Prefix is put before every text before it is tokenised: the instruction a model
	// card asks for (e5's "query: "). Default "": none.
	Prefix string `json:"prefix,omitempty"`
}

// WithDefaults returns s with its zero fields set to the package defaults; Pooling is
// also put in canonical form (lower case). Layers is a copy.
func (s Spec) WithDefaults() Spec {
	s.Pooling = strings.ToLower(strings.TrimSpace(s.Pooling))
	if s.Pooling == "" {
		s.Pooling = DefaultPooling
	}
	if len(s.Layers) == 0 {
		s.Layers = DefaultLayers
	}
	s.Layers = slices.Clone(s.Layers)
	if s.MaxLen == 0 {
		s.MaxLen = DefaultMaxLen
	}
	return s
}

// Fill returns s with each zero field taken from card (a model card's conventions),
// the others kept: Pooling "", Layers empty, MaxLen 0 and Prefix "" take card's, and
// Normalize is card's or s's (a card that normalises cannot be turned off through
// Fill: a caller that wants that uses s as it is). Layers is a copy.
func (s Spec) Fill(card Spec) Spec {
	if strings.TrimSpace(s.Pooling) == "" {
		s.Pooling = card.Pooling
	}
	if len(s.Layers) == 0 {
		s.Layers = card.Layers
	}
	s.Layers = slices.Clone(s.Layers)
	s.Normalize = s.Normalize || card.Normalize
	if s.MaxLen == 0 {
		s.MaxLen = card.MaxLen
	}
	if s.Prefix == "" {
		s.Prefix = card.Prefix
	}
	return s
}

// Clone returns a copy of s that shares no memory with it.
func (s Spec) Clone() Spec {
	s.Layers = slices.Clone(s.Layers)
	return s
}

// Pool returns the Pooling that s names ("" is mean). It is an error for NoPooling and
// unknown names.
func (s Spec) Pool() (Pooling, error) { return ParsePooling(s.Pooling) }

// Validate reports the first field of s that extraction cannot use, naming the field
// and the valid choices. Zero fields are valid (they take defaults).
func (s Spec) Validate() error {
	if _, err := s.Pool(); err != nil {
		return err
	}
	if s.MaxLen != 0 && s.MaxLen < 2 {
		return errorf(ErrBadSpec, "max_len %d must be at least 2 ([CLS] and [SEP])", s.MaxLen)
	}
	seen := make(map[int]bool, len(s.Layers))
	for _, l := range s.Layers {
		if seen[l] {
			return errorf(ErrBadSpec, "layers %v name layer %d twice", s.Layers, l)
		}
		seen[l] = true
	}
	return nil
}

// String returns the canonical form of s, the same for equal Specs and different for
// different ones, e.g.
//
//	pooling=mean layers=-1 normalize=true max_len=256
//	pooling=mean layers=-1 normalize=true max_len=512 prefix="query: "
//
// Zero fields print as they are (call WithDefaults first for the defaults' form).
func (s Spec) String() string {
	ls := make([]string, len(s.Layers))
	for i, l := range s.Layers {
		ls[i] = strconv.Itoa(l)
	}
	t := fmt.Sprintf("pooling=%s layers=%s normalize=%t max_len=%d", s.Pooling, strings.Join(ls, ","), s.Normalize, s.MaxLen)
	if s.Prefix != "" {
		t += " prefix=" + strconv.Quote(s.Prefix)
	}
	return t
}

// SpecDiff is one field in which two Specs differ, with each one's value as String
// prints it.
type SpecDiff struct {
	Field string // json name: pooling, layers, normalize, max_len, prefix
	A, B  string
}

// Diff lists the fields in which s and t differ, in field order; nil when they are
// equal. Pooling is compared in canonical form ("" and "mean" are not equal: compare
// WithDefaults forms to treat defaults as given).
func (s Spec) Diff(t Spec) []SpecDiff {
	var d []SpecDiff
	if p, q := strings.ToLower(s.Pooling), strings.ToLower(t.Pooling); p != q {
		d = append(d, SpecDiff{"pooling", orNone(p), orNone(q)})
	}
	if !slices.Equal(s.Layers, t.Layers) {
		d = append(d, SpecDiff{"layers", fmt.Sprint(s.Layers), fmt.Sprint(t.Layers)})
	}
	if s.Normalize != t.Normalize {
		d = append(d, SpecDiff{"normalize", strconv.FormatBool(s.Normalize), strconv.FormatBool(t.Normalize)})
	}
	if s.MaxLen != t.MaxLen {
		d = append(d, SpecDiff{"max_len", strconv.Itoa(s.MaxLen), strconv.Itoa(t.MaxLen)})
	}
	if s.Prefix != t.Prefix {
		d = append(d, SpecDiff{"prefix", strconv.Quote(s.Prefix), strconv.Quote(t.Prefix)})
	}
	return d
}

// Compare returns nil when s and t are equal, else an error wrapping ErrSpecMismatch
// that names every differing field with both values (s's first).
func (s Spec) Compare(t Spec) error {
	d := s.Diff(t)
	if len(d) == 0 {
		return nil
	}
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = x.Field + " " + x.A + " vs " + x.B
	}
	return errorf(ErrSpecMismatch, "feature specs differ: %s", strings.Join(parts, "; "))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
