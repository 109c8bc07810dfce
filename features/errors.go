package features

import (
	"errors"

	"github.com/headstart-ml/headstart/internal/kinderr"
)

// Sentinel errors. Errors about data, stores and checkpoints wrap one of these (test with
// errors.Is); their messages start with the file concerned, not with the package name,
// and name the line, row, column or tensor (data.csv: line 3 (row 1): ...). Errors from
// the operating system (a missing file, a full disk) are returned as they come, wrapped
// with what was being done.
var (
	// ErrUnknownFormat: a dataset format that is not csv, tsv or jsonl, or a path whose
	// extension does not tell.
	ErrUnknownFormat = errors.New("features: unknown dataset format")
	// ErrMissingColumn: the text column, or a label column the caller requires, is not in
	// the data (the message lists the columns found).
	ErrMissingColumn = errors.New("features: column not found")
	// ErrDuplicateColumn: a requested column name appears more than once in a header.
	ErrDuplicateColumn = errors.New("features: duplicate column")
	// ErrInvalidUTF8: a text or label field that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("features: invalid UTF-8")
	// ErrMalformedRow: a row that cannot be parsed (wrong number of fields, bad quoting,
	// a JSONL line that is not an object, a text that is not a string).
	ErrMalformedRow = errors.New("features: malformed row")
	// ErrLineTooLong: a row longer than ReaderOptions.MaxLineBytes (an input without
	// line ends, such as a binary file or a device).
	ErrLineTooLong = errors.New("features: row too long")
	// ErrUnknownPooling: a pooling name that is not one of mean, cls, max, last.
	ErrUnknownPooling = errors.New("features: unknown pooling")
	// ErrBadSpec: a Spec field that extraction cannot use (see Spec.Validate).
	ErrBadSpec = errors.New("features: invalid feature spec")
	// ErrSpecMismatch: two Specs that differ where they must agree (Spec.Compare).
	ErrSpecMismatch = errors.New("features: feature specs differ")
	// ErrUnknownDtype: a store dtype that is not f32 or f16.
	ErrUnknownDtype = errors.New("features: unknown dtype")
	// ErrCorruptStore: a feature store that is truncated, inconsistent or not a
	// headstart safetensors file.
	ErrCorruptStore = errors.New("features: corrupt feature store")
	// ErrRowCount: a Writer was given more rows than it was created for, or closed
	// with fewer.
	ErrRowCount = errors.New("features: row count mismatch")
	// ErrBadLabel: a label index outside [-1, len(Manifest.LabelNames)).
	ErrBadLabel = errors.New("features: label out of range")
	// ErrCheckpointMismatch: a checkpoint that was made with different options.
	ErrCheckpointMismatch = errors.New("features: checkpoint made with different options")
	// ErrCorruptCheckpoint: a checkpoint whose files disagree with each other.
	ErrCorruptCheckpoint = errors.New("features: corrupt checkpoint")
)

// errorf formats a message (which may wrap a cause with %w) and tags it with a sentinel
// above, so that errors.Is matches it.
func errorf(kind error, format string, args ...any) error {
	return kinderr.Errorf(kind, format, args...)
}
