package experiment

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/internal/plotpng"
)

// errPoints are points with symmetric vertical error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// series returns the plotters of one series drawn in style i: markers with error bars,
// and a line through them when line is set; thumbs are its legend entry's pictures.
func series(i int, pts errPoints, line bool) (ps []plot.Plotter, thumbs []plot.Thumbnailer, err error) {
	scatter, err := plotter.NewScatter(pts.XYs)
	if err != nil {
		return nil, nil, err
	}
	scatter.Color = plotutil.Color(i)
	scatter.Shape = plotutil.Shape(i)
	bars, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return nil, nil, err
	}
	bars.Color = plotutil.Color(i)
	bars.CapWidth = vg.Points(5)
	if line {
		l, err := plotter.NewLine(pts.XYs)
		if err != nil {
			return nil, nil, err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		ps, thumbs = append(ps, l), append(thumbs, l)
	}
	return append(ps, scatter, bars), append(thumbs, scatter), nil
}

// newAccuracyPlot makes a plot with a log x axis and accuracy on the y axis, fitted to
// the data (see accuracyRange).
func newAccuracyPlot(title, xlabel string, summary []Summary) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "test accuracy (mean ± std over seeds)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
	p.Y.Min, p.Y.Max = accuracyRange(summary)
	p.Add(plotter.NewGrid())
	return p
}

// PlotSize draws test accuracy against the number of training rows (log scale), one
// line per strategy with error bars of one standard deviation over seeds, and writes it
// as a PNG at path atomically. Points are labelled with their shots per class.
func PlotSize(path, title string, summary []Summary) error {
	p := newAccuracyPlot(title, "training rows (log scale); labels: shots per class", summary)
	legend, entries := plot.NewLegend(), []string(nil)
	var names []string
	for _, s := range summary {
		if !slices.Contains(names, s.Strategy) {
			names = append(names, s.Strategy)
		}
	}
	for i, name := range names {
		var pts errPoints
		var labels plotter.XYLabels
		for _, s := range summary {
			if s.Strategy != name {
				continue
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: s.TrainRows, Y: s.AccuracyMean})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{s.AccuracyStd, s.AccuracyStd})
			if i == 0 {
				labels.XYs = append(labels.XYs, plotter.XY{X: s.TrainRows, Y: s.AccuracyMean})
				labels.Labels = append(labels.Labels, ShotsName(s.Shots))
			}
		}
		sortByX(&pts)
		ps, thumbs, err := series(i, pts, true) // one strategy over sizes: a line
		if err != nil {
			return err
		}
		p.Add(ps...)
		legend.Add(name, thumbs...)
		entries = append(entries, name)
		if i == 0 {
			l, err := plotter.NewLabels(labels)
			if err != nil {
				return err
			}
			l.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(-12)}
			p.Add(l)
		}
	}
	return savePNG(p, legend, entries, path)
}

// PlotParams draws test accuracy against the number of trainable parameters (log
// scale): one point per strategy and shot count, with error bars of one standard
// deviation over seeds, coloured by shot count and labelled with the strategy (no
// lines: the strategies are not steps of one quantity), and writes it as a PNG at path
// atomically.
func PlotParams(path, title string, summary []Summary) error {
	p := newAccuracyPlot(title, "trainable parameters (log scale); labels: strategy", summary)
	legend, entries := plot.NewLegend(), []string(nil)
	shots := shotCounts(summary)
	for i, n := range shots {
		ps, thumbs, labels, err := paramsSeries(i, n, summary)
		if err != nil {
			return err
		}
		p.Add(ps...)
		name := shotsLegend(n)
		legend.Add(name, thumbs...)
		entries = append(entries, name)
		if i == len(shots)-1 {
			l, err := plotter.NewLabels(labels)
			if err != nil {
				return err
			}
			l.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(4)}
			p.Add(l)
		}
	}
	return savePNG(p, legend, entries, path)
}

