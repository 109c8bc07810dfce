package experiment

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/headstart-ml/headstart/head"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// MTEBSettings configure RunMTEB. The zero value is MTEB's default: 8 samples per
// label, 10 experiments, seed 42.
type MTEBSettings struct {
	// SamplesPerLabel is the number of training rows kept per label. Default 8.
	SamplesPerLabel int `json:"samples_per_label"`
	// Experiments is the number of draws averaged. Default 10.
	Experiments int `json:"experiments"`
	// Seed of numpy's generator. Default 42 (AbsTask's and Evaluator's default).
	Seed uint32 `json:"seed"`
	// Precision of the logistic regression's objective. Default head.Float32, what
	// scikit-learn computes on the float32 embeddings MTEB hands it.
	Precision head.Precision `json:"precision"`
	// Threads bounds the goroutines of each fit. Default runtime.GOMAXPROCS(0).
	Threads int `json:"-"`
	// Progress, when set, is called after every experiment.
	Progress func(MTEBExperiment) `json:"-"`
}

// MTEBExperiment is the result of one experiment.
type MTEBExperiment struct {
	Index        int     `json:"index"` // from 1
	TrainRows    int     `json:"train_rows"`
	Accuracy     float64 `json:"accuracy"`
	MacroF1      float64 `json:"macro_f1"`
	Iterations   int     `json:"iterations"`
	Converged    bool    `json:"converged"`
	TrainSeconds float64 `json:"train_seconds"`
}

// MTEBResult is the protocol's score: the mean over experiments (MTEB's main score for
// classification is the mean accuracy), with the standard deviation over experiments
// (n−1 denominator) and every experiment.
type MTEBResult struct {
	Settings     MTEBSettings     `json:"settings"`
	Accuracy     float64          `json:"accuracy"`
	AccuracyStd  float64          `json:"accuracy_std"`
	MacroF1      float64          `json:"macro_f1"`
	TestRows     int              `json:"test_rows"`
	Experiments  []MTEBExperiment `json:"experiments"`
	TrainSeconds float64          `json:"train_seconds"` // all fits
}

func (s *MTEBSettings) setDefaults() error {
	if s.SamplesPerLabel == 0 {
		s.SamplesPerLabel = 8
	}
	if s.Experiments == 0 {
		s.Experiments = 10
	}
	if s.Seed == 0 {
		s.Seed = 42
	}
	switch {
	case s.SamplesPerLabel < 1:
		return fmt.Errorf("%w: --samples-per-label %d; want at least 1", ErrBadGrid, s.SamplesPerLabel)
	case s.Experiments < 1:
		return fmt.Errorf("%w: --experiments %d; want at least 1", ErrBadGrid, s.Experiments)
	}
	return nil
}

