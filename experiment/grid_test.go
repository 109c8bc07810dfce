package experiment

import (
	"context"
	"errors"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"
	"gonum.org/v1/plot/plotter"

	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/lora"
)

// statTol bounds the error of the summary statistics computed by hand below: sums of
// a few numbers of order 1 (float64 rounding ~1e-16 each).
const statTol = 1e-12

// synthetic returns a split of n rows of layers×dim features in k classes with class
// sizes sizes[c] (every row's class is cycled when sizes is nil): each layer block of a
// class scatters around its own mean, better separated in the later layers.
func synthetic(name string, sizes []int, k, layers, dim int, seed uint64) head.Dataset {
	means := rand.New(rand.NewPCG(1, 2)) // class means shared by every split
	mu := make([]float64, k*layers*dim)
	for i := range mu {
		mu[i] = means.NormFloat64()
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	var labels []int
	for c, n := range sizes {
		for range n {
			labels = append(labels, c)
		}
	}
	rng.Shuffle(len(labels), func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })
	d := layers * dim
	ds := head.Dataset{N: len(labels), D: d, X: make([]float32, len(labels)*d), Labels: labels, Name: name}
	for c := range k {
		ds.Classes = append(ds.Classes, "class"+string(rune('A'+c)))
	}
	for i, c := range labels {
		for l := range layers {
			sep := 0.3 + 0.3*float64(l)
			for j := range dim {
				ds.X[i*d+l*dim+j] = float32(sep*mu[(c*layers+l)*dim+j] + rng.NormFloat64())
			}
		}
	}
	return ds
}

func syntheticData() *Data {
	return &Data{
		Layers: []int{-4, -3, -2, -1},
		Train:  synthetic("train", []int{30, 12, 20}, 3, 4, 8, 10),
		Test:   synthetic("test", []int{20, 20, 20}, 3, 4, 8, 11),
	}
}

func TestParseStrategies(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  error
		msg  string
	}{
		{"logreg,mlp", []string{"logreg", "mlp"}, nil, ""},
		{" concat4-logreg , logreg,logreg", []string{"concat4-logreg", "logreg"}, nil, ""},
		{"logreg,svm", nil, ErrUnknownStrategy, "logreg, mlp, concat4-logreg"},
		{"logreg,lora-top1", []string{"logreg", "lora-top1"}, nil, ""},
		{"full-top1,reinit-top1", []string{"full-top1", "reinit-top1"}, nil, ""},
		{"lora-top2,full-top6", []string{"lora-top2", "full-top6"}, nil, ""},
		{"full-top0", nil, ErrUnknownStrategy, "MODE-topK"},
		{"full-top02", nil, ErrUnknownStrategy, "reinit-top1"},
		{"mlp-top2", nil, ErrUnknownStrategy, "reinit-top1"},
		{",", nil, ErrBadGrid, "names no strategy"},
	}
	for _, c := range cases {
		got, err := ParseStrategies(c.in)
		if c.err != nil {
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("ParseStrategies(%q) = %v; want %v mentioning %q", c.in, err, c.err, c.msg)
			}
			continue
		}
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		if err != nil || !slices.Equal(names, c.want) {
			t.Errorf("ParseStrategies(%q) = %v, %v; want %v", c.in, names, err, c.want)
		}
	}
	u, err := UnfreezeStrategies([]int{0, 1, 3})
	if err != nil || len(u) != 3 || u[0].Name != "logreg" || u[2].Name != "full-top3" || u[2].Top.TopK != 3 || u[2].Top.Train.Mode != lora.ModeFull || TopK(u) != 3 {
		t.Errorf("UnfreezeStrategies(0,1,3) = %+v, %v", u, err)
	}
	if _, err := UnfreezeStrategies([]int{-1}); !errors.Is(err, ErrBadGrid) {
		t.Errorf("UnfreezeStrategies(-1): %v; want ErrBadGrid", err)
	}
	s, _ := ParseStrategies("mlp,concat4-logreg,logreg")
	if got := Layers(s); !slices.Equal(got, []int{-4, -3, -2, -1}) {
		t.Errorf("Layers = %v", got)
	}
}