// unfreezeSeries groups the summaries of an unfreezing sweep into lines: one per
// training-set size and way of training (Summary.Family), each starting from logreg on
// the frozen features (0 blocks) when the grid has it; the strategies that also train
// the embeddings sit one step right of every block (x = blocks + 1). Other frozen
// heads (mlp, concat4-logreg) are left out.
type unfreezeLine struct {
	shots, style int
	family       string
	pts          []Summary
}

func unfreezeLines(summary []Summary) (lines []unfreezeLine, maxBlocks int) {
	families := []string{}
	for _, s := range summary {
		if s.Family != "frozen" && s.Family != "" && !slices.Contains(families, s.Family) {
			families = append(families, s.Family)
		}
		maxBlocks = max(maxBlocks, s.Unfrozen)
	}
	shots := shotCounts(summary)
	for si, n := range shots {
		var frozen *Summary
		for i := range summary {
			if summary[i].Shots == n && summary[i].Strategy == "logreg" {
				frozen = &summary[i]
			}
		}
		if len(families) == 0 && frozen != nil {
			lines = append(lines, unfreezeLine{shots: n, style: si, family: "frozen", pts: []Summary{*frozen}})
		}
		for _, f := range families {
			l := unfreezeLine{shots: n, style: si, family: f}
			if frozen != nil {
				l.pts = append(l.pts, *frozen)
			}
			for _, s := range summary {
				if s.Shots == n && s.Family == f {
					l.pts = append(l.pts, s)
				}
			}
			lines = append(lines, l)
		}
	}
	return lines, maxBlocks
}

// unfrozenX is a summary's place on the x axis of the unfreezing plots.
func unfrozenX(s Summary) float64 {
	if s.Embeddings {
		return float64(s.Unfrozen + 1)
	}
	return float64(s.Unfrozen)
}

// unfrozenTicks labels the blocks 0..max and, where a strategy trains the embeddings,
// max+1 as "max+emb".
type unfrozenTicks struct {
	max int
	emb bool
}

func (t unfrozenTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for k := 0; k <= t.max; k++ {
		if float64(k) < lo || float64(k) > hi {
			continue
		}
		label := fmt.Sprint(k)
		if t.max > 8 && k%2 == 1 && k != t.max {
			label = "" // a 12-block axis labels every other block
		}
		ticks = append(ticks, plot.Tick{Value: float64(k), Label: label})
	}
	if t.emb {
		ticks = append(ticks, plot.Tick{Value: float64(t.max + 1), Label: fmt.Sprintf("%d+emb", t.max)})
	}
	return ticks
}

// unfreezeMetric is what an unfreezing plot draws against the unfrozen blocks: the
// accuracy when label is "", else the quantity labelled.
type unfreezeMetric struct {
	label string
	value func(Summary) (y, err float64, ok bool)
}

// PlotUnfreeze draws test accuracy against the number of unfrozen (trained) top blocks,
// one line per training-set size (and way of training, when the grid has several:
// full, lora, reinit, setfit), from logreg on the frozen features at 0, with error bars
// of one standard deviation over seeds: the figure of the layer-freezing experiments
// (Radford et al. 2018, Figure 2). Strategies that also train the embeddings are drawn
// at "L+emb", right of every block. Summaries need Family and Unfrozen (Summarize with
// the strategies). It writes a PNG at path atomically.
func PlotUnfreeze(path, title string, summary []Summary) error {
	return plotUnfreeze(path, title, summary, unfreezeMetric{
		value: func(s Summary) (float64, float64, bool) { return s.AccuracyMean, s.AccuracyStd, true },
	})
}

// PlotUnfreezeTime draws the mean fit time (error bars of one standard deviation over
// seeds) against the unfrozen blocks, as PlotUnfreeze.
func PlotUnfreezeTime(path, title string, summary []Summary) error {
	return plotUnfreeze(path, title, summary, unfreezeMetric{
		label: "fit time per run, s (mean ± std over seeds)",
		value: func(s Summary) (float64, float64, bool) { return s.TrainSeconds, s.TrainSecondsStd, true },
	})
}

