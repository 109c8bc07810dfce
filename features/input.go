package features

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
)

// DefaultMaxLineBytes is the default bound on the length of one row (ReaderOptions.
// MaxLineBytes): far above any text a model reads (512 tokens are a few KiB), far below
// what would exhaust memory.
const DefaultMaxLineBytes = 4 << 20

// readBuf is the size of the Reader's read buffer: the most a row may overrun
// MaxLineBytes before the reader notices.
const readBuf = 64 << 10

// errLineTooLong is returned by source.Read once the current row has run past the
// bound; the Reader turns it into an ErrLineTooLong error naming the row.
var errLineTooLong = errors.New("line too long")

// SinglePass reports whether the dataset at path can be read only once: standard input
// ("-"), a named pipe (FIFO), a character device or a socket, following symbolic links.
// Such an input is read in one pass (Scan with a spool, Reader) and never opened twice.
// A path that cannot be examined is reported as not single-pass (opening it will say
// why).
func SinglePass(path string) bool {
	if path == "-" {
		return true
	}
	st, err := os.Stat(path)
	return err == nil && !st.Mode().IsRegular() && !st.IsDir()
}

// openInput opens path for reading. A FIFO's open blocks until a writer opens it, so it
// is opened in a goroutine and abandoned when ctx is done.
func openInput(ctx context.Context, path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return os.Open(path)
	}
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		ch <- opened{f, err}
	}()
	select {
	case o := <-ch:
		return o.f, o.err
	case <-ctx.Done():
	}
	// Release the goroutine: opening the write end without blocking succeeds now that
	// a reader waits, which completes the reader's open; both are then closed.
	if fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
		defer syscall.Close(fd)
		if o := <-ch; o.f != nil {
			o.f.Close()
		}
	} else {
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
	}
	return nil, ctx.Err()
}

// source is what a Reader reads through: it stops at the first Read after ctx is done,
// counts the bytes it hands out, copies them to tee when set, and refuses to read
// further into a row that has run past max bytes (mark is where the row began, in the
// same count).
type source struct {
	ctx  context.Context
	r    io.Reader
	tee  io.Writer
	n    int64 // bytes read from r
	mark int64 // n at the start of the current row
	max  int64 // 0: no bound
}

func (s *source) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.max > 0 && s.n-s.mark > s.max+readBuf {
		return 0, errLineTooLong
	}
	n, err := s.r.Read(p)
	if n > 0 && s.tee != nil {
		if _, werr := s.tee.Write(p[:n]); werr != nil {
			return n, werr
		}
	}
	s.n += int64(n)
	return n, err
}

// asyncReader reads src in a goroutine of its own so that a Read blocked on a pipe or a
// terminal (standard input, a FIFO whose writer is idle) returns as soon as ctx is done.
// The goroutine ends when ctx is done or stop is called, at the latest when its
// pending Read returns.
type asyncReader struct {
	ctx      context.Context
	buf      []byte
	rest     []byte // received but not yet handed out
	want     chan struct{}
	got      chan asyncResult
	done     chan struct{}
	stopOnce sync.Once
	pending  bool
	err      error
}

type asyncResult struct {
	n   int
	err error
}

func newAsyncReader(ctx context.Context, src io.Reader) *asyncReader {
	a := &asyncReader{ctx: ctx, buf: make([]byte, readBuf), want: make(chan struct{}), got: make(chan asyncResult), done: make(chan struct{})}
	go func() {
		for {
			select {
			case <-a.want:
			case <-ctx.Done():
				return
			case <-a.done:
				return
			}
			n, err := src.Read(a.buf)
			select {
			case a.got <- asyncResult{n, err}:
			case <-ctx.Done():
				return
			case <-a.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return a
}

func (a *asyncReader) Read(p []byte) (int, error) {
	if len(a.rest) > 0 {
		n := copy(p, a.rest)
		a.rest = a.rest[n:]
		return n, nil
	}
	if a.err != nil {
		return 0, a.err
	}
	if !a.pending {
		select {
		case a.want <- struct{}{}:
			a.pending = true
		case <-a.ctx.Done():
			return 0, a.ctx.Err()
		}
	}
	select {
	case r := <-a.got:
		a.pending = false
		a.rest, a.err = a.buf[:r.n], r.err
		n := copy(p, a.rest)
		a.rest = a.rest[n:]
		if len(a.rest) > 0 {
			return n, nil
		}
		return n, a.err
	case <-a.ctx.Done():
		return 0, a.ctx.Err()
	}
}

// stop lets the goroutine end without waiting for ctx.
func (a *asyncReader) stop() { a.stopOnce.Do(func() { close(a.done) }) }
