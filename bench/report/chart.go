package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// chartSeries are the bars of each figure, with their colours.
var chartSeries = []struct {
	target string
	color  color.Color
}{
	{"nginx", color.RGBA{R: 0x4c, G: 0x9a, B: 0x2a, A: 0xff}},
	{"kubegate", color.RGBA{R: 0x1f, G: 0x5f, B: 0xbf, A: 0xff}},
}

// chart draws nginx's and kubegate's figures relative to direct access as
// a PNG bar chart, higher being better (latencies as direct ÷ value), with
// direct at 1.
func chart(rows []row, date string) ([]byte, error) {
	var shown []row
	for _, r := range rows {
		if r.short != "" {
			if _, ok := r.values["direct"]; ok {
				shown = append(shown, r)
			}
		}
	}
	if len(shown) == 0 {
		return nil, errors.New("no figure with a direct baseline to chart")
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("nginx and kubegate relative to direct access (%s)", date)
	p.Y.Label.Text = "× direct (higher is better; latency as direct ÷ value)"
	p.Y.Min = 0
	w := vg.Points(14)
	top := 1.0
	var labels []string
	for _, r := range shown {
		labels = append(labels, r.short)
	}
	for i, s := range chartSeries {
		vals := make(plotter.Values, len(shown))
		var xy plotter.XYLabels
		for j, r := range shown {
			v, ok := r.speedup(s.target)
			if ok {
				vals[j] = v
				top = max(top, v)
				xy.XYs = append(xy.XYs, plotter.XY{X: float64(j), Y: v})
				xy.Labels = append(xy.Labels, fmt.Sprintf("%.2f", v))
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color = s.color
		bars.LineStyle.Width = 0
		offset := w * vg.Length(float64(i)-float64(len(chartSeries)-1)/2)
		bars.Offset = offset
		p.Add(bars)
		p.Legend.Add(s.target, bars)
		if len(xy.XYs) > 0 {
			l, err := plotter.NewLabels(xy)
			if err != nil {
				return nil, err
			}
			for k := range l.TextStyle {
				l.TextStyle[k].XAlign = text.XCenter
				l.TextStyle[k].Font.Size = vg.Points(7)
			}
			l.Offset = vg.Point{X: offset, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	direct, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1}, {X: float64(len(shown)) - 0.5, Y: 1}})
	if err != nil {
		return nil, err
	}
	direct.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	direct.LineStyle.Color = color.Gray{Y: 0x60}
	p.Add(direct)
	p.Legend.Add("direct = 1", direct)
	p.Legend.Top = true
	p.Y.Max = top * 1.25 // room for the legend and the labels
	p.NominalX(labels...)
	p.Add(plotter.NewGrid())
	wt, err := p.WriterTo(11*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