// RunMTEB runs the MTEB classification protocol (see the package documentation) on the
// embeddings of train and test: per experiment, the rows MTEBUndersample selects (in
// its order) are fitted by scikit-learn's default LogisticRegression objective and
// solver (head.FitLogReg with C=1, tol 1e-4, max_iter 100, in s.Precision) and scored
// on every test row. Test labels must occur in train (ErrUnseenLabel). MTEB
// embeds with the model's sentence-transformers pipeline, which for
// all-MiniLM-L6-v2 is mean pooling and L2 normalisation at 256 tokens; extract the
// features the same way to compare with its published numbers.
func RunMTEB(ctx context.Context, train, test head.Dataset, s MTEBSettings) (MTEBResult, error) {
	if err := s.setDefaults(); err != nil {
		return MTEBResult{}, err
	}
	if err := UnseenLabels(train.Classes, test.Classes, test.Name, train.Name); err != nil {
		return MTEBResult{}, err
	}
	if train.D != test.D {
		return MTEBResult{}, fmt.Errorf("%w: test features %s have %d columns; the training features %s have %d", ErrData, test.Name, test.D, train.Name, train.D)
	}
	res := MTEBResult{Settings: s, TestRows: test.N}
	res.Settings.Progress = nil
	var acc, f1 []float64
	for e, rows := range MTEBUndersample(train.Labels, s.SamplesPerLabel, s.Experiments, s.Seed) {
		if err := ctx.Err(); err != nil {
			return MTEBResult{}, err
		}
		tr := subset(&train, rows)
		start := time.Now()
		h, err := head.FitLogReg(tr, head.LogRegSettings{C: 1, Tol: 1e-4, MaxIter: 100, Precision: s.Precision, Threads: s.Threads})
		elapsed := time.Since(start)
		if err != nil {
			return MTEBResult{}, fmt.Errorf("experiment %d: %w", e+1, err)
		}
		r, err := h.Evaluate(&test)
		if err != nil {
			return MTEBResult{}, fmt.Errorf("experiment %d: %w", e+1, err)
		}
		x := MTEBExperiment{Index: e + 1, TrainRows: tr.N, Accuracy: r.Accuracy, MacroF1: r.MacroF1,
			Iterations: h.Summary.Iterations, Converged: h.Summary.Converged, TrainSeconds: elapsed.Seconds()}
		res.Experiments = append(res.Experiments, x)
		res.TrainSeconds += x.TrainSeconds
		acc, f1 = append(acc, x.Accuracy), append(f1, x.MacroF1)
		if s.Progress != nil {
			s.Progress(x)
		}
	}
	res.Accuracy, res.AccuracyStd = meanStd(acc)
	res.MacroF1, _ = meanStd(f1)
	return res, nil
}

// Markdown returns the result as a markdown document: the command, the settings, the
// score and a table of the experiments.
func (r *MTEBResult) Markdown(title, command string, settings map[string]string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	if command != "" {
		fmt.Fprintf(&b, "```\n%s\n```\n\n", command)
	}
	writeSettings(&b, settings)
	fmt.Fprintf(&b, "**Accuracy %.2f** (mean of %d experiments, std %.2f; macro-F1 %.2f), %d samples per label, %d test rows.\n\n",
		100*r.Accuracy, len(r.Experiments), 100*r.AccuracyStd, 100*r.MacroF1, r.Settings.SamplesPerLabel, r.TestRows)
	b.WriteString("| experiment | train rows | accuracy | macro-F1 | L-BFGS iterations | converged | train s |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---|---:|\n")
	for _, x := range r.Experiments {
		fmt.Fprintf(&b, "| %d | %d | %.4f | %.4f | %d | %v | %.2f |\n", x.Index, x.TrainRows, x.Accuracy, x.MacroF1, x.Iterations, x.Converged, x.TrainSeconds)
	}
	return []byte(b.String())
}

// WriteFiles writes results.json (the result with the command and settings),
// results.csv (one row per experiment) and results.md into dir, atomically.
func (r *MTEBResult) WriteFiles(dir, title, command string, settings map[string]string) error {
	js, err := json.MarshalIndent(struct {
		Command  string            `json:"command,omitempty"`
		Protocol string            `json:"protocol"`
		Settings map[string]string `json:"settings"`
		*MTEBResult
	}{command, "mteb", settings, r}, "", "  ")
	if err != nil {
		return err
	}
	var c bytes.Buffer
	w := csv.NewWriter(&c)
	w.Write([]string{"experiment", "train_rows", "accuracy", "macro_f1", "iterations", "converged", "train_seconds"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, x := range r.Experiments {
		w.Write([]string{strconv.Itoa(x.Index), strconv.Itoa(x.TrainRows), f(x.Accuracy), f(x.MacroF1), strconv.Itoa(x.Iterations),
			strconv.FormatBool(x.Converged), f(x.TrainSeconds)})
	}
	w.Flush()
	for _, o := range []struct {
		name string
		b    []byte
	}{{"results.json", append(js, '\n')}, {"results.csv", c.Bytes()}, {"results.md", r.Markdown(title, command, settings)}} {
		if err := fileio.WriteFile(filepath.Join(dir, o.name), o.b); err != nil {
			return err
		}
	}
	return nil
}
