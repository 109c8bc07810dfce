package headstart

import (
	"cmp"
	"errors"
	"fmt"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/models"
)

// ModelSpec returns the feature spec a run on the model at p uses when asked for s:
// s's zero fields take the model card's conventions (p.Manifest.Card(): pooling,
// normalisation, max length, default text prefix) unless exact, then the package
// defaults (features.Spec.WithDefaults). It is an error wrapping ErrBadOption when the
// result is not valid, or when s (or exact's zero) asks for a prefix on a model whose
// card says it takes texts as they are.
func ModelSpec(p models.Paths, s features.Spec, exact bool) (features.Spec, error) {
	if !exact {
		s = s.Fill(p.Manifest.Card())
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%w: %w", ErrBadOption, err)
	}
	if s.Prefix != "" && p.CardFrom != "" && len(p.Manifest.Prefixes) == 0 {
		return s, fmt.Errorf("%w: prefix %q: model %s takes texts as they are (its card, from %s, names no prefixes)", ErrBadOption, s.Prefix, p.Name, p.CardFrom)
	}
	return s, nil
}

// SpecOverride is a partial feature spec laid over a model card's conventions (the
// flags --pooling, --max-len, --normalize and --prefix of pipeline extract, experiment
// and serve). Each field left unset takes the card's convention (models.Manifest.Card),
// then the package default (features.Spec.WithDefaults). The zero value is the card's
// spec.
type SpecOverride struct {
	Pooling   string  // "": the card's
	MaxLen    *int    // nil: the card's; else at least 2
	Normalize *bool   // nil: the card's; false turns a card's normalisation off
	Prefix    *string // nil: the card's default; else a role the card names, or models.NoPrefix
}

// Set reports whether any field is set.
func (o SpecOverride) Set() bool {
	return o.Pooling != "" || o.MaxLen != nil || o.Normalize != nil || o.Prefix != nil
}

// PrefixText returns the text of o.Prefix (which must be set) for the model at p: the
// text of the role the card names, "" for models.NoPrefix, and for a directory model
// without a card the prefix text itself. A role the card does not name is an error
// wrapping ErrBadOption.
func (o SpecOverride) PrefixText(p models.Paths) (string, error) {
	if p.CardFrom == "" { // no card: the value is the text
		if *o.Prefix == models.NoPrefix {
			return "", nil
		}
		return *o.Prefix, nil
	}
	t, err := p.Manifest.PrefixText(*o.Prefix)
	if err != nil {
		return "", badOption(err)
	}
	return t, nil
}

// Resolve returns the complete spec for the model at p (use it with Exact): the card's
// conventions, o's set fields over them, layers, and the package defaults for what is
// still unset. An invalid result is an error wrapping ErrBadOption.
func (o SpecOverride) Resolve(p models.Paths, layers []int) (features.Spec, error) {
	s := p.Manifest.Card()
	if o.Pooling != "" {
		s.Pooling = o.Pooling
	}
	if o.MaxLen != nil {
		if *o.MaxLen < 2 { // 0 is not "the default" here: it was asked for
			return s, badOptionf("--max-len %d: want at least 2 ([CLS] and [SEP]) and at most the model's positions (512 for BERT-family models)", *o.MaxLen)
		}
		s.MaxLen = *o.MaxLen
	}
	if o.Normalize != nil {
		s.Normalize = *o.Normalize
	}
	if o.Prefix != nil {
		t, err := o.PrefixText(p)
		if err != nil {
			return s, err
		}
		s.Prefix = t
	}
	s.Layers = layers
	return ModelSpec(p, s, true)
}

// markedError is err marked with a sentinel: its message is err's alone (err names
// the option or file, so no "invalid option" prefix), errors.Is(e, mark) holds, and err
// is wrapped.
type markedError struct{ mark, err error }

func (e markedError) Error() string   { return e.err.Error() }
func (e markedError) Unwrap() []error { return []error{e.mark, e.err} }

// badOption marks err as an invalid option (see markedError); nil stays nil.
func badOption(err error) error {
	if err == nil || errors.Is(err, ErrBadOption) {
		return err
	}
	return markedError{ErrBadOption, err}
}

// badOptionf is badOption of a formatted error.
func badOptionf(format string, args ...any) error {
	return markedError{ErrBadOption, fmt.Errorf(format, args...)}
}

// OpenSpec returns the spec to pass to Open (with Exact) for a model serving
// embeddings pooled from layers, with o laid over the card of the backbone Open will
// load: model, else the one the first head file records (models.Find), else
// models.Default. With heads, max_len and the prefix are the heads' (Open refuses
// others), so only the ones o sets are kept.
func (o SpecOverride) OpenSpec(model string, heads []string, layers []int) (features.Spec, error) {
	var paths models.Paths
	var err error
	if model == "" && len(heads) > 0 {
		h, lerr := head.Load(heads[0])
		if lerr != nil {
			return features.Spec{}, lerr
		}
		paths, err = models.Find(h.Fingerprint.BackboneOf())
	} else {
		paths, err = models.Resolve(cmp.Or(model, models.Default))
	}
	if err != nil {
		return features.Spec{}, err
	}
	spec, err := o.Resolve(paths, layers)
	if err != nil || len(heads) == 0 {
		return spec, err
	}
	spec.MaxLen, spec.Prefix = 0, ""
	if o.MaxLen != nil {
		spec.MaxLen = *o.MaxLen
	}
	if o.Prefix != nil {
		spec.Prefix, err = o.PrefixText(paths)
	}
	return spec, err
}
