package head

import (
	"bytes"
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
)

// maxTickLabels is the number of classes up to which PlotConfusion names every class
// on the axes; beyond it the axes are numbered and the names omitted.
const maxTickLabels = 30

// maxCellCounts is the number of classes up to which PlotConfusion writes each cell's
// count.
const maxCellCounts = 20

// PlotConfusion draws the report's confusion matrix as a PNG heat map at path, written
// atomically (temporary file and rename). The colour of a cell is the square root of
// its share of the true class's rows (the recall on the diagonal), so that rare and
// common classes read alike and scattered confusions still show; cells hold the counts
// when there are at most 20 classes. Up to 30 classes
// the axes carry the class names, beyond that the class indices (the table of
// WriteTable names them). The canvas grows with the number of classes.
func PlotConfusion(path string, r Report) error {
	k := len(r.Confusion)
	if k == 0 {
		return errorf(ErrBadSetting, "head: plotting %s: the report has no confusion matrix (multi-label data)", path)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Confusion matrix (n=%d, accuracy %.4f); colour: √(share of the true class)", r.N, r.Accuracy)
	p.X.Label.Text = "predicted"
	p.Y.Label.Text = "true"
	grid := confusionGrid{r.Confusion}
	hm := plotter.NewHeatMap(grid, blues(64))
	hm.Min, hm.Max = 0, 1
	p.Add(hm)

	tickSize := font.Length(10)
	if k > 12 {
		tickSize = 7
	}
	var ticks []plot.Tick
	for c := range k {
		label := fmt.Sprint(c)
		if k <= maxTickLabels {
			label = r.PerClass[c].Label
		} else if c%5 != 0 {
			label = ""
		}
		ticks = append(ticks, plot.Tick{Value: float64(c), Label: label})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Tick.Label.Font.Size = tickSize
	p.Y.Tick.Label.Font.Size = tickSize
	if k <= maxTickLabels {
		p.X.Tick.Label.Rotation = 1.2 // radians, so long names do not overlap
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
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
			return fmt.Errorf("head: plotting %s: %w", path, err)
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

	side := vg.Length(6) * vg.Inch
	if k > 12 {
		side = vg.Length(4+float64(k)*0.16) * vg.Inch
	}
	wt, err := p.WriterTo(side, side, "png")
	if err != nil {
		return fmt.Errorf("head: plotting %s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return fmt.Errorf("head: plotting %s: %w", path, err)
	}
	return fileio.WriteFile(path, buf.Bytes())
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

// blues is a sequential palette of n colours from white to dark blue (the ends of
// ColorBrewer's Blues, interpolated linearly in sRGB).
func blues(n int) palette.Palette {
	lo, hi := [3]float64{255, 255, 255}, [3]float64{8, 48, 107}
	cs := make([]color.Color, n)
	for i := range cs {
		f := float64(i) / float64(n-1)
		var c [3]uint8
		for j := range c {
			c[j] = uint8(lo[j] + f*(hi[j]-lo[j]) + 0.5)
		}
		cs[i] = color.RGBA{c[0], c[1], c[2], 255}
	}
	return colors(cs)
}

type colors []color.Color

func (c colors) Colors() []color.Color { return c }
