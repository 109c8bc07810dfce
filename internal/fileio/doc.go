// Package fileio is the one way headstart writes a file, and its one file hash.
//
// Every command that writes an output goes through it:
//
//	Claim(out, inputs...)  before any work: refuse an output that is an existing
//	                       directory, whose directory is missing, or that is the same
//	                       file as an input (symlinks followed; the same device and
//	                       inode, so hard links too); then take the output's lock
//	Create(path)           a new file with a unique temporary name in path's directory,
//	                       mode 0666 less the umask (as os.Create); Commit syncs it and
//	                       renames it over path, Abort removes it
//	WriteFile(path, b)     Create, write, Commit
//	SHA256(path)           the hex SHA-256 of a file's content
//
// The lock is an exclusive flock(2) on OUT.lock, held for the whole run, so that a
// second run writing the same output (and its OUT.partial checkpoint) is refused at
// once, with the other run's pid and command line, instead of mixing its rows into the
// first one's. It is released by Release or by the process's death (the kernel drops
// it), so a killed run never leaves a stale lock. On systems without flock, and on file
// systems that refuse it, the lock is not taken.
package fileio