func TestParseShots(t *testing.T) {
	cases := []struct {
		in   string
		want []int
		ok   bool
	}{
		{"8,16,64,all", []int{8, 16, 64, All}, true},
		{"2, 4,2,ALL", []int{2, 4, All}, true},
		{"0", nil, false},
		{"8,x", nil, false},
		{"-1", nil, false},
		{"", nil, false},
	}
	for _, c := range cases {
		got, err := ParseShots(c.in)
		if (err == nil) != c.ok || !slices.Equal(got, c.want) {
			t.Errorf("ParseShots(%q) = %v, %v; want %v (ok %v)", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadGrid) {
			t.Errorf("ParseShots(%q): %v does not wrap ErrBadGrid", c.in, err)
		}
	}
}

// TestSample checks that draws are stratified, capped at the class size, seeded,
// nested across shot counts, and differ between seeds.
func TestSample(t *testing.T) {
	labels := synthetic("s", []int{30, 5, 20}, 3, 1, 2, 1).Labels
	for seed := range uint64(3) {
		prev := []int(nil)
		for _, n := range []int{1, 4, 8, 16} {
			rows := Sample(labels, 3, n, seed)
			if !slices.IsSorted(rows) {
				t.Fatalf("seed %d shots %d: rows not sorted", seed, n)
			}
			counts := make([]int, 3)
			for _, r := range rows {
				counts[labels[r]]++
			}
			if want := []int{min(n, 30), min(n, 5), min(n, 20)}; !slices.Equal(counts, want) {
				t.Fatalf("seed %d shots %d: class counts %v; want %v", seed, n, counts, want)
			}
			for _, r := range prev {
				if !slices.Contains(rows, r) {
					t.Fatalf("seed %d: row %d of a smaller draw missing from shots %d", seed, r, n)
				}
			}
			if !slices.Equal(rows, Sample(labels, 3, n, seed)) {
				t.Fatalf("seed %d shots %d: not deterministic", seed, n)
			}
			prev = rows
		}
	}
	if slices.Equal(Sample(labels, 3, 4, 0), Sample(labels, 3, 4, 1)) {
		t.Fatal("seeds 0 and 1 draw the same rows")
	}
	if got := Sample(labels, 3, All, 5); len(got) != len(labels) {
		t.Fatalf("All: %d rows; want %d", len(got), len(labels))
	}
}

func TestCheck(t *testing.T) {
	classes, counts := []string{"a", "b", "tiny"}, []int{30, 12, 3}
	logreg, _ := ParseStrategies("logreg")
	mlp, _ := ParseStrategies("logreg,mlp")
	cases := []struct {
		name  string
		g     Grid
		valid bool
		err   error
		msg   string
	}{
		{"fits", Grid{Strategies: mlp, Shots: []int{2, 3, All}}, false, nil, ""},
		{"too many shots", Grid{Strategies: logreg, Shots: []int{2, 8}}, false, ErrShotsTooLarge, `class "tiny" has only 3`},
		{"capped", Grid{Strategies: logreg, Shots: []int{8, 64}, CapShots: true}, false, nil, ""},
		{"mlp one shot", Grid{Strategies: mlp, Shots: []int{2, 1}}, false, ErrTooFewForValidation, "--valid"},
		{"mlp one shot with valid", Grid{Strategies: mlp, Shots: []int{1}}, true, nil, ""},
		{"logreg one shot", Grid{Strategies: logreg, Shots: []int{1}}, false, nil, ""},
		{"no seeds", Grid{Strategies: logreg, Shots: []int{1}, Seeds: -1}, false, ErrBadGrid, "--seeds"},
	}
	for _, c := range cases {
		err := c.g.Check(classes, counts, c.valid)
		if c.err == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v; want %v mentioning %q", c.name, err, c.err, c.msg)
		}
	}
	capped := Grid{Strategies: mlp, Shots: []int{8}, CapShots: true}
	if err := capped.Check([]string{"a", "b"}, []int{10, 1}, false); !errors.Is(err, ErrTooFewForValidation) {
		t.Errorf("capped MLP with a one-row class: %v; want ErrTooFewForValidation", err)
	}
}

