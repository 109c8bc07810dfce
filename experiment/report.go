package experiment

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// Summary aggregates the cells of one strategy and shot count over seeds.
type Summary struct {
	Strategy string `json:"strategy"`
	Shots    int    `json:"shots"` // rows per class; 0 (All) for every row
	Seeds    int    `json:"seeds"`
	// TrainRows is the mean number of training rows.
	TrainRows    float64 `json:"train_rows"`
	AccuracyMean float64 `json:"accuracy_mean"`
	AccuracyStd  float64 `json:"accuracy_std"` // over seeds, n−1 denominator; 0 for one seed
	MacroF1Mean  float64 `json:"macro_f1_mean"`
	MacroF1Std   float64 `json:"macro_f1_std"`
	Params       int     `json:"params"`
	// TrainSeconds is the mean fit time, TrainSecondsStd its standard deviation.
	TrainSeconds    float64 `json:"train_seconds"`
	TrainSecondsStd float64 `json:"train_seconds_std"`
	// PeakMiB is the mean peak memory during the fits and PeakIncreaseMiB the mean
	// increase over the memory at each fit's start, over the cells that measured it
	// (MemSeeds of them; Cell.PeakMiB), of the kind MemKind ("rss" or "go-heap").
	PeakMiB         float64 `json:"peak_mib,omitempty"`
	PeakIncreaseMiB float64 `json:"peak_increase_mib,omitempty"`
	MemSeeds        int     `json:"mem_seeds,omitempty"`
	MemKind         string  `json:"mem_kind,omitempty"`
	// Family and Unfrozen describe the strategy (Strategy.Family, Strategy.Unfrozen)
	// and Embeddings whether it trains the embeddings; Summarize sets them from the
	// strategies it is given.
	Family     string `json:"family,omitempty"`
	Unfrozen   int    `json:"unfrozen"`
	Embeddings bool   `json:"embeddings,omitempty"`
}

// Summarize groups cells by (strategy, shots), keeping the order in which the groups
// first appear, and gives the mean and standard deviation over seeds. The strategies,
// where one is named by a cell, describe it (Summary.Family, Unfrozen, Embeddings).
func Summarize(cells []Cell, strategies ...Strategy) []Summary {
	var out []Summary
	var acc, f1, secs [][]float64
	for _, c := range cells {
		i := slices.IndexFunc(out, func(s Summary) bool { return s.Strategy == c.Strategy && s.Shots == c.Shots })
		if i < 0 {
			s := Summary{Strategy: c.Strategy, Shots: c.Shots, Params: c.Params}
			if j := slices.IndexFunc(strategies, func(st Strategy) bool { return st.Name == c.Strategy }); j >= 0 {
				st := strategies[j]
				s.Family, s.Unfrozen = st.Family(), st.Unfrozen()
				s.Embeddings = st.Top != nil && st.Top.Embeddings
			}
			out = append(out, s)
			acc, f1, secs = append(acc, nil), append(f1, nil), append(secs, nil)
			i = len(out) - 1
		}
		s := &out[i]
		s.Seeds++
		s.TrainRows += float64(c.TrainRows)
		acc[i] = append(acc[i], c.Accuracy)
		f1[i] = append(f1[i], c.MacroF1)
		secs[i] = append(secs[i], c.TrainSeconds)
		if c.MemKind != "" && (s.MemKind == "" || s.MemKind == c.MemKind) {
			s.MemKind = c.MemKind
			s.MemSeeds++
			s.PeakMiB += c.PeakMiB
			s.PeakIncreaseMiB += c.PeakMiB - c.StartMiB
		}
	}
	for i := range out {
		s := &out[i]
		s.TrainRows /= float64(s.Seeds)
		s.AccuracyMean, s.AccuracyStd = meanStd(acc[i])
		s.MacroF1Mean, s.MacroF1Std = meanStd(f1[i])
		s.TrainSeconds, s.TrainSecondsStd = meanStd(secs[i])
		if s.MemSeeds > 0 {
			s.PeakMiB /= float64(s.MemSeeds)
			s.PeakIncreaseMiB /= float64(s.MemSeeds)
		}
	}
	return out
}

// meanStd returns the mean and the sample standard deviation (n−1 denominator; 0 for
// a single value).
func meanStd(x []float64) (mean, std float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	if len(x) < 2 {
		return mean, 0
	}
	for _, v := range x {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(x)-1))
}

