// Package kinderr tags a fully written error message with a sentinel: the message says
// everything (file, row, what was expected), and errors.Is still matches the sentinel.
// The packages of headstart that keep their sentinels together use it for errorf.
package kinderr

import "fmt"

type kindError struct {
	kind error // the sentinel
	err  error // the full message, possibly wrapping a cause
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// Errorf formats a message (which may wrap a cause with %w) and tags it with kind.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
