package fileio

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/headstart-ml/headstart/internal/kinderr"
)

// CheckOutput refuses an output path that cannot or must not be written, so that a
// command fails before it does any work rather than after: an existing directory
// (ErrIsDir), a path whose directory does not exist or is not a directory, and a path
// that is the same file as one of inputs (ErrSameFile). Same file means, after following
// symlinks, the same device and inode (os.SameFile), so a symlink or a hard link to an
// input is caught as well as the same name; an input that does not exist is skipped (its
// reader reports it).
func CheckOutput(out string, inputs ...string) error {
	if out == "" {
		return errors.New("no output file given")
	}
	ost, err := os.Stat(out)
	switch {
	case err == nil && ost.IsDir():
		return kinderr.Errorf(ErrIsDir, "output %s is a directory; name a file", out)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("output %s: %w", out, err)
	}
	dir := filepath.Dir(out)
	if dst, err := os.Stat(dir); err != nil {
		return fmt.Errorf("output %s: its directory: %w", out, err)
	} else if !dst.IsDir() {
		return fmt.Errorf("output %s: %s is not a directory", out, dir)
	}
	absOut, _ := filepath.Abs(out)
	for _, in := range inputs {
		if in == "" || in == "-" {
			continue
		}
		if absIn, _ := filepath.Abs(in); absIn == absOut {
			return kinderr.Errorf(ErrSameFile, "output %s is the input %s; writing it would destroy the input: name another output file", out, in)
		}
		if ost == nil {
			continue
		}
		ist, err := os.Stat(in)
		if err != nil {
			continue
		}
		if os.SameFile(ost, ist) {
			return kinderr.Errorf(ErrSameFile, "output %s is the same file as the input %s (a link to it); writing it would destroy the input: name another output file", out, in)
		}
	}
	return nil
}

// Claim checks out against inputs (CheckOutput) and takes its lock (Lock): what every
// command does with each output before any work. Release the lock when the run ends.
func Claim(out string, inputs ...string) (*Locked, error) {
	if err := CheckOutput(out, inputs...); err != nil {
		return nil, err
	}
	return Lock(out)
}

// File is a new file that replaces its destination atomically: it is written under a
// unique temporary name in the destination's directory, and Commit renames it into
// place, so that readers (and a rerun after a crash) see the old file or the whole new
// one, never a part, and two writers never share a temporary file.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts a file that Commit will rename to path. The temporary file is
// .<base>.tmp-<random> in path's directory, created exclusively with mode 0666 less the
// process umask, as os.Create does (so outputs are 0644 under the usual umask 022).
func Create(path string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	for try := 0; ; try++ {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating %s: %w", path, err)
		}
		return &File{File: f, path: path}, nil
	}
}

// Path returns the destination Commit renames the file to.
func (f *File) Path() string { return f.path }

// Commit flushes the file to disk, closes it and renames it over the destination
// (replacing any file there), then flushes the directory entry where the system allows.
// On error the temporary file is removed and the destination is left as it was.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("writing %s: already committed or aborted", f.path)
	}
	f.done = true
	err := errors.Join(f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", f.path, err), removeIfExists(f.Name()))
	}
	SyncDir(filepath.Dir(f.path))
	return nil
}

// Abort closes and removes the temporary file. It does nothing after Commit or a first
// Abort, so it can be deferred.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	cerr := f.Close()
	if errors.Is(cerr, os.ErrClosed) {
		cerr = nil
	}
	return errors.Join(cerr, removeIfExists(f.Name()))
}

// WriteFile writes b to path atomically (Create, Write, Commit).
func WriteFile(path string, b []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", path, err), f.Abort())
	}
	return f.Commit()
}

// SyncDir flushes a directory's entries (a rename) to disk, best effort: some file
// systems refuse to sync directories.
func SyncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
