package head

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/internal/plotpng"
)

// maxCellCounts is the number of classes up to which PlotConfusion writes each cell's
// count.
const maxCellCounts = 20

// PlotConfusion draws the report's confusion matrix as a PNG heat map at path, written
// atomically (temporary file and rename). The colour of a cell is the square root of
// its share of the true class's rows (the recall on the diagonal), so that rare and
// common classes read alike and scattered confusions still show; a colour bar beside
// the matrix gives the scale in shares. Both axes name every class; cells hold the
// counts when there are at most 20 classes. The canvas grows with the number of
// classes and the length of their names.
func PlotConfusion(path string, r Report) error {
	if len(r.Confusion) == 0 {
		return errorf(ErrBadSetting, "head: plotting %s: the report has no confusion matrix (multi-label data)", path)
	}
	b, err := confusionPNG(r)
	if err != nil {
		return fmt.Errorf("head: plotting %s: %w", path, err)
	}
	return fileio.WriteFile(path, b)
}

// confusionTicks names class c at position c on both axes.
func confusionTicks(r Report) []plot.Tick {
	ticks := make([]plot.Tick, len(r.Confusion))
	for c := range ticks {
		ticks[c] = plot.Tick{Value: float64(c), Label: r.PerClass[c].Label}
	}
	return ticks
}

// confusionPNG renders PlotConfusion's image.
func confusionPNG(r Report) ([]byte, error) {
	k := len(r.Confusion)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Confusion matrix (n=%d, accuracy %.4f)", r.N, r.Accuracy)
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "true"
	grid := confusionGrid{r.Confusion}
	shares := newShareMap()
	hm := plotter.NewHeatMap(grid, shares.Palette(256))
	hm.Min, hm.Max = 0, 1
	p.Add(hm)

	// Cells of 0.16 in hold 7-point names side by side; a few classes get larger ones.
	tickSize, cell := font.Length(10), vg.Length(0.5)*vg.Inch
	if k > 12 {
		tickSize, cell = 7, vg.Length(0.16)*vg.Inch
	}
	ticks := confusionTicks(r)
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Tick.Label.Font.Size = tickSize
	p.Y.Tick.Label.Font.Size = tickSize
	p.X.Tick.Label.Rotation = math.Pi / 2 // names run upwards from the axis, none overlap
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.X.Min, p.X.Max = -0.5, float64(k)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(k)-0.5
	p.Y.Scale = invertedScale{}

	if k <= maxCellCounts {
		var xys plotter.XYs
		var labels []string
		var dark []bool
		for t := range k {
			for q := range k {
				xys = append(xys, plotter.XY{X: float64(q), Y: float64(t)})
				labels = append(labels, fmt.Sprint(r.Confusion[t][q]))
				dark = append(dark, grid.Z(q, t) > 0.7)
			}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].XAlign = draw.XCenter
			lb.TextStyle[i].YAlign = draw.YCenter
			lb.TextStyle[i].Color = color.Gray{Y: 30}
			if dark[i] {
				lb.TextStyle[i].Color = color.White
			}
			lb.TextStyle[i].Font.Size = tickSize
		}
		p.Add(lb)
	}

	// The colour bar: a narrow plot of the same colours, its axis in shares of the true
	// class (the colour is their square root, so the ticks sit at √share).
	bar := plot.New()
	bar.Add(&plotter.ColorBar{ColorMap: shares, Vertical: true})
	bar.HideX()
	bar.Y.Min, bar.Y.Max = 0, 1
	bar.Y.Label.Text = "share of the true class"
	bar.Y.Tick.Label.Font.Size = 8
	var barTicks []plot.Tick
	for _, share := range []float64{0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1} {
		barTicks = append(barTicks, plot.Tick{Value: math.Sqrt(share), Label: fmt.Sprintf("%g%%", 100*share)})
	}
	bar.Y.Tick.Marker = plot.ConstantTicks(barTicks)

	longest := vg.Length(0)
	for _, t := range ticks {
		longest = max(longest, p.Y.Tick.Label.Width(t.Label))
	}
	barWidth := vg.Length(1.5) * vg.Inch
	side := max(vg.Length(4)*vg.Inch, vg.Length(k)*cell)
	w := side + longest + vg.Length(0.8)*vg.Inch + barWidth
	h := side + longest + vg.Length(1)*vg.Inch
	return plotpng.WithPanel(p, w, h, barWidth, func(c draw.Canvas) {
		bar.Draw(draw.Crop(c, vg.Length(0.1)*vg.Inch, -vg.Length(0.3)*vg.Inch, 0, 0))
	})
}

// confusionGrid is a confusion matrix as a heat-map grid: column c is the predicted
// class, row r the true class, Z the square root of the row-normalised fraction (so
// that a few confusions among many rows still show).
type confusionGrid struct{ m [][]int }

func (g confusionGrid) Dims() (c, r int) { return len(g.m), len(g.m) }
func (g confusionGrid) X(c int) float64  { return float64(c) }
func (g confusionGrid) Y(r int) float64  { return float64(r) }
func (g confusionGrid) Z(c, r int) float64 {
	total := 0
	for _, v := range g.m[r] {
		total += v
	}
	if total == 0 {
		return 0
	}
	return math.Sqrt(float64(g.m[r][c]) / float64(total))
}

// invertedScale puts the first class at the top of the y axis, as confusion matrices
// are read.
type invertedScale struct{}

func (invertedScale) Normalize(min, max, x float64) float64 {
	return plot.LinearScale{}.Normalize(min, max, max+min-x)
}

// shareMap is the colour map of PlotConfusion: a sequential scale from white to dark
// blue (the ends of ColorBrewer's Blues, interpolated linearly in sRGB) over [Min, Max],
// by default [0, 1]. It implements palette.ColorMap.
type shareMap struct{ min, max, alpha float64 }

func newShareMap() *shareMap { return &shareMap{min: 0, max: 1, alpha: 1} }

func (m *shareMap) At(v float64) (color.Color, error) {
	switch {
	case v < m.min:
		return nil, palette.ErrUnderflow
	case v > m.max:
		return nil, palette.ErrOverflow
	case math.IsNaN(v):
		return nil, palette.ErrNaN
	}
	lo, hi := [3]float64{255, 255, 255}, [3]float64{8, 48, 107}
	f := (v - m.min) / (m.max - m.min)
	var c [3]uint8
	for j := range c {
		c[j] = uint8(lo[j] + f*(hi[j]-lo[j]) + 0.5)
	}
	return color.NRGBA{c[0], c[1], c[2], uint8(255*m.alpha + 0.5)}, nil
}

func (m *shareMap) Max() float64       { return m.max }
func (m *shareMap) SetMax(v float64)   { m.max = v }
func (m *shareMap) Min() float64       { return m.min }
func (m *shareMap) SetMin(v float64)   { m.min = v }
func (m *shareMap) Alpha() float64     { return m.alpha }
func (m *shareMap) SetAlpha(a float64) { m.alpha = a }
func (m *shareMap) Palette(n int) palette.Palette {
	cs := make([]color.Color, n)
	for i := range cs {
		cs[i], _ = m.At(m.min + (m.max-m.min)*float64(i)/float64(max(n-1, 1)))
	}
	return colors(cs)
}

type colors []color.Color

func (c colors) Colors() []color.Color { return c }
