//go:build unix

package fileio

import (
	"errors"
	"os"
	"syscall"
)

// flock takes an exclusive lock on f without waiting; false when another open file
// holds it. On a file system that has no locks it reports the lock taken.
func flock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			// A file system without locks (some FUSE and network mounts): write
			// unlocked rather than refuse every command there.
			return true, nil
		}
		return false, err
	}
}
