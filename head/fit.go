package head

import (
	"context"
	"fmt"
)

// Options select and configure the head that Fit trains. The zero value trains a
// logistic regression with scikit-learn's defaults.
type Options struct {
	Kind   Kind           // LogReg (default) or MLP
	LogReg LogRegSettings // used when Kind is LogReg
	MLP    MLPSettings    // used when Kind is MLP
}

// Fit trains the head selected by o on train. valid, when not nil, holds validation
// rows of the same features (the fingerprints and dimensions must agree; labels are
// matched by name): the MLP stops early on it, and a logistic regression reports its
// accuracy on it in Summary.ValidAccuracy. Use FromStore to make the data sets of
// feature stores.
func Fit(train Dataset, valid *Dataset, o Options) (*Head, error) {
	return FitContext(context.Background(), train, valid, o)
}

// FitContext is Fit stopped by ctx: the logistic regression's solver checks it between
// iterations (and between cross-validation folds and one-vs-rest labels), the MLP
// before every epoch and every few hundred batches. Once ctx is done FitContext
// returns an error that says where training stopped and wraps ctx.Err() (test with
// errors.Is(err, context.Canceled)); an MLP's checkpoint (MLPSettings.Checkpoint)
// keeps the last finished epoch, from which a fit with Resume continues. A run that is
// not cancelled returns what Fit returns.
func FitContext(ctx context.Context, train Dataset, valid *Dataset, o Options) (*Head, error) {
	if valid != nil {
		if err := train.Fingerprint.Compare(valid.Fingerprint); err != nil {
			return nil, fmt.Errorf("validation features %s: %w", valid.Name, err)
		}
		if valid.D != train.D {
			return nil, errorf(ErrDimension, "head: validation features %s have %d columns; the training features %s have %d", valid.Name, valid.D, train.Name, train.D)
		}
	}
	switch o.Kind {
	case LogReg:
		h, err := FitLogRegContext(ctx, train, o.LogReg)
		if err != nil || valid == nil {
			return h, err
		}
		r, err := h.Evaluate(valid)
		if err != nil {
			return nil, fmt.Errorf("validation features %s: %w", valid.Name, err)
		}
		h.Summary.ValidRows, h.Summary.ValidAccuracy = r.N, r.Accuracy
		return h, nil
	case MLP:
		return FitMLPContext(ctx, train, valid, o.MLP)
	}
	return nil, errorf(ErrBadSetting, "head: kind %v unknown; want one of logreg, mlp", o.Kind)
}
