//go:build unix

package fileio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestCheckOutput(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte("text\nhello\n"), 0o644)
	sym, hard := filepath.Join(dir, "sym.csv"), filepath.Join(dir, "hard.csv")
	if err := os.Symlink(in, sym); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(in, hard); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(mustGetwd(t), in)
	cases := []struct {
		name, out string
		want      error  // nil: accepted
		msg       string // with want == nil and msg set: another error mentioning msg
	}{
		{"new file", filepath.Join(dir, "out.st"), nil, ""},
		{"same name", in, ErrSameFile, ""},
		{"same file, other spelling", filepath.Join(dir, ".", "x", "..", "in.csv"), ErrSameFile, ""},
		{"relative", rel, ErrSameFile, ""},
		{"symlink", sym, ErrSameFile, ""},
		{"hard link", hard, ErrSameFile, ""},
		{"directory", dir, ErrIsDir, ""},
		{"missing directory", filepath.Join(dir, "none", "o.st"), nil, "none"},
		{"parent is a file", filepath.Join(in, "o.st"), nil, "not a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckOutput(c.out, "", in, filepath.Join(dir, "missing-input"))
			switch {
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("err %v; want %v", err, c.want)
			case c.want == nil && c.msg == "" && err != nil:
				t.Fatalf("err %v; want nil", err)
			case c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)):
				t.Fatalf("err %v; want one mentioning %q", err, c.msg)
			}
		})
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

// TestCreateMode: files are created 0666 less the umask, as os.Create does, and the
// destination gets that mode.
func TestCreateMode(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	p := filepath.Join(dir, "o.bin")
	if err := WriteFile(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v; want -rw-r-----", st.Mode().Perm())
	}
}

// TestCreateUnique: two writers of one destination never share a temporary file, and a
// failed or abandoned write leaves nothing behind and the destination unchanged.
func TestCreateUnique(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "o.bin")
	os.WriteFile(p, []byte("old"), 0o644)
	a, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() == b.Name() {
		t.Fatalf("both writers got %s", a.Name())
	}
	a.WriteString("from a")
	b.WriteString("from b")
	if err := b.Abort(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("abort changed the destination to %q", got)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := a.Abort(); err != nil { // a deferred Abort after Commit does nothing
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "from a" {
		t.Fatalf("destination %q", got)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) > 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// TestLock: a second lock of one output is refused, naming the holder; after Release it
// is free again, and the lock file is gone.
func TestLock(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o.st")
	l, err := Lock(out)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(out)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second lock: %v; want ErrLocked naming pid %d", err, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after Release: %v", err)
	}
	l2, err := Lock(out)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

// TestLockRace: goroutines taking and releasing one lock many times never hold it two
// at once (the removal of the lock file by Release must not let two runs in).
func TestLockRace(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o.st")
	var mu sync.Mutex
	holders, maxHolders, got := 0, 0, 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				l, err := Lock(out)
				if errors.Is(err, ErrLocked) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				holders++
				got++
				maxHolders = max(maxHolders, holders)
				mu.Unlock()
				runtime.Gosched() // let the others try while this one holds it
				mu.Lock()
				holders--
				mu.Unlock()
				if err := l.Release(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if maxHolders != 1 || got == 0 {
		t.Fatalf("%d locks taken, at most %d at once; want at most 1", got, maxHolders)
	}
}

// TestLockFileReplaced: when the holder's Release removes the lock file between a
// waiter's open and its flock, the waiter must not keep the lock of the removed file
// (which no later run can see): it starts again on the new file, so that a third run is
// still refused.
func TestLockFileReplaced(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o.st")
	holder, err := Lock(out)
	if err != nil {
		t.Fatal(err)
	}
	testHookOpened = func() {
		testHookOpened = nil
		holder.Release() // removes the file the waiter has just opened
	}
	defer func() { testHookOpened = nil }()
	l, err := Lock(out)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if l3, err := Lock(out); !errors.Is(err, ErrLocked) {
		l3.Release()
		t.Fatalf("a third run got the lock too (err %v): two runs hold it", err)
	}
}

// TestLockWait: a waiting lock is granted once the holder releases, and gives up when
// its context ends.
func TestLockWait(t *testing.T) {
	out := filepath.Join(t.TempDir(), "o.st")
	l, err := Lock(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LockWait(ctx, out); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLocked) {
		t.Fatalf("cancelled wait: %v", err)
	}
	done := make(chan error)
	go func() {
		l2, err := LockWait(context.Background(), out)
		if err == nil {
			err = l2.Release()
		}
		done <- err
	}()
	l.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSHA256(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("abc"), 0o644)
	got, err := SHA256(p)
	// sha256("abc"), FIPS 180-2 appendix B.1.
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; err != nil || got != want {
		t.Fatalf("%s, %v; want %s", got, err, want)
	}
}
