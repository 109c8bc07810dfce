package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/models"
)

// specFlags are the flags that set a feature spec (extract, experiment, serve): each
// one left out takes the model card's convention, then the package default.
type specFlags = headstart.SpecOverride

// specFlagList returns the flags readSpecFlags reads; what is "the model's" is said in
// each usage.
func specFlagList() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pooling", Usage: "mean | cls | max | last (default: the model card's, e.g. cls for bge, mean for all-MiniLM and e5)"},
		&cli.BoolFlag{Name: "normalize", Usage: "L2-normalise each vector; --normalize=false turns off a card's normalisation (default: the model card's)"},
		&cli.IntFlag{Name: "max-len", Usage: "truncate texts to this many tokens, specials included (default: the model card's max_seq_length, e.g. 256 for all-MiniLM, 512 for bge and e5; 128 for a model without a card)"},
		&cli.StringFlag{Name: "prefix", Usage: "text prefix: a `ROLE` the model card names (e5: query, passage) or none; for a directory model without a card, the prefix text itself (default: the card's choice, e.g. e5's query)"},
	}
}

func readSpecFlags(c *cli.Context) specFlags {
	var f specFlags
	if c.IsSet("pooling") {
		f.Pooling = c.String("pooling")
	}
	if c.IsSet("max-len") {
		n := c.Int("max-len")
		f.MaxLen = &n
	}
	if c.IsSet("normalize") {
		b := c.Bool("normalize")
		f.Normalize = &b
	}
	if c.IsSet("prefix") {
		s := c.String("prefix")
		f.Prefix = &s
	}
	return f
}

// resolveSpec is f.Resolve with its invalid options as usage errors.
func resolveSpec(f specFlags, p models.Paths, layers []int) (features.Spec, error) {
	s, err := f.Resolve(p, layers)
	if errors.Is(err, headstart.ErrBadOption) {
		return s, usageError{err}
	}
	return s, err
}

// prefixText is f.PrefixText with its invalid options as usage errors.
func prefixText(f specFlags, p models.Paths) (string, error) {
	t, err := f.PrefixText(p)
	if errors.Is(err, headstart.ErrBadOption) {
		return t, usageError{err}
	}
	return t, err
}
