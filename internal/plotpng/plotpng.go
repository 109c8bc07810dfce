// Package plotpng renders a gonum plot as PNG bytes with a panel on its right (a colour
// bar, a legend) lined up with the plot's data area.
package plotpng

import (
	"bytes"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WithPanel draws p on a w × h canvas less a column of width panel on the right, then
// calls drawPanel with that column, cut to the height of p's data area, and returns the
// image as PNG.
func WithPanel(p *plot.Plot, w, h, panel vg.Length, drawPanel func(draw.Canvas)) ([]byte, error) {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	area := draw.Crop(dc, 0, -panel, 0, 0)
	p.Draw(area)
	data := p.DataCanvas(area)
	side := dc
	side.Min = vg.Point{X: w - panel, Y: data.Min.Y}
	side.Max = vg.Point{X: w, Y: data.Max.Y}
	drawPanel(side)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
