package head

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestMLPResume resumes FitMLP from the checkpoint of every epoch of a run (snapshots
// taken while it trained) and checks each resumed head equals the uninterrupted run's
// byte for byte: with early stopping on a held-out split and on validation data, with
// dropout, without validation, and on multi-label data.
func TestMLPResume(t *testing.T) {
	d := synthetic(240, 16, 4, 2, false, 3)
	d.Fingerprint = testFingerprint
	valid := synthetic(60, 16, 4, 2, false, 4)
	valid.Fingerprint = testFingerprint
	cases := []struct {
		name  string
		train Dataset
		valid *Dataset
		s     MLPSettings
	}{
		{"held out, early stopping", d, nil, MLPSettings{Hidden: []int{8}, MaxEpochs: 40, Patience: 2, BatchSize: 32, Seed: 7, LearningRate: 0.05}},
		{"validation data, dropout", d, &valid, MLPSettings{Hidden: []int{12, 6}, MaxEpochs: 8, Dropout: 0.2, BatchSize: 50, Standardize: true, Seed: 1}},
		{"no validation", d, nil, MLPSettings{Hidden: []int{8}, MaxEpochs: 5, ValidFraction: -1, BatchSize: 64, Seed: 2}},
		{"multi-label", multiLabel(d), nil, MLPSettings{Hidden: []int{8}, MaxEpochs: 6, BatchSize: 40, Seed: 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.train
			dir := t.TempDir()
			want, err := FitMLP(d, c.valid, c.s)
			if err != nil {
				t.Fatal(err)
			}
			wantBytes, _ := want.Encode()

			// A run with a checkpoint gives the same head and keeps a copy of the
			// checkpoint of every epoch (Progress runs before the epoch's save).
			s := c.s
			s.Checkpoint = filepath.Join(dir, "head.ckpt")
			var snaps [][]byte
			s.Progress = func(p Progress) {
				if b, err := os.ReadFile(s.Checkpoint); err == nil {
					snaps = append(snaps, b)
				}
			}
			h, err := FitMLP(d, c.valid, s)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := h.Encode(); !bytes.Equal(b, wantBytes) {
				t.Fatal("checkpointing changes the head")
			}
			last, err := os.ReadFile(s.Checkpoint)
			if err != nil {
				t.Fatalf("no checkpoint after training: %v", err)
			}
			snaps = append(snaps, last)
			if len(snaps) != want.Summary.Epochs {
				t.Fatalf("%d checkpoints for %d epochs", len(snaps), want.Summary.Epochs)
			}

			s.Progress, s.Resume = nil, true
			for i, snap := range snaps {
				if err := os.WriteFile(s.Checkpoint, snap, 0o644); err != nil {
					t.Fatal(err)
				}
				s.Threads = 1 + i%2 // the result does not depend on it
				g, err := FitMLP(d, c.valid, s)
				if err != nil {
					t.Fatalf("resuming after epoch %d: %v", i+1, err)
				}
				if g.Summary.Resumed != i+1 {
					t.Errorf("resumed %d epochs; want %d", g.Summary.Resumed, i+1)
				}
				if b, _ := g.Encode(); !bytes.Equal(b, wantBytes) {
					t.Errorf("resumed after epoch %d of %d: the head differs from the uninterrupted run's", i+1, len(snaps))
				}
			}

			// Resume with no checkpoint starts afresh.
			os.Remove(s.Checkpoint)
			g, err := FitMLP(d, c.valid, s)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := g.Encode(); g.Summary.Resumed != 0 || !bytes.Equal(b, wantBytes) {
				t.Error("resume without a checkpoint differs from a fresh run")
			}
		})
	}
}

// TestMLPCheckpointRefused: a checkpoint of other settings or data, or a damaged one,
// is refused with ErrCheckpoint naming the file.
func TestMLPCheckpointRefused(t *testing.T) {
	d := synthetic(120, 8, 3, 2, false, 5)
	s := MLPSettings{Hidden: []int{4}, MaxEpochs: 3, BatchSize: 32, Seed: 1, Checkpoint: filepath.Join(t.TempDir(), "h.ckpt")}
	if _, err := FitMLP(d, nil, s); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(s.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	other := synthetic(120, 8, 3, 2, false, 6)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	cases := []struct {
		name string
		file []byte
		data Dataset
		edit func(*MLPSettings)
		msg  string
	}{
		{"other seed", good, d, func(s *MLPSettings) { s.Seed = 2 }, "other training data or settings"},
		{"other learning rate", good, d, func(s *MLPSettings) { s.LearningRate = 0.01 }, "other training data or settings"},
		{"other data", good, other, func(*MLPSettings) {}, "other training data or settings"},
		{"bit flip", flipped, d, func(*MLPSettings) {}, "checksum mismatch"},
		{"truncated", good[:len(good)-40], d, func(*MLPSettings) {}, "checksum mismatch"},
		{"empty", nil, d, func(*MLPSettings) {}, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(s.Checkpoint, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			rs := s
			rs.Resume = true
			c.edit(&rs)
			_, err := FitMLP(c.data, nil, rs)
			if !errors.Is(err, ErrCheckpoint) || !bytes.Contains([]byte(err.Error()), []byte(c.msg)) ||
				!bytes.Contains([]byte(err.Error()), []byte(s.Checkpoint)) {
				t.Fatalf("err %v; want ErrCheckpoint naming %s and saying %q", err, s.Checkpoint, c.msg)
			}
		})
	}
}

// TestNewPCG: the checkpointed source draws what newRNG draws.
func TestNewPCG(t *testing.T) {
	a := newRNG(42)
	src := newPCG(42)
	for i := range 100 {
		if x, y := a.Uint64(), src.Uint64(); x != y {
			t.Fatalf("draw %d: newRNG %d, newPCG %d", i, x, y)
		}
	}
}