// PlotUnfreezeMemory draws the mean peak memory during the fits, above the memory at
// their start, against the unfrozen blocks, as PlotUnfreeze; the axis names the kind
// measured (peak RSS or the Go heap's high-water mark). Summaries without a
// measurement are left out.
func PlotUnfreezeMemory(path, title string, summary []Summary) error {
	kind := ""
	for _, s := range summary {
		if s.MemSeeds > 0 {
			kind = s.MemKind
			break
		}
	}
	what := map[string]string{"rss": "peak RSS", "go-heap": "Go heap high-water"}[kind]
	if what == "" {
		return fmt.Errorf("%w: no memory measured to plot", ErrBadGrid)
	}
	return plotUnfreeze(path, title, summary, unfreezeMetric{
		label: what + " above the fit's start, MiB",
		value: func(s Summary) (float64, float64, bool) {
			return s.PeakIncreaseMiB, 0, s.MemSeeds > 0 && s.MemKind == kind
		},
	})
}

func plotUnfreeze(path, title string, summary []Summary, m unfreezeMetric) error {
	lines, maxBlocks := unfreezeLines(summary)
	if len(lines) == 0 {
		return fmt.Errorf("%w: no logreg or top-block strategy to plot against unfrozen blocks", ErrBadGrid)
	}
	var kept []Summary
	emb := false
	for _, l := range lines {
		for _, s := range l.pts {
			kept = append(kept, s)
			emb = emb || s.Embeddings
		}
	}
	var p *plot.Plot
	if m.label == "" {
		p = newAccuracyPlot(title, "", kept)
	} else {
		p = plot.New()
		p.Title.Text = title
		p.Y.Label.Text = m.label
		p.Add(plotter.NewGrid())
	}
	p.X.Label.Text = "unfrozen (trained) top blocks; 0 = logistic regression on frozen features"
	p.X.Scale, p.X.Tick.Marker = plot.LinearScale{}, unfrozenTicks{max: maxBlocks, emb: emb}
	families := []string{}
	for _, l := range lines {
		if !slices.Contains(families, l.family) {
			families = append(families, l.family)
		}
	}
	legend, entries := plot.NewLegend(), []string(nil)
	for _, l := range lines {
		var pts errPoints
		for _, s := range l.pts {
			y, e, ok := m.value(s)
			if !ok {
				continue
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: unfrozenX(s), Y: y})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{e, e})
		}
		if len(pts.XYs) == 0 {
			continue
		}
		sortByX(&pts)
		ps, thumbs, err := styledSeries(l.style, slices.Index(families, l.family), pts)
		if err != nil {
			return err
		}
		p.Add(ps...)
		name := shotsLegend(l.shots)
		if len(families) > 1 {
			name = l.family + ", " + name
		}
		legend.Add(name, thumbs...)
		entries = append(entries, name)
	}
	p.X.Min, p.X.Max = -0.3, float64(maxBlocks)+0.3
	if emb {
		p.X.Max++
	}
	if m.label != "" { // the cost axes span the data (and their error bars), padded
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, l := range lines {
			for _, s := range l.pts {
				if y, e, ok := m.value(s); ok {
					lo, hi = math.Min(lo, y-e), math.Max(hi, y+e)
				}
			}
		}
		if lo <= hi {
			p.Y.Min, p.Y.Max = math.Min(0, lo), hi+0.08*(hi-math.Min(0, lo))+1
		}
	}
	return savePNG(p, legend, entries, path)
}

// styledSeries is series with the colour of size and the dashes and marker of family,
// so that one plot can hold several ways of training at several sizes.
func styledSeries(size, family int, pts errPoints) ([]plot.Plotter, []plot.Thumbnailer, error) {
	ps, thumbs, err := series(size, pts, true)
	if err != nil {
		return nil, nil, err
	}
	for _, x := range ps {
		switch v := x.(type) {
		case *plotter.Line:
			v.Dashes = plotutil.Dashes(family)
		case *plotter.Scatter:
			v.Shape = plotutil.Shape(family)
		}
	}
	return ps, thumbs, nil
}

