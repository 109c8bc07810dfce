package head

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestFitContextCancel cancels FitContext from its Progress callback and checks that
// the fit returns an error wrapping context.Canceled that says where it stopped, and
// that no iteration or epoch ran after the cancelling one (but the iteration another
// one-vs-rest label had in flight): for every logistic regression path (multinomial,
// binary, one-vs-rest, cross-validated C) and the MLP.
func TestFitContextCancel(t *testing.T) {
	d := synthetic(300, 16, 4, 1, false, 11)
	d.Fingerprint = testFingerprint
	bin := synthetic(300, 16, 2, 1, false, 12)
	bin.Fingerprint = testFingerprint
	ml := multiLabel(d)
	// Settings that run to their limit: a fit that ignored the cancellation would make
	// more progress calls.
	lr := LogRegSettings{Tol: 1e-300, MaxIter: 200, Threads: 1}
	cv := lr
	cv.AutoC = true
	lr2 := lr
	lr2.Threads = 2
	mlp := MLPSettings{Hidden: []int{8}, MaxEpochs: 6, Patience: 6, BatchSize: 32, Threads: 1}
	cases := []struct {
		name   string
		data   Dataset
		o      Options
		at     int    // the progress call that cancels
		extra  int    // progress calls allowed after it (iterations of other labels in flight)
		msg    string // in the error
		ckpt   bool   // MLP: with a checkpoint
		resume bool   // MLP: resume from the checkpoint and compare with an uninterrupted run
	}{
		{"logreg multinomial", d, Options{Kind: LogReg, LogReg: lr}, 3, 0, "stage fit after 3 solver iterations", false, false},
		{"logreg binary", bin, Options{Kind: LogReg, LogReg: lr}, 2, 0, "stage fit after 2 solver iterations", false, false},
		{"logreg one-vs-rest", ml, Options{Kind: LogReg, LogReg: lr}, 1, 0, "with 0 of 4 labels fitted", false, false},
		{"logreg one-vs-rest 2 threads", ml, Options{Kind: LogReg, LogReg: lr2}, 5, 1, "labels fitted one-vs-rest", false, false},
		{"logreg auto C", d, Options{Kind: LogReg, LogReg: cv}, 1, 0, "stage cv C=0.0001 fold 1/5 after 1 solver iterations", false, false},
		{"mlp", d, Options{Kind: MLP, MLP: mlp}, 2, 0, "before epoch 3 (finished epochs: 2, lost without a checkpoint", false, false},
		{"mlp checkpoint", d, Options{Kind: MLP, MLP: mlp}, 2, 0, "before epoch 3 (the checkpoint", true, true},
		{"mlp multi-label", ml, Options{Kind: MLP, MLP: mlp}, 1, 0, "before epoch 2", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var mu sync.Mutex
			calls := 0
			progress := func(p Progress) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls == c.at {
					cancel()
				}
			}
			o := c.o
			o.LogReg.Progress, o.MLP.Progress = progress, progress
			if c.ckpt {
				o.MLP.Checkpoint = filepath.Join(t.TempDir(), "head.ckpt")
			}
			h, err := FitContext(ctx, c.data, nil, o)
			if h != nil || !errors.Is(err, context.Canceled) {
				t.Fatalf("head %v, err %v; want a nil head and context.Canceled", h != nil, err)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err %q; want it to say %q", err, c.msg)
			}
			if calls < c.at || calls > c.at+c.extra {
				t.Errorf("%d progress calls; want %d to %d: the fit went on after the cancellation", calls, c.at, c.at+c.extra)
			}
			if !c.resume {
				return
			}
			if !strings.Contains(err.Error(), o.MLP.Checkpoint) || !strings.Contains(err.Error(), "Resume") {
				t.Errorf("err %q; want it to name the checkpoint %s and Resume", err, o.MLP.Checkpoint)
			}
			// The checkpoint holds the last finished epoch: resuming it gives the
			// uninterrupted run's head.
			s := c.o.MLP
			want, err := FitMLP(c.data, nil, s)
			if err != nil {
				t.Fatal(err)
			}
			s.Checkpoint, s.Resume = o.MLP.Checkpoint, true
			got, err := FitMLPContext(context.Background(), c.data, nil, s)
			if err != nil {
				t.Fatal(err)
			}
			if got.Summary.Resumed != c.at {
				t.Errorf("resumed %d epochs; want %d", got.Summary.Resumed, c.at)
			}
			wb, _ := want.Encode()
			if gb, _ := got.Encode(); !bytes.Equal(gb, wb) {
				t.Error("the head resumed after the cancellation differs from the uninterrupted run's")
			}
		})
	}
}

// errAfter is a context whose Err is nil for its first n calls and context.Canceled
// from then on, to cancel at a known point where no callback runs.
type errAfter struct {
	context.Context
	mu sync.Mutex
	n  int
}

func (c *errAfter) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

// TestFitMLPCancelWithinEpoch: FitMLPContext looks at its context every
// mlpCancelBatches batches inside an epoch, not only between epochs.
func TestFitMLPCancelWithinEpoch(t *testing.T) {
	d := synthetic(3*mlpCancelBatches, 4, 2, 1, false, 13)
	// One look before epoch 1, then the look after mlpCancelBatches batches cancels.
	ctx := &errAfter{Context: context.Background(), n: 1}
	_, err := FitMLPContext(ctx, d, nil, MLPSettings{Hidden: []int{2}, BatchSize: 1, ValidFraction: -1, MaxEpochs: 1, Threads: 1})
	const want = "in epoch 1 after 256 batches"
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v; want context.Canceled saying %q", err, want)
	}
}

// TestFitContextUncancelled: a context that is never cancelled changes nothing.
func TestFitContextUncancelled(t *testing.T) {
	d := synthetic(200, 8, 3, 2, false, 14)
	for _, o := range []Options{
		{Kind: LogReg, LogReg: LogRegSettings{AutoC: true, Cs: []float64{0.1, 1}, Folds: 2}},
		{Kind: LogReg, LogReg: LogRegSettings{}},
		{Kind: MLP, MLP: MLPSettings{Hidden: []int{4}, MaxEpochs: 3}},
	} {
		want, err := Fit(d, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		got, err := FitContext(ctx, d, nil, o)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		wb, _ := want.Encode()
		if gb, _ := got.Encode(); !bytes.Equal(gb, wb) {
			t.Errorf("%v: FitContext's head differs from Fit's", o.Kind)
		}
	}
}
