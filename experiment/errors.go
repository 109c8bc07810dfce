package experiment

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (test with
// errors.Is) and carry a message that names the flag, class, file or cell concerned.
var (
	// ErrUnknownStrategy: a strategy name that does not exist (the message lists the
	// valid ones).
	ErrUnknownStrategy = errors.New("experiment: unknown strategy")
	// ErrBadGrid: an invalid grid setting: a shot count below 1, no seeds, no strategy.
	ErrBadGrid = errors.New("experiment: invalid grid")
	// ErrShotsTooLarge: a shot count above the size of a class, without capping.
	ErrShotsTooLarge = errors.New("experiment: more shots than rows in a class")
	// ErrUnseenLabel: test (or validation) labels that the training data lacks.
	ErrUnseenLabel = errors.New("experiment: label not in the training data")
	// ErrTooFewForValidation: too few training rows per class to hold some out for the
	// MLP's early stopping.
	ErrTooFewForValidation = errors.New("experiment: too few rows for early stopping")
	// ErrData: features that do not fit together (dimensions, layers, fingerprints).
	ErrData = errors.New("experiment: inconsistent data")
)