// Results is what `pipeline experiment` writes: the settings, the summary and every
// cell.
type Results struct {
	// Command is the command line that produced the results.
	Command string `json:"command,omitempty"`
	// Settings describe the run (model, data, extraction, machine, timings), written
	// sorted by key.
	Settings   map[string]string `json:"settings"`
	Strategies []Strategy        `json:"strategies"`
	Summary    []Summary         `json:"summary"`
	Cells      []Cell            `json:"cells"`
}

// JSON returns the results as indented JSON.
func (r *Results) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	return append(b, '\n'), err
}

// CSV returns the summary as CSV, one row per strategy and shot count:
// strategy, shots, seeds, train_rows, accuracy_mean, accuracy_std, macro_f1_mean,
// macro_f1_std, params, train_seconds, train_seconds_std, peak_mib, peak_increase_mib,
// mem_kind (the memory columns empty where not measured).
func (r *Results) CSV() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"strategy", "shots", "seeds", "train_rows", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "params", "train_seconds",
		"train_seconds_std", "peak_mib", "peak_increase_mib", "mem_kind"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, s := range r.Summary {
		peak, inc := "", ""
		if s.MemSeeds > 0 {
			peak, inc = f(s.PeakMiB), f(s.PeakIncreaseMiB)
		}
		w.Write([]string{s.Strategy, ShotsName(s.Shots), strconv.Itoa(s.Seeds), f(s.TrainRows), f(s.AccuracyMean), f(s.AccuracyStd),
			f(s.MacroF1Mean), f(s.MacroF1Std), strconv.Itoa(s.Params), f(s.TrainSeconds), f(s.TrainSecondsStd), peak, inc, s.MemKind})
	}
	w.Flush()
	return b.Bytes()
}

// Markdown returns the results as a markdown document: the command, the settings, and
// a table with one row per strategy and shot count.
func (r *Results) Markdown(title string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	if r.Command != "" {
		fmt.Fprintf(&b, "```\n%s\n```\n\n", r.Command)
	}
	writeSettings(&b, r.Settings)
	if len(r.Strategies) > 0 {
		b.WriteString("Strategies:\n\n")
		for _, s := range r.Strategies {
			fmt.Fprintf(&b, "- `%s`: %s\n", s.Name, s.About)
		}
		b.WriteString("\n")
	}
	b.WriteString("| strategy | shots/class | train rows | accuracy (mean ± std) | macro-F1 (mean ± std) | seeds | trainable params | train s | peak memory MiB (increase) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Summary {
		mem := "—"
		if s.MemSeeds > 0 {
			mem = fmt.Sprintf("%.0f (%+.0f) %s", s.PeakMiB, s.PeakIncreaseMiB, s.MemKind)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.4f ± %.4f | %.4f ± %.4f | %d | %d | %.2f | %s |\n", s.Strategy, ShotsName(s.Shots), s.TrainRows,
			s.AccuracyMean, s.AccuracyStd, s.MacroF1Mean, s.MacroF1Std, s.Seeds, s.Params, s.TrainSeconds, mem)
	}
	if recs := Recommend(r.Summary); len(recs) > 0 {
		b.WriteString("\n## Recommendation\n\n")
		b.WriteString("Per training-set size: the strategy of the best mean test accuracy, and the one of the least mean fit time " +
			"whose mean accuracy is within one standard deviation (the best's, over seeds) of it.\n\n")
		for _, rec := range recs {
			fmt.Fprintf(&b, "- %s\n", rec.Text)
		}
	}
	return []byte(b.String())
}

// writeSettings writes settings as a sorted markdown list.
func writeSettings(b *strings.Builder, settings map[string]string) {
	if len(settings) == 0 {
		return
	}
	var keys []string
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "- %s: %s\n", k, settings[k])
	}
	b.WriteString("\n")
}

// WriteFiles writes results.json, results.csv and results.md into dir, atomically.
func (r *Results) WriteFiles(dir, title string) error {
	js, err := r.JSON()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"results.json", js}, {"results.csv", r.CSV()}, {"results.md", r.Markdown(title)}} {
		if err := fileio.WriteFile(filepath.Join(dir, f.name), f.b); err != nil {
			return err
		}
	}
	return nil
}
