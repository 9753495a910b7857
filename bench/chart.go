package main

import (
	"fmt"
	"image/color"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// series is one latency distribution for the chart.
type series struct {
	Name    string
	Samples []time.Duration
	Color   color.RGBA
}

// writeChart draws the empirical CDFs of the latency distributions on a
// log-scaled millisecond axis, so the p50s and the tails are both legible.
func writeChart(path string, ss []series) error {
	p := plot.New()
	p.Title.Text = "insuranceflow benchmark: latency distributions"
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of requests at or below"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.X.Min = chartMinMS
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = -vg.Points(8)
	for _, s := range ss {
		if len(s.Samples) == 0 {
			continue
		}
		pts := cdf(s.Samples)
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("chart %s: %w", s.Name, err)
		}
		l.Color = s.Color
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (n=%d)", s.Name, len(s.Samples)), l)
	}
	if err := p.Save(9*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("save chart: %w", err)
	}
	return nil
}

// chartMinMS is the chart's left edge. A delivery can reach topsim before
// the 202 reaches the client, so some delivery latencies are ≤ 0; they are
// drawn at the left edge (the percentiles use the true values).
const chartMinMS = 1.0

// cdf is the empirical distribution, clamped at chartMinMS for the log axis.
func cdf(ds []time.Duration) plotter.XYs {
	s := slices.Clone(ds)
	slices.Sort(s)
	pts := make(plotter.XYs, len(s))
	for i, d := range s {
		x := float64(d) / float64(time.Millisecond)
		pts[i] = plotter.XY{X: max(x, chartMinMS), Y: float64(i+1) / float64(len(s))}
	}
	return pts
}
