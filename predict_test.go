package headstart_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
)

// TestPredictKeptPredictions: over more rows than one window holds, predictions that
// emit keeps (and appends to) after it returns stay each row's own: they equal those
// of a run whose emit copies them, row for row, for both heads. The second run
// classifies two batches at a time (Runs 2), which changes nothing.
func TestPredictKeptPredictions(t *testing.T) {
	headFile, cleanup, err := exampleHead()
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	h, err := head.Load(headFile)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range 1100 { // predictWindow (1024) and then some
		if i%2 == 0 {
			lines = append(lines, fmt.Sprintf("review %d: a wonderful, moving film", i))
		} else {
			lines = append(lines, fmt.Sprintf("review %d: dull, tedious and far too long", i))
		}
	}
	data := filepath.Join(t.TempDir(), "reviews.txt")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := headstart.PredictOptions{Heads: []*head.Head{h, h}, Data: data}
	var kept, copied [][]headstart.Prediction
	if _, err := headstart.Predict(context.Background(), o, func(_ features.Row, preds []headstart.Prediction) error {
		kept = append(kept, preds)
		_ = append(preds, headstart.Prediction{Label: "appended by emit"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	two := o
	two.Runs, two.Session.IntraOpThreads = 2, 1
	if _, err := headstart.Predict(context.Background(), two, func(_ features.Row, preds []headstart.Prediction) error {
		c := slices.Clone(preds)
		for h := range c {
			c[h].Probs = slices.Clone(c[h].Probs)
		}
		copied = append(copied, c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(kept) != len(lines) || len(copied) != len(lines) {
		t.Fatalf("%d and %d rows emitted; want %d", len(kept), len(copied), len(lines))
	}
	for i := range lines {
		if len(kept[i]) != 2 || !reflect.DeepEqual(kept[i], copied[i]) {
			t.Fatalf("row %d: kept predictions %+v; copied %+v", i, kept[i], copied[i])
		}
	}
	if kept[0][0].Label != "pos" || kept[1][1].Label != "neg" {
		t.Fatalf("rows 0 and 1: %s, %s; want pos, neg", kept[0][0].Label, kept[1][1].Label)
	}
}
