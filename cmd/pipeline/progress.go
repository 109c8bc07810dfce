package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// count writes n with the noun's singular or plural form: "1 session", "2 sessions".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// progress reports long work on stderr: a bar with rate and ETA when stderr is a terminal,
// nothing per step otherwise (the command prints a one-line summary at the end).
type progress struct {
	bar   *progressbar.ProgressBar
	start time.Time
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newProgress(w io.Writer, desc, unit string) *progress {
	p := &progress{start: time.Now()}
	if isTerminal(w) {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// Start sets the total and the amount already done (resumed work).
func (p *progress) Start(total, done int) {
	if p.bar != nil {
		p.bar.ChangeMax64(int64(total))
		p.bar.Set64(int64(done))
	}
}

// Add records n more units done.
func (p *progress) Add(n int) {
	if p.bar != nil {
		p.bar.Add(n)
	}
}

// Finish clears the bar.
func (p *progress) Finish() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprint(p.bar, "")
	}
}
