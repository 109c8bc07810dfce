package features

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// guard is how long a test waits for something that must happen at once before it
// fails instead of hanging; it is not a timing assertion.
const guard = 20 * time.Second

// zeros is an endless input without a line end, like /dev/zero; n counts bytes given.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.n += int64(len(p))
	return len(p), nil
}

func TestLineBound(t *testing.T) {
	long := strings.Repeat("x", 110)
	for _, c := range []struct {
		name, data string
		format     Format
		want       string // "" when the data is read without error
	}{
		{"csv at the bound", "text\n" + long[:100] + "\n", FormatCSV, ""},
		{"csv row", "text,label\nok,a\n" + long + ",b\nok,c\n", FormatCSV, "row 1"},
		{"csv header", long + "\nok\n", FormatCSV, "header"},
		{"csv quoted field over lines", "text\n\"" + strings.Repeat("abc\n", 30) + "\"\n", FormatCSV, "row 0"},
		{"tsv row", "text\tlabel\nok\ta\n" + long + "\tb\n", FormatTSV, "line 3 (row 1)"},
		{"tsv at the bound", "text\n" + long[:100] + "\n", FormatTSV, ""},
		{"jsonl first row", `{"text": "` + long + `"}` + "\n", FormatJSONL, "line 1 (row 0)"},
		{"jsonl row", `{"text": "a"}` + "\n\n" + `{"text": "` + long + `"}` + "\n", FormatJSONL, "line 3 (row 1)"},
		{"blank lines do not add up", "text\tlabel\n" + strings.Repeat("\n", 300) + "ok\ta\n", FormatTSV, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := readAllBounded(strings.NewReader(c.data), ReaderOptions{Format: c.format, MaxLineBytes: 100})
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "100 bytes") {
				t.Fatalf("err %v; want ErrLineTooLong naming %q and the bound", err, c.want)
			}
		})
	}
	// No line end at all: the error comes after reading the bound and at most two
	// buffers more, with the default bound.
	for _, f := range []Format{FormatCSV, FormatTSV, FormatJSONL} {
		z := &zeros{}
		err := readAllBounded(z, ReaderOptions{Format: f})
		if !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("%v from an endless line: %v", f, err)
		}
		if z.n > DefaultMaxLineBytes+2*readBuf {
			t.Errorf("%v: read %d bytes of an endless line; want at most %d", f, z.n, DefaultMaxLineBytes+2*readBuf)
		}
	}
	// A negative bound reads a long line whole.
	if err := readAllBounded(strings.NewReader("text\n"+long+"\n"), ReaderOptions{Format: FormatCSV, MaxLineBytes: -1}); err != nil {
		t.Fatal(err)
	}
}

func readAllBounded(src io.Reader, opts ReaderOptions) error {
	r, err := NewReader(src, "data", opts)
	if err != nil {
		return err
	}
	for r.Next() {
	}
	return r.Err()
}

// fifo makes a named pipe in a temporary directory.
func fifo(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return p
}

// within runs f and fails the test if it has not returned within guard.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("%s: still blocked after %v", what, guard)
	}
}

// TestReaderContext: cancelling the context stops a Reader at once, even one waiting
// for a FIFO's writer or blocked reading an idle pipe.
func TestReaderContext(t *testing.T) {
	// A regular file: Next stops at the next row.
	path := filepath.Join(t.TempDir(), "d.csv")
	os.WriteFile(path, []byte("text\na\nb\nc\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := OpenContext(ctx, path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	cancel()
	if r.Next() || !errors.Is(r.Err(), context.Canceled) || !strings.Contains(r.Err().Error(), "row 1") {
		t.Fatalf("after cancel: Next, %v; want false, context.Canceled at row 1", r.Err())
	}
	r.Close()

	// A FIFO nobody writes to: Open waits for a writer until ctx is done.
	p := fifo(t, "nowriter.csv")
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	within(t, "OpenContext of a FIFO without a writer", func() {
		if _, err := OpenContext(ctx, p, ReaderOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("OpenContext: %v; want context.Canceled", err)
		}
	})

	// A FIFO whose writer sends a row and then idles: Next blocks until ctx is done.
	p = fifo(t, "idle.csv")
	w := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			w <- nil
			return
		}
		f.WriteString("text\nfirst\n")
		w <- f
	}()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r, err = OpenContext(ctx, p, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writer := <-w
	if writer == nil {
		t.Fatal("could not open the FIFO for writing")
	}
	defer writer.Close()
	if !r.Next() || r.Row().Text != "first" {
		t.Fatalf("first row: %+v, %v", r.Row(), r.Err())
	}
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	within(t, "Next on an idle FIFO", func() {
		if r.Next() || !errors.Is(r.Err(), context.Canceled) {
			t.Errorf("Next on an idle FIFO after cancel: %v; want context.Canceled", r.Err())
		}
	})
	r.Close()
}

// TestScanSpool: a FIFO is scanned once into a spool, which holds exactly the bytes a
// second pass needs; the summary matches a scan of the same bytes in a regular file.
func TestScanSpool(t *testing.T) {
	data := "text,label\nhello,a\nworld,b\n\nagain,a\nlast,c\n"
	regular := filepath.Join(t.TempDir(), "d.csv")
	os.WriteFile(regular, []byte(data), 0o644)
	for _, limit := range []int{0, 2} {
		want, err := Scan(regular, ReaderOptions{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		p := fifo(t, "d.csv")
		go func() {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err == nil {
				f.WriteString(data)
				f.Close()
			}
		}()
		if _, err := Scan(p, ReaderOptions{}); err == nil {
			t.Fatal("Scan of a FIFO without a spool: no error")
		}
		spool, err := os.CreateTemp(t.TempDir(), "spool")
		if err != nil {
			t.Fatal(err)
		}
		var got Summary
		within(t, "ScanContext of a FIFO", func() {
			got, err = ScanContext(context.Background(), p, ReaderOptions{Limit: limit}, spool)
		})
		if err != nil {
			t.Fatal(err)
		}
		spool.Close()
		b, _ := os.ReadFile(spool.Name())
		wantBytes := data
		if limit == 2 {
			wantBytes = "text,label\nhello,a\nworld,b\n"
		}
		sum := sha256.Sum256([]byte(wantBytes))
		if string(b) != wantBytes || got.SHA256 != hex.EncodeToString(sum[:]) || got.Bytes != int64(len(wantBytes)) {
			t.Fatalf("limit %d: spool %q (sha %s, %d bytes); want %q", limit, b, got.SHA256, got.Bytes, wantBytes)
		}
		if got.Rows != want.Rows || strings.Join(got.Labels, ",") != strings.Join(want.Labels, ",") || got.Labelled != want.Labelled {
			t.Fatalf("limit %d: spooled scan %+v; want %+v", limit, got, want)
		}
	}
}
