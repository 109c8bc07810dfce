package head

import (
	"errors"

	"github.com/headstart-ml/headstart/internal/kinderr"
)

// Sentinel errors. Errors returned by this package wrap one of these (test with
// errors.Is) and carry a message that names the file, row, label or setting concerned.
// A fit cancelled by its context (FitContext) wraps the context's error instead.
var (
	// ErrEmpty: a data set or feature store without rows.
	ErrEmpty = errors.New("head: no rows")
	// ErrNonFinite: a feature that is NaN or ±Inf (the message names the row and column).
	ErrNonFinite = errors.New("head: feature is NaN or infinite")
	// ErrUnlabelled: a row without a label where fitting or evaluation needs one.
	ErrUnlabelled = errors.New("head: row has no label")
	// ErrSingleClass: training labels of only one class (or a multi-label column that is
	// constant), so there is nothing to separate.
	ErrSingleClass = errors.New("head: training data has a single class")
	// ErrEmptyClass: a class named in a Dataset with no training row.
	ErrEmptyClass = errors.New("head: class has no training rows")
	// ErrUnseenLabel: evaluation labels that the head was not trained on (the message
	// lists them).
	ErrUnseenLabel = errors.New("head: label not seen in training")
	// ErrDimension: features whose dimension differs from the head's or the training
	// set's.
	ErrDimension = errors.New("head: feature dimension mismatch")
	// ErrFingerprint: features made by another backbone or with other extraction settings
	// than the head's training features (the message names the field and both values).
	ErrFingerprint = errors.New("head: features do not match the head's fingerprint")
	// ErrBadSetting: an invalid training setting: C <= 0, a bad grid, a dropout outside
	// [0, 1), ... (the message names the setting and the valid range).
	ErrBadSetting = errors.New("head: invalid setting")
	// ErrCorruptHead: a head file that is truncated, edited, fails its checksum, or is not
	// a headstart head.
	ErrCorruptHead = errors.New("head: corrupt head file")
	// ErrVersion: a head file written by a newer format version.
	ErrVersion = errors.New("head: unsupported head file version")
	// ErrCheckpoint: an MLP training checkpoint that is corrupt, or was made with other
	// training data or settings than the run resuming it.
	ErrCheckpoint = errors.New("head: unusable training checkpoint")
)

// errorf formats a message (which may wrap a cause with %w) and tags it with a sentinel
// above, so that errors.Is matches it.
func errorf(kind error, format string, args ...any) error {
	return kinderr.Errorf(kind, format, args...)
}