// TestRunResume runs a grid into a directory, then reruns it after deleting, corrupting
// and keeping cells: kept cells are reused, the others recomputed with the same scores;
// an interrupted run resumes; another key recomputes everything.
func TestRunResume(t *testing.T) {
	data := syntheticData()
	strategies, _ := ParseStrategies("logreg,mlp,concat4-logreg")
	dir := t.TempDir()
	var events []Event
	g := Grid{Strategies: strategies, Shots: []int{2, 4, All}, Seeds: 2, Dir: dir, Key: "data-v1", Threads: 1,
		Progress: func(e Event) { events = append(events, e) }}
	first, err := Run(context.Background(), g, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3*3*2 || len(events) != len(first) {
		t.Fatalf("%d cells, %d events; want 18", len(first), len(events))
	}
	for i, c := range first {
		if events[i].Reused || events[i].Index != i+1 || events[i].Total != 18 {
			t.Fatalf("event %d: %+v", i, events[i])
		}
		if !(c.Accuracy > 0.5 && c.Accuracy <= 1) || !(c.MacroF1 > 0 && c.MacroF1 <= 1) || c.TestRows != 60 {
			t.Fatalf("cell %+v: implausible scores", c)
		}
	}
	if c := first[0]; c.Strategy != "logreg" || c.Shots != 2 || c.TrainRows != 6 || c.Params != 3*8+3 {
		t.Fatalf("first cell %+v; want logreg, 2 shots, 6 rows, 27 params", c)
	}
	if c := first[len(first)-1]; c.Strategy != "concat4-logreg" || c.Shots != All || c.TrainRows != 62 || c.Params != 3*32+3 {
		t.Fatalf("last cell %+v", c)
	}
	for _, i := range []int{12, 16} { // logreg and concat4-logreg, all rows: seed 1 is seed 0's result
		a, b := first[i], first[i+1]
		if a.Shots != All || a.Seed != 0 || a.Copied || !b.Copied || b.Seed != 1 || a.Accuracy != b.Accuracy || a.TrainSeconds != b.TrainSeconds {
			t.Fatalf("deterministic cells:\n%+v\n%+v", a, b)
		}
	}
	if first[14].Copied || first[15].Copied {
		t.Fatal("an MLP cell was copied")
	}
	if events[len(events)-1].ETA != 0 || events[0].ETA <= 0 {
		t.Fatalf("ETA: first %v, last %v; want > 0 then 0", events[0].ETA, events[len(events)-1].ETA)
	}

	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != 18 {
		t.Fatalf("%d cell files; want 18", len(files))
	}
	os.Remove(filepath.Join(dir, "mlp_shots-4_seed-1.json"))
	os.Remove(filepath.Join(dir, "logreg_shots-all_seed-0.json"))
	os.WriteFile(filepath.Join(dir, "concat4-logreg_shots-2_seed-0.json"), []byte(`{"version":1,"key":"x"`), 0o644)
	events = nil
	second, err := Run(context.Background(), g, data)
	if err != nil {
		t.Fatal(err)
	}
	recomputed := 0
	for i, e := range events {
		if !e.Reused {
			recomputed++
		}
		a, b := first[i], second[i]
		a.TrainSeconds, b.TrainSeconds = 0, 0
		if a != b {
			t.Fatalf("cell %d differs after resume:\n%+v\n%+v", i, first[i], second[i])
		}
	}
	if recomputed != 3 {
		t.Fatalf("%d cells recomputed; want 3 (deleted, deleted, corrupt)", recomputed)
	}

	// Interrupt after 5 new cells, then resume.
	ctx, cancel := context.WithCancel(context.Background())
	g2 := g
	g2.Key = "data-v2" // nothing reusable
	n := 0
	g2.Progress = func(e Event) {
		if n++; n == 5 {
			cancel()
		}
	}
	if _, err := Run(ctx, g2, data); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v; want context.Canceled", err)
	}
	reused := 0
	g2.Progress = func(e Event) {
		if e.Reused {
			reused++
		}
	}
	third, err := Run(context.Background(), g2, data)
	if err != nil {
		t.Fatal(err)
	}
	if reused != 5 {
		t.Fatalf("%d cells reused after the interruption; want 5", reused)
	}
	for i := range third {
		a, b := first[i], third[i]
		a.TrainSeconds, b.TrainSeconds, a.Key, b.Key = 0, 0, "", ""
		if a != b {
			t.Fatalf("cell %d differs under another key:\n%+v\n%+v", i, a, b)
		}
	}
}