// paramsSeries returns PlotParams' points for shot count n, drawn in style i, and
// their strategy labels.
func paramsSeries(i, n int, summary []Summary) ([]plot.Plotter, []plot.Thumbnailer, plotter.XYLabels, error) {
	var pts errPoints
	var labels plotter.XYLabels
	for _, s := range summary {
		if s.Shots != n {
			continue
		}
		pts.XYs = append(pts.XYs, plotter.XY{X: float64(s.Params), Y: s.AccuracyMean})
		pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{s.AccuracyStd, s.AccuracyStd})
		labels.XYs = append(labels.XYs, plotter.XY{X: float64(s.Params), Y: s.AccuracyMean})
		labels.Labels = append(labels.Labels, s.Strategy)
	}
	ps, thumbs, err := series(i, pts, false)
	return ps, thumbs, labels, err
}

// sortByX orders points by x (lines join them in that order).
func sortByX(pts *errPoints) {
	idx := make([]int, len(pts.XYs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case pts.XYs[a].X < pts.XYs[b].X:
			return -1
		case pts.XYs[a].X > pts.XYs[b].X:
			return 1
		}
		return 0
	})
	xy, e := slices.Clone(pts.XYs), slices.Clone(pts.YErrors)
	for i, j := range idx {
		pts.XYs[i], pts.YErrors[i] = xy[j], e[j]
	}
}

// accuracyRange is the y axis of the accuracy plots: the span of the means ± std,
// widened by 8% of it on each side (at least 0.01 in all), within [0, 1]. The legend is
// drawn beside the plot, so it needs no room inside.
func accuracyRange(summary []Summary) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range summary {
		lo = math.Min(lo, s.AccuracyMean-s.AccuracyStd)
		hi = math.Max(hi, s.AccuracyMean+s.AccuracyStd)
	}
	if lo > hi { // no data
		return 0, 1
	}
	pad := math.Max(hi-lo, 0.01) * 0.08
	return math.Max(0, lo-pad), math.Min(1, hi+pad)
}

// savePNG renders p at 16×10 cm with the legend (whose entries are named entries) in a
// column on its right, and writes it atomically.
func savePNG(p *plot.Plot, legend plot.Legend, entries []string, path string) error {
	legend.Top, legend.Left = true, true
	width := vg.Length(0)
	for _, e := range entries {
		width = max(width, legend.TextStyle.Width(e))
	}
	width += legend.ThumbnailWidth + vg.Points(20)
	w, h := 16*vg.Centimeter+width, 10*vg.Centimeter
	b, err := plotpng.WithPanel(p, w, h, width, func(c draw.Canvas) {
		legend.Draw(draw.Crop(c, vg.Points(8), 0, 0, 0))
	})
	if err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	return fileio.WriteFile(path, b)
}

// logTicks puts labelled ticks at the powers of ten in range, and at 2 and 5 times
// them (also 3 times them within one decade) when the range spans at most two decades,
// so that a narrow range still gets labels and a wide one does not crowd them.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	mult := []float64{1}
	switch decades := math.Log10(hi / lo); {
	case decades <= 1:
		mult = []float64{1, 2, 3, 5}
	case decades <= 2:
		mult = []float64{1, 2, 5}
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range mult {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
		}
	}
	return ticks
}

// shotCounts lists the training-set sizes of summary, each once, in order of appearance.
func shotCounts(summary []Summary) []int {
	var shots []int
	for _, s := range summary {
		if !slices.Contains(shots, s.Shots) {
			shots = append(shots, s.Shots)
		}
	}
	return shots
}

// shotsLegend names a training-set size in a plot's legend.
func shotsLegend(n int) string {
	if n == All {
		return "all rows"
	}
	return ShotsName(n) + " per class"
}
