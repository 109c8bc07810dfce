package experiment

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// errPoints are points with symmetric vertical error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// series adds a line through pts with markers, error bars and a legend entry.
func series(p *plot.Plot, i int, name string, pts errPoints) error {
	line, scatter, err := plotter.NewLinePoints(pts.XYs)
	if err != nil {
		return err
	}
	line.Color = plotutil.Color(i)
	line.Dashes = plotutil.Dashes(i)
	scatter.Color = plotutil.Color(i)
	scatter.Shape = plotutil.Shape(i)
	bars, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return err
	}
	bars.Color = plotutil.Color(i)
	bars.CapWidth = vg.Points(5)
	p.Add(line, scatter, bars)
	p.Legend.Add(name, line, scatter)
	return nil
}

// newAccuracyPlot makes a plot with a log x axis and accuracy on the y axis.
func newAccuracyPlot(title, xlabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "test accuracy (mean ± std over seeds)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p
}

// PlotSize draws test accuracy against the number of training rows (log scale), one
// line per strategy with error bars of one standard deviation over seeds, and writes it
// as a PNG at path atomically. Points are labelled with their shots per class.
func PlotSize(path, title string, summary []Summary) error {
	p := newAccuracyPlot(title, "training rows (log scale); labels: shots per class")
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
		if err := series(p, i, name, pts); err != nil {
			return err
		}
		if i == 0 {
			l, err := plotter.NewLabels(labels)
			if err != nil {
				return err
			}
			l.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(-12)}
			p.Add(l)
		}
	}
	roomForLegend(p, summary, len(names))
	return savePNG(p, path)
}

// PlotParams draws test accuracy against the number of trainable parameters (log
// scale), one line per shot count through the strategies (labelled), with error bars
// of one standard deviation over seeds, and writes it as a PNG at path atomically.
func PlotParams(path, title string, summary []Summary) error {
	p := newAccuracyPlot(title, "trainable parameters (log scale)")
	var shots []int
	for _, s := range summary {
		if !slices.Contains(shots, s.Shots) {
			shots = append(shots, s.Shots)
		}
	}
	for i, n := range shots {
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
		sortByX(&pts)
		name := ShotsName(n) + " per class"
		if n == All {
			name = "all rows"
		}
		if err := series(p, i, name, pts); err != nil {
			return err
		}
		if i == len(shots)-1 {
			l, err := plotter.NewLabels(labels)
			if err != nil {
				return err
			}
			l.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(4)}
			p.Add(l)
		}
	}
	roomForLegend(p, summary, len(shots))
	return savePNG(p, path)
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

// roomForLegend lowers the y axis so that the legend, at the bottom right, sits below
// the data.
func roomForLegend(p *plot.Plot, summary []Summary, entries int) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range summary {
		lo = math.Min(lo, s.AccuracyMean-s.AccuracyStd)
		hi = math.Max(hi, s.AccuracyMean+s.AccuracyStd)
	}
	span := math.Max(hi-lo, 0.01)
	p.Y.Min = math.Max(0, lo-0.12*span*float64(entries))
	p.Y.Max = math.Min(1, hi+0.05*span)
}

// savePNG renders p at 16×10 cm and writes it atomically.
func savePNG(p *plot.Plot, path string) error {
	w, err := p.WriterTo(16*vg.Centimeter, 10*vg.Centimeter, "png")
	if err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	var b bytes.Buffer
	if _, err := w.WriteTo(&b); err != nil {
		return fmt.Errorf("plotting %s: %w", path, err)
	}
	return fileio.WriteFile(path, b.Bytes())
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
