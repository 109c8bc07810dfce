package main

import (
	"bufio"
	"io"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// stream is a command's row-by-row output (predict, tokenize): stdout when --out is "-",
// else a temporary file beside --out that commit renames into place and abort removes.
type stream struct {
	*bufio.Writer
	tmp *fileio.File // nil for stdout
}

// openStream opens out ("-" for stdout) through the one output path.
func openStream(out string, stdout io.Writer) (*stream, error) {
	if out == "-" {
		return &stream{Writer: bufio.NewWriterSize(stdout, 1<<16)}, nil
	}
	tmp, err := fileio.Create(out)
	if err != nil {
		return nil, err
	}
	return &stream{Writer: bufio.NewWriterSize(tmp, 1<<16), tmp: tmp}, nil
}

// commit flushes the buffer and, for a file, renames it into place.
func (s *stream) commit() error {
	if err := s.Flush(); err != nil {
		return err
	}
	if s.tmp == nil {
		return nil
	}
	return s.tmp.Commit()
}

// abort removes a file's temporary (stdout has nothing to undo).
func (s *stream) abort() error {
	if s.tmp == nil {
		return nil
	}
	return s.tmp.Abort()
}
