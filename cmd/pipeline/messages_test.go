package main

import (
	"math"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/head"
)

// TestMessages pins the wording of fit-head's progress and summary lines and of counted
// nouns: epochs are called epochs, C is not printed to 16 digits, one is not plural.
func TestMessages(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{count(1, "session", "sessions"), "1 session"},
		{count(0, "head", "heads"), "0 heads"},
		{count(2, "head", "heads"), "2 heads"},
		{fitProgressLine(head.Progress{Stage: "train", Iter: 99, Loss: 0.25, ValidLoss: 0.5, ValidAccuracy: 0.875}),
			"fit-head: train epoch 99 loss 0.25 valid loss 0.5 acc 0.8750"},
		{fitProgressLine(head.Progress{Stage: "fit", Iter: 12, Loss: 0.385736, GradMax: 1.62e-4, ValidLoss: math.NaN(), ValidAccuracy: math.NaN()}),
			"fit-head: fit iter 12 loss 0.385736 max|grad| 0.000162"},
		{fitSummaryLine(&head.Head{Kind: head.LogReg, Classes: make([]string, 77), Dim: 384,
			Summary: head.Summary{Rows: 1540, C: 0.3593813663804626, Iterations: 38, Converged: true, Elapsed: 900 * time.Millisecond}}, "h.safetensors", true),
			"fit-head: logreg on 1540 rows x 384 features, 77 classes -> h.safetensors (0.90s; C=0.3594 (cross-validated), 38 iterations, converged=true)"},
		{fitSummaryLine(&head.Head{Kind: head.LogReg, Classes: make([]string, 2), Dim: 1,
			Summary: head.Summary{Rows: 1, C: 1, Iterations: 1, Converged: false}}, "h", false),
			"fit-head: logreg on 1 row x 1 feature, 2 classes -> h (0.00s; C=1, 1 iteration, converged=false)"},
		{fitSummaryLine(&head.Head{Kind: head.MLP, Classes: make([]string, 3), Dim: 8, MultiLabel: true,
			Summary: head.Summary{Rows: 10, Epochs: 1, BestEpoch: 1, ValidAccuracy: 0.5}}, "m", false),
			"fit-head: mlp on 10 rows x 8 features, 3 labels (multi-label: one-vs-rest sigmoids) -> m (0.00s; 1 epoch (0 resumed), best 1, valid accuracy 0.5000)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %q\nwant %q", tc.got, tc.want)
		}
	}
}
