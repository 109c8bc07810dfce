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

// AllBlocks is the TopK of a strategy named MODE-all until ResolveBlocks sets it to
// the model's number of blocks.
const AllBlocks = -1

// TopStrategy trains the top TopK blocks with lora.Train on the activation cache (or,
// with SetFit set, contrastively with lora.SetFit).
type TopStrategy struct {
	TopK int `json:"top_k"`
	// Embeddings trains the embedding tables and their LayerNorm with the blocks (the
	// "+emb" strategies): every block must train, from the cached input ids.
	Embeddings bool `json:"embeddings,omitempty"`
	// SetFit, when set, fine-tunes the blocks contrastively on pairs (SetFit, Tunstall
	// et al. 2022) and then fits a logistic regression on the fine-tuned embeddings;
	// Train, MinSteps, MaxEpochs and HeadInit are then unused.
	SetFit *SetFitStrategy `json:"setfit,omitempty"`
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

// SetFitStrategy is the recipe of the setfit strategies: lora.SetFitSettings' fields
// of the same names (the setfit package's defaults), then scikit-learn's
// LogisticRegression() on the mean-pooled embeddings, normalised when the model card
// normalises (Data.Tokens.Normalize).
type SetFitStrategy struct {
	Iterations int     `json:"iterations"`
	Epochs     int     `json:"epochs"`
	BatchSize  int     `json:"batch_size"`
	LR         float64 `json:"lr"`
	Warmup     float64 `json:"warmup"`
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

// topKStrategy returns the strategy named MODE-topK or MODE-all (K >= 1; all: every
// block, TopK AllBlocks until ResolveBlocks): the recipe of MODE-top1 (lora, full,
// reinit) or of SetFit (setfit) on the top K blocks; the suffix "+emb" (full and setfit
// only) trains the embeddings too.
func topKStrategy(name string) (Strategy, bool) {
	base, emb := strings.CutSuffix(name, "+emb")
	m, k, ok := strings.Cut(base, "-")
	if !ok {
		return Strategy{}, false
	}
	n := AllBlocks
	if k != "all" {
		digits, ok := strings.CutPrefix(k, "top")
		var err error
		if n, err = strconv.Atoi(digits); !ok || err != nil || n < 1 || strconv.Itoa(n) != digits {
			return Strategy{}, false
		}
	}
	var st Strategy
	if m == "setfit" {
		st = setfitStrategy()
	} else {
		base := slices.IndexFunc(Strategies(), func(s Strategy) bool { return s.Name == m+"-top1" })
		if base < 0 {
			return Strategy{}, false
		}
		st = Strategies()[base]
	}
	if emb && st.Top.Train.Mode != lora.ModeFull {
		return Strategy{}, false
	}
	st.Name, st.Top.TopK, st.Top.Embeddings = name, n, emb
	what := fmt.Sprintf("the top %d blocks", n)
	if n == AllBlocks {
		what = "every block"
	}
	if n != 1 {
		st.About = strings.Replace(st.About, "the top block", what, 1)
	}
	if emb {
		st.About = strings.Replace(st.About, what, what+" and the embeddings (tables and LayerNorm)", 1)
	}
	return st, true
}

// setfitStrategy is setfit-top1: the setfit package's (1.2.0) defaults.
func setfitStrategy() Strategy {
	return Strategy{Name: "setfit-top1", Top: &TopStrategy{TopK: 1, Train: lora.TrainSettings{Mode: lora.ModeFull},
		SetFit: &SetFitStrategy{Iterations: 20, Epochs: 1, BatchSize: 16, LR: 2e-5, Warmup: 0.1}},
		About: "SetFit (Tunstall et al. 2022) on the top block: contrastive fine-tuning on pairs (20 iterations, 1 epoch, " +
			"16 pairs a step, lr 2e-5, CosineSimilarityLoss on mean-pooled embeddings; the setfit package's defaults), " +
			"then a logistic regression (C=1) on the fine-tuned embeddings"}
}

// ResolveBlocks checks the strategies against a model of the given number of blocks
// and returns them with MODE-all resolved to every block: a strategy that trains more
// blocks than the model has, or the embeddings without every block, gives an error
// wrapping ErrBadGrid. blocks <= 0 (unknown) leaves the strategies as they are and
// refuses MODE-all.
func ResolveBlocks(strategies []Strategy, blocks int) ([]Strategy, error) {
	out := slices.Clone(strategies)
	for i, s := range out {
		if s.Top == nil {
			continue
		}
		t := *s.Top
		switch {
		case t.TopK == AllBlocks && blocks <= 0:
			return nil, fmt.Errorf("%w: strategy %s trains every block, and the model's number of blocks is unknown; name it (MODE-topK)", ErrBadGrid, s.Name)
		case t.TopK == AllBlocks:
			t.TopK = blocks
		case blocks > 0 && t.TopK > blocks:
			return nil, fmt.Errorf("%w: strategy %s trains the top %d blocks; the model has %d (want K from 1 to %d, or MODE-all)", ErrBadGrid, s.Name, t.TopK, blocks, blocks)
		}
		if t.Embeddings && blocks > 0 && t.TopK != blocks {
			return nil, fmt.Errorf("%w: strategy %s trains the embeddings, which sit below every block: it must train all %d blocks (full-all+emb)", ErrBadGrid, s.Name, blocks)
		}
		out[i].Top = &t
	}
	return out, nil
}

// ParseUnfreeze parses the list of an unfreezing sweep (--unfreeze): each item a number
// of blocks K (0: logreg on the frozen features, K > 0: full-topK), "all" (full-all),
// or a strategy name (ParseStrategies: lora-top2, setfit-all, full-all+emb, ...).
func ParseUnfreeze(list string) ([]Strategy, error) {
	var names []string
	for _, f := range strings.Split(list, ",") {
		item := strings.ToLower(strings.TrimSpace(f))
		if item == "" {
			continue
		}
		k, err := strconv.Atoi(item)
		switch {
		case err != nil && item == "all":
			item = "full-all"
		case err != nil:
		case k < 0:
			return nil, fmt.Errorf("%w: --unfreeze %q: %d: want a number of blocks, 0 or more", ErrBadGrid, list, k)
		case k == 0:
			item = "logreg"
		default:
			item = fmt.Sprintf("full-top%d", k)
		}
		names = append(names, item)
	}
	return parseStrategies(strings.Join(names, ","), "--unfreeze")
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
	return parseStrategies(list, "--strategies")
}

// parseStrategies is ParseStrategies with the flag its messages name.
func parseStrategies(list, flag string) ([]Strategy, error) {
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
			return nil, fmt.Errorf("%w: %s %q: %q unknown; want one or more of %s, or MODE-topK / MODE-all (MODE lora, full, reinit or setfit; K >= 1; all: every block), full-all+emb or setfit-all+emb (the embeddings trained too)",
				ErrUnknownStrategy, flag, list, f, strings.Join(StrategyNames(), ", "))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s %q names no strategy; want one or more of %s", ErrBadGrid, flag, list, strings.Join(StrategyNames(), ", "))
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
// cut of the activation cache they need (resolve MODE-all first: ResolveBlocks).
func TopK(strategies []Strategy) int {
	k := 0
	for _, s := range strategies {
		if s.Top != nil {
			k = max(k, s.Top.TopK)
		}
	}
	return k
}

// Embeddings reports whether a strategy trains the embeddings: the activation caches
// must then hold the input ids, and Data.Tokens the embedding weights.
func Embeddings(strategies []Strategy) bool {
	return slices.ContainsFunc(strategies, func(s Strategy) bool { return s.Top != nil && s.Top.Embeddings })
}

// Family names how a strategy trains, for plots and recommendations: "frozen" for a
// head on frozen features, else lora, full, reinit or setfit.
func (s Strategy) Family() string {
	switch {
	case s.Top == nil:
		return "frozen"
	case s.Top.SetFit != nil:
		return "setfit"
	}
	return s.Top.Train.Mode.String()
}

// Unfrozen returns the number of blocks the strategy trains: 0 for a head on frozen
// features.
func (s Strategy) Unfrozen() int {
	if s.Top == nil {
		return 0
	}
	return s.Top.TopK
}

// NeedsHoldout reports whether the strategy holds training rows out for early stopping
// when no validation data is given (the MLP).
func (s Strategy) NeedsHoldout() bool {
	return s.Top == nil && s.Head.Kind == head.MLP && s.Head.MLP.ValidFraction >= 0
}
