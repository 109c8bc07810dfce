package experiment

import (
	"fmt"
	"slices"
	"strings"

	"github.com/headstart-ml/headstart/head"
)

// Strategy is one way of training a classifier on the frozen backbone: a head fitted on
// the pooled hidden states of some layers.
type Strategy struct {
	// Name is what --strategies accepts.
	Name string `json:"name"`
	// Layers are the hidden states whose pooled features are concatenated, as negative
	// indices from the last block (-1 is the last block's output).
	Layers []int `json:"layers"`
	// Head selects and configures the head; its zero value is scikit-learn's
	// LogisticRegression defaults (C=1, max_iter=100, tol=1e-4). Seed fields are set per
	// cell.
	Head head.Options `json:"head"`
	// About says what the strategy does, for help texts and reports.
	About string `json:"about"`
}

// Strategies returns the implemented strategies, in the order they are listed.
func Strategies() []Strategy {
	// The heads' defaults, written out so that results.json records them.
	logreg := head.Options{Kind: head.LogReg, LogReg: head.LogRegSettings{C: 1, Tol: 1e-4, MaxIter: 100}}
	mlp := head.Options{Kind: head.MLP, MLP: head.MLPSettings{Hidden: []int{256}, LearningRate: 1e-3, WeightDecay: 0.01,
		Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, BatchSize: 64, MaxEpochs: 100, Patience: 10, ValidFraction: 0.1}}
	return []Strategy{
		{Name: "logreg", Layers: []int{-1}, Head: logreg,
			About: "L2 logistic regression (scikit-learn's defaults: C=1, lbfgs, max_iter=100) on the last block's pooled features"},
		{Name: "mlp", Layers: []int{-1}, Head: mlp,
			About: "MLP, one hidden layer of 256 GELU units, AdamW (lr 1e-3, weight decay 0.01, batch 64), early stopping " +
				"(patience 10, at most 100 epochs) on --valid or on 10% of each class held out, on the last block's pooled features"},
		{Name: "concat4-logreg", Layers: []int{-4, -3, -2, -1}, Head: logreg,
			About: "L2 logistic regression (as logreg) on the pooled features of the top 4 blocks, concatenated"},
	}
}

// Planned names the strategies that unfreeze part of the backbone; they are known but
// not implemented yet.
var Planned = []string{"lora-top1", "full-top1", "reinit-top1"}

// StrategyNames returns the names of the implemented strategies.
func StrategyNames() []string {
	var names []string
	for _, s := range Strategies() {
		names = append(names, s.Name)
	}
	return names
}

// ParseStrategies parses a comma-separated list of strategy names. A planned strategy
// gives an error wrapping ErrNotImplemented, any other unknown name one wrapping
// ErrUnknownStrategy that lists the valid names; a repeated name is kept once.
func ParseStrategies(list string) ([]Strategy, error) {
	all := Strategies()
	var out []Strategy
	var planned []string
	for _, f := range strings.Split(list, ",") {
		name := strings.ToLower(strings.TrimSpace(f))
		if name == "" {
			continue
		}
		i := slices.IndexFunc(all, func(s Strategy) bool { return s.Name == name })
		switch {
		case i >= 0:
			if !slices.ContainsFunc(out, func(s Strategy) bool { return s.Name == name }) {
				out = append(out, all[i])
			}
		case slices.Contains(Planned, name):
			planned = append(planned, name)
		default:
			return nil, fmt.Errorf("%w: --strategies %q: %q unknown; want one or more of %s (planned, not implemented yet: %s)",
				ErrUnknownStrategy, list, f, strings.Join(StrategyNames(), ", "), strings.Join(Planned, ", "))
		}
	}
	if len(planned) > 0 {
		return nil, fmt.Errorf("%w: --strategies %q: %s unfreeze backbone blocks, which is not implemented yet; the strategies available now are %s",
			ErrNotImplemented, list, strings.Join(planned, ", "), strings.Join(StrategyNames(), ", "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --strategies %q names no strategy; want one or more of %s", ErrBadGrid, list, strings.Join(StrategyNames(), ", "))
	}
	return out, nil
}

// Layers returns the union of the layers the strategies need, in increasing order
// (e.g. -4, -3, -2, -1): what one extraction must pool for all of them.
func Layers(strategies []Strategy) []int {
	var out []int
	for _, s := range strategies {
		for _, l := range s.Layers {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	return out
}

// NeedsHoldout reports whether the strategy holds training rows out for early stopping
// when no validation data is given (the MLP).
func (s Strategy) NeedsHoldout() bool {
	return s.Head.Kind == head.MLP && s.Head.MLP.ValidFraction >= 0
}
