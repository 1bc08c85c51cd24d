package results

import (
	"bytes"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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
func Plot(stages []StageSummary) ([]byte, error) {
	hasData := false
	for _, s := range stages {
		hasData = hasData || len(s.History) > 0
	}
	if !hasData {
		return nil, nil
	}
	acc, err := curves(stages, "Accuracy", func(e Epoch) (float64, float64) { return e.Accuracy, e.ValAccuracy })
	if err != nil {
		return nil, err
	}
	// Accuracy rises and loss falls, so these corners are usually free of curves.
	acc.Legend.Top = false
	loss, err := curves(stages, "Loss", func(e Epoch) (float64, float64) { return e.Loss, e.ValLoss })
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

func curves(stages []StageSummary, title string, pick func(Epoch) (train, val float64)) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch (all stages)"
	p.Y.Label.Text = title
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	offset := 0
	var boundaries []int
	var names []string
	legend := true
	for i, s := range stages {
		if len(s.History) == 0 {
			continue
		}
		if i > 0 && offset > 0 {
			boundaries = append(boundaries, offset)
		}
		names = append(names, s.Name)
		var tr, va plotter.XYs
		for _, e := range s.History {
			x := float64(offset + e.Epoch)
			t, v := pick(e)
			// NaN (a metric the trainer could not compute) leaves a gap, not an error.
			if !math.IsNaN(t) && !math.IsInf(t, 0) {
				tr = append(tr, plotter.XY{X: x, Y: t})
			}
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				va = append(va, plotter.XY{X: x, Y: v})
			}
		}
		for _, c := range []struct {
			xys   plotter.XYs
			col   color.Color
			label string
			dash  bool
		}{{tr, trainColor, "train", true}, {va, valColor, "validation", false}} {
			if len(c.xys) == 0 {
				continue
			}
			l, sc, err := plotter.NewLinePoints(c.xys)
			if err != nil {
				return nil, err
			}
			l.Color, sc.Color = c.col, c.col
			l.Width = vg.Points(1.5)
			sc.Radius = vg.Points(2)
			if c.dash {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(l, sc)
			if legend {
				p.Legend.Add(c.label, l, sc)
			}
		}
		legend = false
		last := 0
		for _, e := range s.History {
			last = max(last, e.Epoch)
		}
		offset += last
	}
	// The boundary lines span the data's range, known once the curves are added.
	ymin, ymax := p.Y.Min, p.Y.Max
	if ymin == ymax {
		ymin, ymax = ymin-0.5, ymax+0.5
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

// epochTicks labels whole epochs only, about ten of them.
type epochTicks struct{}

func (epochTicks) Ticks(lo, hi float64) []plot.Tick {
	step := max(1, int(math.Ceil((hi-lo)/10)))
	var ticks []plot.Tick
	for e := int(math.Ceil(lo)); float64(e) <= hi; e++ {
		if e%step == 0 || e == 1 {
			ticks = append(ticks, plot.Tick{Value: float64(e), Label: strconv.Itoa(e)})
		}
	}
	return ticks
}
