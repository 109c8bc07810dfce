package headstart

import (
	"fmt"

	"github.com/headstart-ml/headstart/features"
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
