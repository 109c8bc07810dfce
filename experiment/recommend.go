package experiment

import (
	"fmt"
	"strings"
)

// Recommendation is the advice of a grid for one training-set size.
type Recommendation struct {
	Shots int
	// Best has the highest mean test accuracy (the less fit time first among equals).
	Best Summary
	// Cheapest has the least mean fit time among the strategies whose mean accuracy is
	// within one standard deviation of Best's (Best's standard deviation over seeds):
	// Best itself when none is cheaper.
	Cheapest Summary
	// Frozen is logreg on the frozen features at the same size, nil when the grid has
	// none: the baseline the gain is counted from.
	Frozen *Summary
	// Text says it in one line, e.g. "64/class: full-top2 is best, 0.912 ± 0.004,
	// +1.9 points over frozen logreg; logreg is within 1 sd at 1/90 of the time".
	Text string
}

// Recommend gives, for each training-set size of the summary (in the order they
// appear), the best strategy and the cheapest one within one standard deviation of it
// (Recommendation).
func Recommend(summary []Summary) []Recommendation {
	var out []Recommendation
	for _, n := range shotCounts(summary) {
		var group []Summary
		for _, s := range summary {
			if s.Shots == n {
				group = append(group, s)
			}
		}
		best := group[0]
		for _, s := range group[1:] {
			if s.AccuracyMean > best.AccuracyMean || s.AccuracyMean == best.AccuracyMean && s.TrainSeconds < best.TrainSeconds {
				best = s
			}
		}
		cheap := best
		for _, s := range group {
			if s.AccuracyMean >= best.AccuracyMean-best.AccuracyStd && s.TrainSeconds < cheap.TrainSeconds {
				cheap = s
			}
		}
		r := Recommendation{Shots: n, Best: best, Cheapest: cheap}
		for i := range group {
			if group[i].Strategy == "logreg" {
				r.Frozen = &group[i]
			}
		}
		r.Text = r.text()
		out = append(out, r)
	}
	return out
}

func (r Recommendation) text() string {
	var b strings.Builder
	size := ShotsName(r.Shots) + "/class"
	if r.Shots == All {
		size = "all rows"
	}
	fmt.Fprintf(&b, "%s: %s is best, %.3f ± %.3f", size, r.Best.Strategy, r.Best.AccuracyMean, r.Best.AccuracyStd)
	if f := r.Frozen; f != nil && f.Strategy != r.Best.Strategy {
		fmt.Fprintf(&b, ", %+.1f points over frozen logreg (%.3f)", 100*(r.Best.AccuracyMean-f.AccuracyMean), f.AccuracyMean)
	}
	if r.Cheapest.Strategy == r.Best.Strategy {
		b.WriteString("; nothing cheaper is within 1 sd of it")
		fmt.Fprintf(&b, " (fit %s%s)", seconds(r.Best.TrainSeconds), memNote(r.Best))
		return b.String()
	}
	c := r.Cheapest
	fmt.Fprintf(&b, "; %s is within 1 sd (%.3f) at %s of the time (%s against %s", c.Strategy, c.AccuracyMean,
		fraction(c.TrainSeconds, r.Best.TrainSeconds), seconds(c.TrainSeconds), seconds(r.Best.TrainSeconds))
	if c.MemSeeds > 0 && r.Best.MemSeeds > 0 && c.MemKind == r.Best.MemKind {
		fmt.Fprintf(&b, "; peak %s %+.0f MiB against %+.0f MiB over the fit's start", c.MemKind, c.PeakIncreaseMiB, r.Best.PeakIncreaseMiB)
	}
	b.WriteString(")")
	return b.String()
}

// memNote is ", peak rss +N MiB" for a summary with memory measured, "" otherwise.
func memNote(s Summary) string {
	if s.MemSeeds == 0 {
		return ""
	}
	return fmt.Sprintf(", peak %s %+.0f MiB", s.MemKind, s.PeakIncreaseMiB)
}

// seconds formats a fit time.
func seconds(s float64) string {
	switch {
	case s < 0.01:
		return "under 0.01 s"
	case s < 1:
		return fmt.Sprintf("%.2f s", s)
	case s < 100:
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

// fraction says what part part is of whole: "1/90", "under 1/1000", or "0.6x" when it
// is not small.
func fraction(part, whole float64) string {
	if part <= 0 {
		return "a negligible part"
	}
	r := whole / part
	if r >= 1000 {
		return "under 1/1000"
	}
	if r >= 2 {
		return fmt.Sprintf("1/%.0f", r)
	}
	return fmt.Sprintf("%.2gx", part/whole)
}
