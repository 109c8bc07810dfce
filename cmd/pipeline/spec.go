package main

import (
	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/models"
)

// specFlags are the flags that set a feature spec (extract, experiment, serve). Each
// one left out takes the model card's convention (models.Manifest: pooling,
// normalisation, max length, text prefix), then the package default.
type specFlags struct {
	Pooling   string  // "": the card's
	MaxLen    *int    // nil: the card's
	Normalize *bool   // nil: the card's
	Prefix    *string // nil: the card's default; else a role the card names, or "none"
}

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

// given reports whether any spec flag was given.
func (f specFlags) given() bool {
	return f.Pooling != "" || f.MaxLen != nil || f.Normalize != nil || f.Prefix != nil
}

// prefixText turns --prefix into the prefix's text for the model at p.
func (f specFlags) prefixText(p models.Paths) (string, error) {
	if p.CardFrom == "" { // no card: the flag is the text
		if *f.Prefix == models.NoPrefix {
			return "", nil
		}
		return *f.Prefix, nil
	}
	t, err := p.Manifest.PrefixText(*f.Prefix)
	if err != nil {
		return "", usageError{err}
	}
	return t, nil
}

// spec returns the complete spec for the model at p (pass it with Exact): the card's
// conventions, the flags given over them, layers, and the package defaults for what
// is still unset.
func (f specFlags) spec(p models.Paths, layers []int) (features.Spec, error) {
	s := p.Manifest.Card()
	if f.Pooling != "" {
		s.Pooling = f.Pooling
	}
	if f.MaxLen != nil {
		if *f.MaxLen < 2 { // 0 is not "the default" here: it was typed
			return s, usagef("--max-len %d: want at least 2 ([CLS] and [SEP]) and at most the model's positions (512 for BERT-family models)", *f.MaxLen)
		}
		s.MaxLen = *f.MaxLen
	}
	if f.Normalize != nil {
		s.Normalize = *f.Normalize
	}
	if f.Prefix != nil {
		t, err := f.prefixText(p)
		if err != nil {
			return s, err
		}
		s.Prefix = t
	}
	s.Layers = layers
	s, err := headstart.ModelSpec(p, s, true)
	if err != nil {
		return s, usageError{err}
	}
	return s, nil
}
