package results

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/hpctl/hpctl/internal/num"
)

var (
	trainColor    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	valColor      = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	boundaryColor = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

// Plot draws the learning curves as one PNG: accuracy above, loss below, every stage on
// one continuous epoch axis (a stage's epoch e is plotted at e plus the epochs of the
// stages before it) with a dashed vertical line and the stage's name where each later
// stage begins. It returns nil when no stage has finished an epoch yet.
//
// Numbers that are not finite (a diverged run's nan and inf) leave gaps; finite ones
// beyond ±plotLimit are drawn at the limit, and the panel's title says so. gonum/plot
// cannot be interrupted, so it draws on its own goroutine and Plot returns ctx's error
// as soon as ctx is done (hpctl then exits; the drawing dies with the process). A panic
// in gonum/plot is an error, not a crash.
func Plot(ctx context.Context, stages []StageSummary) ([]byte, error) {
	hasData := false
	for _, s := range stages {
		hasData = hasData || len(s.History) > 0
	}
	if !hasData {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	type result struct {
		png []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("gonum/plot: %v", r)}
			}
		}()
		png, err := drawCurves(stages)
		done <- result{png, err}
	}()
	select {
	case r := <-done:
		return r.png, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("plot: %w", ctx.Err())
	}
}

// plotLimit bounds the values plotted. gonum/plot's tick search (talbotLinHanrahan) as
// good as never ends over a range whose width overflows: for ±1e308 the width is +Inf,
// and the exponent it counts up from to 309, int(Ceil(Log10(+Inf))), is the smallest
// int. And a diverged loss of 1e30 makes every other
// point a flat line anyway.
const plotLimit = 1e6

func drawCurves(stages []StageSummary) ([]byte, error) {
	acc, err := curves(stages, "Accuracy", func(e Epoch) (num.Float, num.Float) { return e.Accuracy, e.ValAccuracy })
	if err != nil {
		return nil, err
	}
	// Accuracy rises and loss falls, so these corners are usually free of curves.
	acc.Legend.Top = false
	loss, err := curves(stages, "Loss", func(e Epoch) (num.Float, num.Float) { return e.Loss, e.ValLoss })
	if err != nil {
		return nil, err
	}
	img := vgimg.NewWith(vgimg.UseWH(8*vg.Inch, 7*vg.Inch), vgimg.UseDPI(110))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Millimeter * 6, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	cs := plot.Align([][]*plot.Plot{{acc}, {loss}}, tiles, dc)
	acc.Draw(cs[0][0])
	loss.Draw(cs[1][0])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func curves(stages []StageSummary, title string, pick func(Epoch) (train, val num.Float)) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch (all stages)"
	p.Y.Label.Text = title
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	offset := 0
	var boundaries []int
	var names []string
	inLegend := map[string]bool{}
	clamped := false
	ymin, ymax := math.Inf(1), math.Inf(-1)
	// A curve is its points and the runs of consecutive finite ones, each joined by a
	// line: a value that is not finite (a metric the trainer could not compute, a
	// diverged epoch) leaves a gap in the line.
	type curve struct {
		points plotter.XYs
		runs   []plotter.XYs
		gap    bool
	}
	add := func(c *curve, x float64, y num.Float) {
		if !y.Finite() {
			c.gap = true
			return
		}
		v := float64(y)
		if math.Abs(v) > plotLimit {
			v, clamped = math.Copysign(plotLimit, v), true
		}
		ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		if len(c.runs) == 0 || c.gap {
			c.runs, c.gap = append(c.runs, nil), false
		}
		c.runs[len(c.runs)-1] = append(c.runs[len(c.runs)-1], plotter.XY{X: x, Y: v})
		c.points = append(c.points, plotter.XY{X: x, Y: v})
	}
	for i, s := range stages {
		if len(s.History) == 0 {
			continue
		}
		if i > 0 && offset > 0 {
			boundaries = append(boundaries, offset)
		}
		names = append(names, s.Name)
		var tr, va curve
		for _, e := range s.History {
			x := float64(offset + e.Epoch)
			t, v := pick(e)
			add(&tr, x, t)
			add(&va, x, v)
		}
		for _, c := range []struct {
			curve
			col   color.Color
			label string
			dash  bool
		}{{tr, trainColor, "train", true}, {va, valColor, "validation", false}} {
			if len(c.points) == 0 {
				continue
			}
			sc, err := plotter.NewScatter(c.points)
			if err != nil {
				return nil, err
			}
			sc.Color, sc.Radius = c.col, vg.Points(2)
			p.Add(sc)
			var first *plotter.Line
			for _, run := range c.runs {
				l, err := plotter.NewLine(run)
				if err != nil {
					return nil, err
				}
				l.Color, l.Width = c.col, vg.Points(1.5)
				if c.dash {
					l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
				}
				p.Add(l)
				if first == nil {
					first = l
				}
			}
			if !inLegend[c.label] {
				p.Legend.Add(c.label, first, sc)
				inLegend[c.label] = true
			}
		}
		last := 0
		for _, e := range s.History {
			last = max(last, e.Epoch)
		}
		offset += last
	}
	// The y axis spans the data (clamped above), or 0 to 1 when no value is finite; the
	// boundary lines span it too.
	if ymin > ymax {
		ymin, ymax = 0, 1
	}
	if ymax-ymin < 1e-9*max(1, math.Abs(ymax)) {
		ymin, ymax = ymin-0.5, ymax+0.5
	}
	p.Y.Min, p.Y.Max = ymin, ymax
	if clamped {
		p.Title.Text += fmt.Sprintf(" (values beyond ±%g drawn at ±%g)", plotLimit, plotLimit)
	}
	for i, b := range boundaries {
		x := float64(b) + 0.5
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: ymin}, {X: x, Y: ymax}})
		if err != nil {
			return nil, err
		}
		l.Color = boundaryColor
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: ymax}}, Labels: []string{" " + names[i+1] + " →"}})
		if err != nil {
			return nil, err
		}
		p.Add(l, lab)
	}
	if len(names) > 0 {
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: 1, Y: ymax}}, Labels: []string{names[0]}})
		if err != nil {
			return nil, err
		}
		p.Add(lab)
	}
	p.X.Min, p.X.Max = 0.5, float64(offset)+0.5
	p.X.Tick.Marker = epochTicks{}
	return p, nil
}

// epochTicks labels whole epochs only: epoch 1 and about ten multiples of a step. It
// makes a dozen ticks whatever the range (it used to visit every epoch in it).
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo <= hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	step := math.Max(1, math.Ceil((hi-lo)/10))
	var ticks []plot.Tick
	if lo <= 1 && 1 <= hi {
		ticks = append(ticks, plot.Tick{Value: 1, Label: "1"})
	}
	for e := math.Ceil(lo/step) * step; e <= hi && len(ticks) < 13; e += step {
		if e != 1 {
			ticks = append(ticks, plot.Tick{Value: e, Label: strconv.FormatFloat(e, 'f', -1, 64)})
		}
	}
	slices.SortFunc(ticks, func(a, b plot.Tick) int { return cmp.Compare(a.Value, b.Value) })
	return ticks
}
