package experiment

import (
	"strings"
	"testing"
)

// TestRecommend: per size, the best mean accuracy wins (the cheaper of two equal
// ones), and the cheapest strategy whose mean is within the best's standard deviation
// is named with the fraction of the time it takes; a strategy just outside that band
// is not, however cheap.
func TestRecommend(t *testing.T) {
	summary := []Summary{
		{Strategy: "logreg", Shots: 64, AccuracyMean: 0.900, AccuracyStd: 0.010, TrainSeconds: 0.3, MemSeeds: 3, MemKind: "rss", PeakIncreaseMiB: 2},
		{Strategy: "full-top1", Shots: 64, AccuracyMean: 0.905, AccuracyStd: 0.010, TrainSeconds: 9},
		{Strategy: "full-top2", Shots: 64, AccuracyMean: 0.919, AccuracyStd: 0.020, TrainSeconds: 27, MemSeeds: 3, MemKind: "rss", PeakIncreaseMiB: 140},
		{Strategy: "full-top6", Shots: 64, AccuracyMean: 0.910, AccuracyStd: 0.030, TrainSeconds: 81},

		// At 8: the frozen head is best; nothing cheaper.
		{Strategy: "logreg", Shots: 8, AccuracyMean: 0.70, AccuracyStd: 0.05, TrainSeconds: 0.01},
		{Strategy: "full-top2", Shots: 8, AccuracyMean: 0.62, AccuracyStd: 0.01, TrainSeconds: 5},

		// At 16: a tie on the mean goes to the cheaper; the cheapest strategy lies just
		// outside one sd (0.8 - 0.01 > 0.789), the next cheapest inside.
		{Strategy: "logreg", Shots: 16, AccuracyMean: 0.789, AccuracyStd: 0, TrainSeconds: 0.01},
		{Strategy: "lora-top1", Shots: 16, AccuracyMean: 0.795, AccuracyStd: 0.02, TrainSeconds: 4},
		{Strategy: "full-top3", Shots: 16, AccuracyMean: 0.800, AccuracyStd: 0.01, TrainSeconds: 30},
		{Strategy: "reinit-top3", Shots: 16, AccuracyMean: 0.800, AccuracyStd: 0.01, TrainSeconds: 20},
	}
	recs := Recommend(summary)
	if len(recs) != 3 || recs[0].Shots != 64 || recs[1].Shots != 8 || recs[2].Shots != 16 {
		t.Fatalf("recommendations %+v; want one per size in order 64, 8, 16", recs)
	}
	cases := []struct {
		best, cheapest string
		text           []string
	}{
		{"full-top2", "logreg", []string{"64/class: full-top2 is best, 0.919 ± 0.020", "+1.9 points over frozen logreg (0.900)",
			"logreg is within 1 sd (0.900) at 1/90 of the time (0.30 s against 27.0 s", "peak rss +2 MiB against +140 MiB"}},
		{"logreg", "logreg", []string{"8/class: logreg is best, 0.700 ± 0.050; nothing cheaper is within 1 sd of it"}},
		{"reinit-top3", "lora-top1", []string{"16/class: reinit-top3 is best", "+1.1 points over frozen logreg", "lora-top1 is within 1 sd (0.795) at 1/5 of the time"}},
	}
	for i, c := range cases {
		r := recs[i]
		if r.Best.Strategy != c.best || r.Cheapest.Strategy != c.cheapest {
			t.Errorf("shots %d: best %s, cheapest %s; want %s, %s", r.Shots, r.Best.Strategy, r.Cheapest.Strategy, c.best, c.cheapest)
		}
		for _, want := range c.text {
			if !strings.Contains(r.Text, want) {
				t.Errorf("shots %d: %q lacks %q", r.Shots, r.Text, want)
			}
		}
	}
	if recs[1].Frozen == nil || recs[1].Frozen.Strategy != "logreg" {
		t.Errorf("8/class: frozen baseline %+v", recs[1].Frozen)
	}
	if got := fraction(0.00003, 65); got != "under 1/1000" {
		t.Errorf("fraction(3e-5, 65) = %q", got)
	}
	md := string((&Results{Summary: summary}).Markdown("t"))
	if !strings.Contains(md, "## Recommendation") || !strings.HasSuffix(strings.TrimSpace(md), recs[2].Text) {
		t.Errorf("results.md does not end with the recommendations:\n%s", md)
	}
}
