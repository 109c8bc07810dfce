package fileio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/headstart-ml/headstart/internal/kinderr"
)

// Locked is a held output lock (Lock, Claim).
type Locked struct {
	f    *os.File // nil where the system has no flock
	path string   // the lock file, OUT.lock
}

// Lock takes the exclusive lock of the output out: an flock(2) on out+".lock", which
// holds this process's pid and command line. If another run holds it, the error wraps
// ErrLocked and names that run. The lock file is removed by Release; a killed run's lock
// is dropped by the kernel, and its leftover file is taken over by the next run.
func Lock(out string) (*Locked, error) {
	l, err := tryLock(out + ".lock")
	if err != nil {
		return nil, err
	}
	return l, nil
}

// LockWait is Lock, waiting while another run holds the lock, until ctx is done.
func LockWait(ctx context.Context, out string) (*Locked, error) {
	wait := 10 * time.Millisecond
	for {
		l, err := tryLock(out + ".lock")
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// testHookOpened, when set, runs between opening the lock file and locking it.
var testHookOpened func()

// tryLock opens (creating) path and locks it without waiting. A lock file can be
// removed by its holder's Release between our open and our flock; then the lock we got
// is on a file no other run can see, so the path is checked to still be that file, and
// the whole step is retried when it is not.
func tryLock(path string) (*Locked, error) {
	for try := 0; ; try++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if testHookOpened != nil {
			testHookOpened()
		}
		ok, err := flock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !ok {
			b, _ := os.ReadFile(path)
			f.Close()
			who := strings.TrimSpace(string(b))
			if who == "" {
				who = "a run that has not yet said which"
			}
			out := strings.TrimSuffix(path, ".lock")
			return nil, kinderr.Errorf(ErrLocked, "%s is being written by another run (%s; lock %s): wait for it to finish, or write elsewhere", out, who, path)
		}
		fst, err1 := f.Stat()
		pst, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(fst, pst) {
			f.Close()
			if try < 100 {
				continue
			}
			return nil, fmt.Errorf("locking %s: the lock file keeps being replaced", path)
		}
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(fmt.Sprintf("pid %d: %s\n", os.Getpid(), strings.Join(os.Args, " "))), 0)
		}
		return &Locked{f: f, path: path}, nil
	}
}

// Release removes the lock file and drops the lock. It does nothing on a nil or
// released lock, so it can be deferred.
func (l *Locked) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Removed while still held: a run that opened the file before the removal finds
	// that it no longer is the path's file once it gets the lock, and starts again.
	err := removeIfExists(l.path)
	err = errors.Join(err, l.f.Close())
	l.f = nil
	if err != nil {
		return fmt.Errorf("releasing %s: %w", l.path, err)
	}
	return nil
}
