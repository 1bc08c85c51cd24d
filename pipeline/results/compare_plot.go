package results

import (
	"bytes"
	"context"
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// ComparePlot draws each compared run's validation accuracy as one curve over all its
// stages (a stage's epoch e at e plus the epochs of the stages before it, as Plot does),
// and returns it as PNG and SVG. Both are nil when no run has finished an epoch. Values
// that are not finite leave gaps. gonum/plot runs on its own goroutine (it cannot be
// interrupted) and a panic in it is an error.
func ComparePlot(ctx context.Context, c *Compared) (png, svg []byte, err error) {
	has := false
	for _, r := range c.Runs {
		for _, s := range r.Stages {
			has = has || len(s.history) > 0
		}
	}
	if !has {
		return nil, nil, nil
	}
	type result struct {
		png, svg []byte
		err      error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("gonum/plot: %v", r)}
			}
		}()
		p, err := compareCurves(c)
		if err != nil {
			done <- result{err: err}
			return
		}
		var out [2]bytes.Buffer
		for i, format := range []string{"png", "svg"} {
			w, err := p.WriterTo(9*vg.Inch, 5*vg.Inch, format)
			if err == nil {
				_, err = w.WriteTo(&out[i])
			}
			if err != nil {
				done <- result{err: fmt.Errorf("plot %s: %w", format, err)}
				return
			}
		}
		done <- result{png: out[0].Bytes(), svg: svgFallbackFonts(out[1].Bytes())}
	}()
	select {
	case r := <-done:
		return r.png, r.svg, r.err
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("plot: %w", ctx.Err())
	}
}

func compareCurves(c *Compared) (*plot.Plot, error) {
	p := plot.New()
	sansFonts(p)
	p.Title.Text = "Validation accuracy"
	p.X.Label.Text = "epoch (all stages)"
	p.Y.Label.Text = "validation accuracy"
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.Left = false
	ymin, ymax, xmax := math.Inf(1), math.Inf(-1), 1.0
	for i, r := range c.Runs {
		var runs []plotter.XYs
		var points plotter.XYs
		gap := true
		offset := 0
		for _, s := range r.Stages {
			last := 0
			for _, e := range s.history {
				last = max(last, e.Epoch)
				x := float64(offset + e.Epoch)
				v := float64(e.ValAccuracy)
				if !e.ValAccuracy.Finite() {
					gap = true
					continue
				}
				v = math.Max(-plotLimit, math.Min(plotLimit, v))
				ymin, ymax, xmax = math.Min(ymin, v), math.Max(ymax, v), math.Max(xmax, x)
				if gap {
					runs, gap = append(runs, nil), false
				}
				runs[len(runs)-1] = append(runs[len(runs)-1], plotter.XY{X: x, Y: v})
				points = append(points, plotter.XY{X: x, Y: v})
			}
			offset += last
		}
		if len(points) == 0 {
			continue
		}
		col := plotutil.Color(i)
		sc, err := plotter.NewScatter(points)
		if err != nil {
			return nil, err
		}
		sc.Color, sc.Radius, sc.Shape = col, vg.Points(2.5), plotutil.Shape(i)
		p.Add(sc)
		var first *plotter.Line
		for _, run := range runs {
			l, err := plotter.NewLine(run)
			if err != nil {
				return nil, err
			}
			l.Color, l.Width, l.Dashes = col, vg.Points(1.5), plotutil.Dashes(i)
			p.Add(l)
			if first == nil {
				first = l
			}
		}
		p.Legend.Add(r.Label, first, sc)
	}
	if ymin > ymax {
		ymin, ymax = 0, 1
	}
	if ymax-ymin < 1e-9 {
		ymin, ymax = ymin-0.05, ymax+0.05
	}
	p.Y.Min, p.Y.Max = ymin, ymax
	p.X.Min, p.X.Max = 0.5, xmax+0.5
	p.X.Tick.Marker = epochTicks{}
	return p, nil
}
