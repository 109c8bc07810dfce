package headstart

import (
	"fmt"
	"slices"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/lora"
)

// Evaluate scores h on the labelled rows at path: a feature store (Extract), or, for a
// head with trained top blocks, an activation cache (ExtractOptions.CutTop) whose states
// the blocks run on natively. A multi-label head predicts the labels whose probability
// is at least threshold. Data that h was not trained for (another backbone, tokenizer
// or feature spec) is an error wrapping head.ErrFingerprint, found before any scoring.
func Evaluate(h *head.Head, path string, threshold float64) (head.Report, error) {
	if cache, err := features.IsTokenCache(path); err == nil && cache {
		return evaluateCache(h, path)
	}
	st, err := features.OpenStore(path)
	if err != nil {
		return head.Report{}, err
	}
	d, err := head.FromStore(st, path)
	if err != nil {
		return head.Report{}, err
	}
	if err := h.CheckStore(st, path); err != nil {
		return head.Report{}, err
	}
	return h.EvaluateAt(&d, threshold)
}

// evaluateCache scores a head with trained top blocks on an activation cache.
func evaluateCache(h *head.Head, path string) (head.Report, error) {
	probs, ex, err := CacheProbs(h, path)
	if err != nil {
		return head.Report{}, err
	}
	pred := make([]int, ex.Len())
	head.ArgmaxRows(pred, probs, len(h.Classes))
	return head.NewReport(h.Classes, ex.Labels, pred, probs), nil
}

// CacheProbs runs a head with trained top blocks natively on the states of the
// activation cache at path: it returns the probabilities (rows × classes, row-major,
// in h's class order) and the examples read from the cache, whose labels index
// h.Classes.
func CacheProbs(h *head.Head, path string) ([]float32, *lora.Examples, error) {
	tc, err := features.OpenTokens(path)
	if err != nil {
		return nil, nil, err
	}
	if err := h.CheckTokens(tc.Manifest, path); err != nil {
		return nil, nil, err
	}
	ex, err := CacheExamples(tc, path, h.Classes)
	if err != nil {
		return nil, nil, err
	}
	st, err := h.Stack()
	if err != nil {
		return nil, nil, err
	}
	probs := make([]float32, ex.Len()*len(h.Classes))
	if err := st.Probs(probs, ex, 64); err != nil {
		return nil, nil, err
	}
	return probs, ex, nil
}

// CacheExamples converts an activation cache (read from path, named in errors) into
// training or evaluation examples for package lora whose labels index names (the
// training data's classes): every row must be labelled with one of them.
func CacheExamples(tc *features.TokenCache, path string, names []string) (*lora.Examples, error) {
	ex := &lora.Examples{Hidden: tc.Hidden, Offsets: tc.Offsets, Labels: make([]int, tc.N), IDs: tc.IDs}
	for i, l := range tc.Labels {
		if l < 0 {
			return nil, fmt.Errorf("%w: %s: row %d (row_id %d) has no label; every row of a training or validation cache needs one", head.ErrUnlabelled, path, i, tc.RowIDs[i])
		}
		name := tc.Manifest.LabelNames[l]
		j := slices.Index(names, name)
		if j < 0 {
			return nil, fmt.Errorf("%w: %s: row %d has label %q, which the training data does not have (it has %d labels)", head.ErrUnseenLabel, path, i, name, len(names))
		}
		ex.Labels[i] = j
	}
	return ex, nil
}
