package experiment

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/lora"
)

// Strategy is one way of training a classifier: a head fitted on the pooled hidden
// states of some layers of the frozen backbone, or (Top set) the top blocks trained
// with a linear head on the cached states entering them.
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
	// Top, when set, makes the strategy train the top blocks (package lora) instead of
	// fitting Head on pooled features; Layers and Head are then unused.
	Top *TopStrategy `json:"top,omitempty"`
}

// TopStrategy trains the top TopK blocks with lora.Train on the activation cache.
type TopStrategy struct {
	TopK int `json:"top_k"`
	// Train is the recipe; its Seed is set per cell.
	Train lora.TrainSettings `json:"train"`
	// MinSteps raises the number of epochs of small training sets so that training
	// takes at least this many optimiser steps, up to MaxEpochs epochs.
	MinSteps  int `json:"min_steps"`
	MaxEpochs int `json:"max_epochs"`
	// HeadInit "logreg" starts the head from a logistic regression fitted on the frozen
	// features of the cell's training rows (linear probing then fine-tuning); "" from
	// torch.nn.Linear's random initialisation.
	HeadInit string `json:"head_init,omitempty"`
}

// epochs returns the epochs to train on rows training rows.
func (t *TopStrategy) epochs(rows int) int {
	steps := (rows + t.Train.BatchSize - 1) / t.Train.BatchSize
	e := t.Train.Epochs
	for e*steps < t.MinSteps && e < t.MaxEpochs {
		e++
	}
	return e
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
		{Name: "lora-top1", Top: top(lora.ModeLoRA, 1e-3),
			About: "LoRA on the top block (rank 8, alpha 16, query and value, dropout 0.1) and a linear head on its mean-pooled output, " + topRecipe("1e-3")},
		{Name: "full-top1", Top: top(lora.ModeFull, 1e-4),
			About: "every weight of the top block and a linear head, " + topRecipe("1e-4")},
		{Name: "reinit-top1", Top: top(lora.ModeReinit, 1e-4),
			About: "the top block re-initialised (Zhang et al. 2020) and trained with a linear head, " + topRecipe("1e-4")},
	}
}

// topKStrategy returns the strategy named MODE-topK (lora, full or reinit; K >= 1):
// the recipe of MODE-top1 on the top K blocks.
func topKStrategy(name string) (Strategy, bool) {
	m, k, ok := strings.Cut(name, "-top")
	if !ok {
		return Strategy{}, false
	}
	n, err := strconv.Atoi(k)
	if err != nil || n < 1 || strconv.Itoa(n) != k {
		return Strategy{}, false
	}
	base := slices.IndexFunc(Strategies(), func(s Strategy) bool { return s.Name == m+"-top1" })
	if base < 0 {
		return Strategy{}, false
	}
	st := Strategies()[base]
	st.Name, st.Top.TopK = name, n
	st.About = strings.Replace(st.About, "the top block", fmt.Sprintf("the top %d blocks", n), 1)
	return st, true
}

// UnfreezeStrategies returns the strategies of an unfreezing sweep: for each count k of
// blocks, logreg on the frozen features for 0 and full-topK (every weight of the top k
// blocks and a linear head) otherwise.
func UnfreezeStrategies(ks []int) ([]Strategy, error) {
	var names []string
	for _, k := range ks {
		switch {
		case k < 0:
			return nil, fmt.Errorf("%w: --unfreeze %d: want a number of blocks, 0 or more", ErrBadGrid, k)
		case k == 0:
			names = append(names, "logreg")
		default:
			names = append(names, fmt.Sprintf("full-top%d", k))
		}
	}
	return ParseStrategies(strings.Join(names, ","))
}

// top is the recipe of the top-block strategies.
func top(mode lora.Mode, lr float64) *TopStrategy {
	t := &TopStrategy{TopK: 1, MinSteps: 100, MaxEpochs: 30, HeadInit: "logreg",
		Train: lora.TrainSettings{Mode: mode, Epochs: 3, BatchSize: 32, LR: lr, WeightDecay: 0.01, Warmup: 0.1}}
	if mode == lora.ModeLoRA {
		t.Train.LoRA = lora.LoRA{Rank: 8, Alpha: 16, Dropout: 0.1, Targets: lora.TargetQuery | lora.TargetValue}
	}
	return t
}

func topRecipe(lr string) string {
	return "the head starting from logreg's solution on the frozen features (linear probing then fine-tuning), " +
		"AdamW (lr " + lr + ", weight decay 0.01, batch 32, 10% warmup then linear decay), 3 epochs or more " +
		"for small sets (at least 100 steps, at most 30 epochs), keeping the best epoch on --valid when given"
}

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
	for _, f := range strings.Split(list, ",") {
		name := strings.ToLower(strings.TrimSpace(f))
		if name == "" {
			continue
		}
		i := slices.IndexFunc(all, func(s Strategy) bool { return s.Name == name })
		st, ok := Strategy{}, i >= 0
		if ok {
			st = all[i]
		} else {
			st, ok = topKStrategy(name)
		}
		switch {
		case ok:
			if !slices.ContainsFunc(out, func(s Strategy) bool { return s.Name == name }) {
				out = append(out, st)
			}
		default:
			return nil, fmt.Errorf("%w: --strategies %q: %q unknown; want one or more of %s, or lora-topK, full-topK, reinit-topK for any K",
				ErrUnknownStrategy, list, f, strings.Join(StrategyNames(), ", "))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --strategies %q names no strategy; want one or more of %s", ErrBadGrid, list, strings.Join(StrategyNames(), ", "))
	}
	return out, nil
}

// Layers returns the union of the layers the strategies need, in increasing order
// (e.g. -4, -3, -2, -1): what one extraction must pool for all of them; {-1} when only
// top-block strategies are asked for (the pooled features then serve the sampling).
func Layers(strategies []Strategy) []int {
	out := []int{}
	for _, s := range strategies {
		for _, l := range s.Layers {
			if !slices.Contains(out, l) {
				out = append(out, l)
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		out = []int{-1}
	}
	return out
}

// TopK returns the largest TopK of the top-block strategies, 0 when there are none: the
// cut of the activation cache they need.
func TopK(strategies []Strategy) int {
	k := 0
	for _, s := range strategies {
		if s.Top != nil {
			k = max(k, s.Top.TopK)
		}
	}
	return k
}

// NeedsHoldout reports whether the strategy holds training rows out for early stopping
// when no validation data is given (the MLP).
func (s Strategy) NeedsHoldout() bool {
	return s.Top == nil && s.Head.Kind == head.MLP && s.Head.MLP.ValidFraction >= 0
}