func TestRunBadData(t *testing.T) {
	strategies, _ := ParseStrategies("logreg")
	g := Grid{Strategies: strategies, Shots: []int{2}}
	data := syntheticData()
	data.Test.Classes = []string{"classA", "classB", "classZ"}
	if _, err := Run(context.Background(), g, data); !errors.Is(err, ErrUnseenLabel) || !strings.Contains(err.Error(), `"classZ"`) {
		t.Fatalf("unseen test label: %v", err)
	}
	data = syntheticData()
	g.Shots = []int{13}
	if _, err := Run(context.Background(), g, data); !errors.Is(err, ErrShotsTooLarge) || !strings.Contains(err.Error(), `"classB" has only 12`) {
		t.Fatalf("too many shots: %v", err)
	}
	g.CapShots = true
	cells, err := Run(context.Background(), g, data)
	if err != nil || cells[0].TrainRows != 13+12+13 {
		t.Fatalf("capped: %v, %+v", err, cells)
	}
}

func TestSummarize(t *testing.T) {
	cells := []Cell{
		{Strategy: "a", Shots: 2, Seed: 0, Accuracy: 0.5, MacroF1: 0.4, TrainRows: 10, Params: 7, TrainSeconds: 1},
		{Strategy: "a", Shots: 2, Seed: 1, Accuracy: 0.7, MacroF1: 0.6, TrainRows: 10, Params: 7, TrainSeconds: 3},
		{Strategy: "b", Shots: All, Seed: 0, Accuracy: 0.9, MacroF1: 0.8, TrainRows: 50, Params: 9, TrainSeconds: 2},
	}
	s := Summarize(cells)
	if len(s) != 2 || s[0].Strategy != "a" || s[1].Shots != All || s[0].Seeds != 2 {
		t.Fatalf("%+v", s)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"mean", s[0].AccuracyMean, 0.6}, {"std", s[0].AccuracyStd, math.Sqrt(0.02)}, {"f1 std", s[0].MacroF1Std, math.Sqrt(0.02)},
		{"seconds", s[0].TrainSeconds, 2}, {"one seed std", s[1].AccuracyStd, 0}, {"rows", s[1].TrainRows, 50},
	} {
		if !scalar.EqualWithinAbs(c.got, c.want, statTol) {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
}

func TestWriteFilesAndPlots(t *testing.T) {
	data := syntheticData()
	strategies, _ := ParseStrategies("logreg,concat4-logreg")
	cells, err := Run(context.Background(), Grid{Strategies: strategies, Shots: []int{2, 4, All}, Seeds: 2}, data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := Results{Command: "pipeline experiment ...", Settings: map[string]string{"model": "m"}, Strategies: strategies, Summary: Summarize(cells), Cells: cells}
	if err := r.WriteFiles(dir, "Title"); err != nil {
		t.Fatal(err)
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "results.csv"))
	if lines := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(lines) != 7 || !strings.HasPrefix(lines[0], "strategy,shots,seeds,train_rows,accuracy_mean") {
		t.Fatalf("results.csv:\n%s", csv)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	if !strings.Contains(string(md), "| concat4-logreg | all | 62 |") || !strings.Contains(string(md), "- model: m") {
		t.Fatalf("results.md:\n%s", md)
	}
	for _, f := range []struct {
		name string
		plot func(string, string, []Summary) error
	}{{"size.png", PlotSize}, {"params.png", PlotParams}, {"unfreeze.png", PlotUnfreeze}} {
		path := filepath.Join(dir, f.name)
		if err := f.plot(path, "t", r.Summary); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(fh)
		fh.Close()
		if err != nil || img.Bounds().Dx() < 300 {
			t.Fatalf("%s: %v", f.name, err)
		}
	}
}

func TestRunMTEB(t *testing.T) {
	train := synthetic("train", []int{30, 12, 20}, 3, 1, 8, 10)
	test := synthetic("test", []int{20, 20, 20}, 3, 1, 8, 11)
	var seen []int
	r, err := RunMTEB(context.Background(), train, test, MTEBSettings{SamplesPerLabel: 4, Experiments: 3, Progress: func(x MTEBExperiment) { seen = append(seen, x.Index) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Experiments) != 3 || !slices.Equal(seen, []int{1, 2, 3}) || r.Settings.Seed != 42 || r.TestRows != 60 {
		t.Fatalf("%+v", r)
	}
	var mean float64
	for _, x := range r.Experiments {
		if x.TrainRows != 12 || !(x.Accuracy > 0.4) {
			t.Fatalf("experiment %+v", x)
		}
		mean += x.Accuracy / 3
	}
	if !scalar.EqualWithinAbs(r.Accuracy, mean, statTol) {
		t.Fatalf("accuracy %v; want the mean %v", r.Accuracy, mean)
	}
	test.Classes = []string{"classA", "classB", "other"}
	if _, err := RunMTEB(context.Background(), train, test, MTEBSettings{}); !errors.Is(err, ErrUnseenLabel) {
		t.Fatalf("unseen label: %v", err)
	}
	if _, err := RunMTEB(context.Background(), train, train, MTEBSettings{Experiments: -1}); !errors.Is(err, ErrBadGrid) {
		t.Fatalf("bad settings: %v", err)
	}
}

// TestETAModel: the time left is predicted per strategy from its cells so far, scaled by
// work (rows, times epochs for the top-block strategies), not by rows alone: a top-block
// cell on 8 rows per class runs extra epochs (MinSteps), and scaling its time by rows
// predicted the full-data cell several times too long.
func TestETAModel(t *testing.T) {
	strategies, err := ParseStrategies("logreg,lora-top1,mlp")
	if err != nil {
		t.Fatal(err)
	}
	logreg, lora, mlp := strategies[0], strategies[1], strategies[2]
	spec := func(s Strategy, shots, rows, seed int) cellSpec {
		return cellSpec{strategy: s, shots: shots, rows: rows, seed: seed}
	}
	// Banking77's sizes: 8 per class = 616 rows (5 epochs of 20 steps reach 100 steps),
	// all = 10,003 rows (3 epochs of 313 steps).
	small, all := spec(lora, 8, 616, 0), spec(lora, All, 10003, 0)
	if w, want := cellWork(small), 616.0*5; w != want {
		t.Fatalf("work of a 616-row lora cell %v; want %v (5 epochs)", w, want)
	}
	if w, want := cellWork(all), 10003.0*3; w != want {
		t.Fatalf("work of a 10,003-row lora cell %v; want %v (3 epochs)", w, want)
	}
	var m etaModel
	if _, ok := m.predict(small); ok {
		t.Fatal("a prediction before any cell")
	}
	m.add(small, 10)
	m.add(spec(logreg, 8, 616, 0), 0.5)
	const tol = 1e-9 // the predictions are a few products and quotients
	for _, tc := range []struct {
		name string
		sp   cellSpec
		want float64
	}{
		{"another seed: the same cell's time", spec(lora, 8, 616, 1), 10},
		{"all rows: scaled by work", all, 10 * 10003 * 3 / (616 * 5.0)},
		{"logreg all rows: scaled by rows", spec(logreg, All, 10003, 0), 0.5 * 10003 / 616},
		{"an unseen strategy: the mean seconds per work of all cells", spec(mlp, 8, 616, 0), 10.5 * 616 / (616*5 + 616)},
	} {
		got, ok := m.predict(tc.sp)
		if !ok || !scalar.EqualWithinAbsOrRel(got, tc.want, tol, tol) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
	// With a larger cell of the strategy done, the nearest one in work is used.
	m.add(spec(lora, 64, 4800, 0), 50)
	if got, want := mustPredict(t, &m, all), 50*10003*3/(4800*3.0); !scalar.EqualWithinAbsOrRel(got, want, tol, tol) {
		t.Errorf("all rows after the 64-shot cell: %v; want %v", got, want)
	}
}

func mustPredict(t *testing.T, m *etaModel, sp cellSpec) float64 {
	t.Helper()
	secs, ok := m.predict(sp)
	if !ok {
		t.Fatal("no prediction")
	}
	return secs
}

// TestPlotAxesAndLines: the accuracy axis spans the data (plus 8% of it each side), not
// room for a legend drawn inside; the parameters plot joins no points with lines (its
// points are different strategies), while the size plot joins each strategy's sizes.
func TestPlotAxesAndLines(t *testing.T) {
	summary := []Summary{
		{Strategy: "logreg", Shots: 8, TrainRows: 616, AccuracyMean: 0.83, AccuracyStd: 0.005, Params: 29645},
		{Strategy: "reinit-top1", Shots: 8, TrainRows: 616, AccuracyMean: 0.727, AccuracyStd: 0.003, Params: 1804109},
		{Strategy: "logreg", Shots: All, TrainRows: 10003, AccuracyMean: 0.929, Params: 29645},
		{Strategy: "reinit-top1", Shots: All, TrainRows: 10003, AccuracyMean: 0.907, AccuracyStd: 0.002, Params: 1804109},
	}
	lo, hi := accuracyRange(summary)
	span := 0.929 - 0.724
	if !scalar.EqualWithinAbs(lo, 0.724-0.08*span, 1e-12) || !scalar.EqualWithinAbs(hi, 0.929+0.08*span, 1e-12) {
		t.Errorf("accuracy axis [%v, %v]; want [%v, %v]", lo, hi, 0.724-0.08*span, 0.929+0.08*span)
	}
	if lo, hi := accuracyRange([]Summary{{AccuracyMean: 0.999, AccuracyStd: 0.01}}); lo < 0 || hi != 1 {
		t.Errorf("accuracy axis near 1: [%v, %v]; want within [0, 1]", lo, hi)
	}
	for i, n := range []int{8, All} {
		ps, _, labels, err := paramsSeries(i, n, summary)
		if err != nil {
			t.Fatal(err)
		}
		if len(labels.Labels) != 2 {
			t.Errorf("shots %d: labels %q; want both strategies", n, labels.Labels)
		}
		for _, p := range ps {
			if _, ok := p.(*plotter.Line); ok {
				t.Errorf("shots %d: the parameters plot joins strategies with a line", n)
			}
		}
	}
	ps, _, err := series(0, errPoints{XYs: plotter.XYs{{X: 1, Y: 0.5}, {X: 2, Y: 0.6}}, YErrors: plotter.YErrors{{}, {}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps[0].(*plotter.Line); !ok {
		t.Errorf("a size series draws no line: %T", ps[0])
	}
}
