package fileio

import "errors"

// Sentinel errors; the messages say which file and what to do.
var (
	// ErrIsDir: an output path that names an existing directory.
	ErrIsDir = errors.New("fileio: output is a directory")
	// ErrSameFile: an output path that is the same file as one of the inputs.
	ErrSameFile = errors.New("fileio: output is an input")
	// ErrLocked: an output another run (or another part of this one) is writing.
	ErrLocked = errors.New("fileio: output in use")
)
