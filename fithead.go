package headstart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
)

// FitHeadOptions configure FitHead (pipeline fit-head). The zero value needs Train and
// Out.
type FitHeadOptions struct {
	// Train is the training feature store (Extract); Valid, optional, a store extracted
	// the same way, for the MLP's early stopping (reported for logreg).
	Train, Valid string
	// Out is the head file to write.
	Out string
	// Head is the head's kind and settings (head.Options; default a logistic
	// regression with C=1). An MLP checkpoints to Out+".ckpt" unless
	// Head.MLP.Checkpoint names another file, and removes it when done.
	Head head.Options
	// Resume continues an interrupted MLP from its checkpoint; without it a checkpoint
	// left by an interrupted run is an error wrapping ErrCheckpointExists.
	Resume bool
	// AllowUnconverged writes a logistic regression whose solver failed (a failed line
	// search, a loss that is not finite), which is an error by default.
	AllowUnconverged bool
	// Warn, when set, is told what is suspect: features beyond a backbone's range
	// (before the fit), a solver that stopped before converging.
	Warn func(msg string)
}

// FitHeadSummary reports what FitHead did.
type FitHeadSummary struct {
	Head *head.Head // as written to Out
	// Largest is the training feature of the largest magnitude (head.LargestFeature).
	Largest head.Extreme
	// FitCPU is the CPU time (user and system, every thread of the process) spent
	// while the head was fitted, not reading the stores or writing the head; 0 where
	// the platform does not report it (not unix). On one thread it is the fit's own
	// work, steadier than the wall time (Head.Summary.Elapsed) on a shared machine.
	FitCPU time.Duration
}

// FitHead trains a head on a feature store and writes it: every setting is checked, and
// Valid's fingerprint against Train's, before the fit; a head that is not finite, or a
// logistic regression whose solver failed, is not written.
func FitHead(ctx context.Context, o FitHeadOptions) (sum FitHeadSummary, err error) {
	if o.Train == "" || o.Out == "" {
		return sum, fmt.Errorf("%w: FitHead needs Train and Out", ErrBadOption)
	}
	warn := func(format string, args ...any) {
		if o.Warn != nil {
			o.Warn(fmt.Sprintf(format, args...))
		}
	}
	ho := o.Head
	if ho.Kind == head.MLP {
		if ho.MLP.Checkpoint == "" {
			ho.MLP.Checkpoint = o.Out + ".ckpt"
		}
		ho.MLP.Resume = o.Resume
		if err := CheckCheckpoint(ho.MLP.Checkpoint, o.Resume); err != nil {
			return sum, err
		}
	}
	train, valid, err := loadTrainValid(o.Train, o.Valid)
	if err != nil {
		return sum, err
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	// Values far beyond what a backbone gives break the solver; say where they are
	// before spending the fit on them.
	ext, extreme := head.LargestFeature(train)
	sum.Largest = ext
	if extreme {
		warn("features %s: %s; |x| beyond %g is not a backbone's output: the store may be corrupt, or the features need --standardize", o.Train, ext, head.ExtremeFeature)
	}
	cpu0 := processCPU()
	h, err := head.FitContext(ctx, train, valid, ho)
	sum.FitCPU = processCPU() - cpu0
	if err != nil {
		if ck := ho.MLP.Checkpoint; ho.Kind == head.MLP && errors.Is(err, context.Canceled) {
			if _, serr := os.Stat(ck); serr == nil {
				return sum, fmt.Errorf("fit-head interrupted (rerun with --resume to continue): %w", err)
			}
		}
		return sum, err
	}
	if err := h.CheckFinite(); err != nil {
		return sum, fmt.Errorf("fit-head: the fitted head is not usable (%w); nothing written to %s: check the features (largest: %s) or pass --standardize", err, o.Out, ext)
	}
	if s := h.Summary; h.Kind == head.LogReg && s.SolverFailed() {
		msg := fmt.Sprintf("the solver failed (%s after %d iterations, loss %.6g, max|grad| %.3g): the head is where it gave up, not a fit of the data; the largest feature is %s", s.Stop, s.Iterations, s.Loss, s.GradMax, ext)
		if !o.AllowUnconverged {
			return sum, fmt.Errorf("fit-head: %s. Nothing written to %s: check the features or pass --standardize; --allow-unconverged writes the head anyway", msg, o.Out)
		}
		warn("%s; writing it as --allow-unconverged asks", msg)
	} else if h.Kind == head.LogReg && !s.Converged {
		warn("the solver stopped before converging (%s, max|grad| %.3g > --tol %g); raise --max-iter, or --standardize the features", s.Stop, s.GradMax, ho.LogReg.Tol)
	}
	if err := h.Save(o.Out); err != nil {
		return sum, err
	}
	if ck := ho.MLP.Checkpoint; ho.Kind == head.MLP {
		if err := os.Remove(ck); err != nil && !errors.Is(err, os.ErrNotExist) {
			return sum, fmt.Errorf("fit-head: removing the checkpoint: %w", err)
		}
	}
	sum.Head = h
	return sum, nil
}

// loadTrainValid opens the training store and, when valid is set, the validation store,
// which must have been extracted the same way.
func loadTrainValid(train, valid string) (head.Dataset, *head.Dataset, error) {
	t, err := loadDataset(train)
	if err != nil || valid == "" {
		return t, nil, err
	}
	v, err := loadDataset(valid)
	if err != nil {
		return t, nil, err
	}
	if err := t.Fingerprint.Compare(v.Fingerprint); err != nil {
		return t, nil, fmt.Errorf("--valid %s was extracted differently from --train %s: %w", valid, train, err)
	}
	return t, &v, nil
}

// loadDataset opens a feature store as a labelled dataset.
func loadDataset(path string) (head.Dataset, error) {
	st, err := features.OpenStore(path)
	if err != nil {
		return head.Dataset{}, err
	}
	return head.FromStore(st, path)
}

// CheckCheckpoint refuses to start afresh over ck, the checkpoint of an interrupted
// run, unless resume (the run continues it): an error wrapping ErrCheckpointExists.
func CheckCheckpoint(ck string, resume bool) error {
	if _, err := os.Stat(ck); err == nil && !resume {
		return markedError{ErrCheckpointExists, fmt.Errorf("a checkpoint of an interrupted run is at %s: pass --resume to continue it, or delete it to start afresh", ck)}
	}
	return nil
}
