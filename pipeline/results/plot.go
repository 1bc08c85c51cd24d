package results

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	stdfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/font/liberation"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/num"
)

var (
	trainColor    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	valColor      = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	boundaryColor = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	bestColor     = color.RGBA{A: 0xff}
	gridColor     = color.RGBA{R: 0xdd, G: 0xdd, B: 0xdd, A: 0xff}
	noteColor     = color.RGBA{R: 0x9a, G: 0x1c, B: 0x1c, A: 0xff}
	mutedColor    = color.RGBA{R: 0x44, G: 0x44, B: 0x44, A: 0xff}
)

// sans is the figure's typeface. gonum's default is Liberation Serif, which reads poorly
// on a slide; Liberation Sans is metrically compatible with Arial, so the SVG names
// Arial and Helvetica as fallbacks for viewers without it and keeps its layout.
var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

func init() { font.DefaultCache.Add(liberation.Collection()) }

// CurveInfo is what the learning-curve figure says besides the numbers: whose run, which
// backbone, and each stage's optimizer and learning rate (ReadCurveInfo reads them from
// the fetched spec.resolved.json).
type CurveInfo struct {
	RunID    string
	Backbone string
	Stages   []StageSetting
}

// StageSetting is one stage's optimizer as the resolved spec gives it.
type StageSetting struct {
	Name         string
	Optimizer    string
	LearningRate *float64
}

// ReadCurveInfo reads the title's facts from a fetched run directory. A spec it cannot
// read costs the title its details, never the plot: the run id is always known.
func ReadCurveInfo(dir, runID string) CurveInfo {
	info := CurveInfo{RunID: runID}
	b, err := os.ReadFile(filepath.Join(dir, experiment.ResolvedSpecFile))
	if err != nil {
		return info
	}
	var rs struct {
		Model struct {
			Backbone string `json:"backbone"`
		} `json:"model"`
		Stages []struct {
			Name      string `json:"name"`
			Optimizer struct {
				Name         string   `json:"name"`
				LearningRate *float64 `json:"learning_rate"`
			} `json:"optimizer"`
		} `json:"stages"`
	}
	if json.Unmarshal(b, &rs) != nil {
		return info
	}
	info.Backbone = rs.Model.Backbone
	for _, s := range rs.Stages {
		info.Stages = append(info.Stages, StageSetting{Name: s.Name, Optimizer: s.Optimizer.Name, LearningRate: s.Optimizer.LearningRate})
	}
	return info
}

// Figures is one figure in two formats.
type Figures struct {
	PNG, SVG []byte
}

// Plot draws the learning curves as one figure, PNG and SVG: a title (run id, backbone,
// each stage's optimizer and learning rate), accuracy above, loss below, every stage on
// one continuous epoch axis (a stage's epoch e is plotted at e plus the epochs of the
// stages before it) with a dashed vertical line where each later stage begins and the
// stages' names in a strip above the panels, outside the data. Each stage's best epoch,
// the one whose checkpoint the trainer kept (best validation accuracy), is ringed, and a
// legend beside the panels names every mark and lists the kept checkpoints. Loss is on
// a log axis when its values span more than a decade. It returns nil when no stage has
// finished an epoch yet.
//
// Numbers that are not finite (a diverged run's nan and inf) leave gaps; finite ones
// beyond ±plotLimit (and, on a log axis, below 1/plotLimit) are drawn at the limit, and
// a note under the title says so. gonum/plot cannot be interrupted, so it draws on its
// own goroutine and Plot returns ctx's error as soon as ctx is done (hpctl then exits;
// the drawing dies with the process). A panic in gonum/plot is an error, not a crash.
func Plot(ctx context.Context, info CurveInfo, stages []StageSummary) (*Figures, error) {
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
		fig *Figures
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("gonum/plot: %v", r)}
			}
		}()
		fig, err := drawFigures(info, stages)
		done <- result{fig, err}
	}()
	select {
	case r := <-done:
		return r.fig, r.err
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

// The figure's size and type sizes, in points: 10 × 7 inches, type legible when the
// figure fills a slide.
const (
	figWidth  = 10 * vg.Inch
	figHeight = 7 * vg.Inch
	figDPI    = 144
	margin    = vg.Length(14)
	// legendWidth leaves room for a viewer's fallback font (DejaVu Sans runs about a
	// tenth wider than Liberation Sans and Arial).
	legendWidth  = vg.Length(200)
	titleSize    = vg.Length(18)
	subtitleSize = vg.Length(13)
	noteSize     = vg.Length(11.5)
	labelSize    = vg.Length(14)
	tickSize     = vg.Length(12)
	legendSize   = vg.Length(12.5)
	stripSize    = vg.Length(12.5)
)

func drawFigures(info CurveInfo, stages []StageSummary) (*Figures, error) {
	png := vgimg.NewWith(vgimg.UseWH(figWidth, figHeight), vgimg.UseDPI(figDPI))
	if err := drawFigure(draw.New(png), info, stages); err != nil {
		return nil, err
	}
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: png}).WriteTo(&pb); err != nil {
		return nil, err
	}
	svg := vgsvg.New(figWidth, figHeight)
	if err := drawFigure(draw.New(svg), info, stages); err != nil {
		return nil, err
	}
	var sb bytes.Buffer
	if _, err := svg.WriteTo(&sb); err != nil {
		return nil, err
	}
	return &Figures{PNG: pb.Bytes(), SVG: svgFallbackFonts(sb.Bytes())}, nil
}

// svgFallbackFonts lets a viewer without Liberation Sans use a sans of its own rather than
// its default serif. gonum names the one family; text it writes is HTML-escaped, so this
// quoted attribute start is never text.
func svgFallbackFonts(svg []byte) []byte {
	return bytes.ReplaceAll(svg, []byte(`"font-family:Liberation Sans;`),
		[]byte(`"font-family:'Liberation Sans',Arial,Helvetica,sans-serif;`))
}

// sansFonts sets a gonum plot's title, axes and legend in the figures' sans face and the
// learning curves' sizes (gonum's default is a small serif), keeping gonum's alignments.
func sansFonts(p *plot.Plot) {
	bold := sans
	bold.Weight = stdfont.WeightBold
	p.Title.TextStyle.Font = font.From(bold, subtitleSize)
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(sans, labelSize)
		ax.Tick.Label.Font = font.From(sans, tickSize)
	}
	p.Legend.TextStyle.Font = font.From(sans, legendSize)
	// gonum spaces legend rows by the thumbnail's height, which this type outgrows.
	p.Legend.Padding = legendSize / 3
}

func textStyle(size vg.Length, bold bool, col color.Color) draw.TextStyle {
	f := sans
	if bold {
		f.Weight = stdfont.WeightBold
	}
	return draw.TextStyle{Color: col, Font: font.From(f, size), Handler: plot.DefaultTextHandler}
}

// panel is one of the figure's two plots and what the figure draws around it.
type panel struct {
	p          *plot.Plot
	boundaries []float64 // x of each later stage's first epoch, less half an epoch
	starts     []string  // the stage names, first stage first
	clamped    bool
	log        bool
}

func drawFigure(c draw.Canvas, info CurveInfo, stages []StageSummary) error {
	acc, err := curves(stages, "accuracy", false, func(e Epoch) (num.Float, num.Float) { return e.Accuracy, e.ValAccuracy })
	if err != nil {
		return err
	}
	useLog := logWorthy(stages)
	loss, err := curves(stages, "loss", useLog, func(e Epoch) (num.Float, num.Float) { return e.Loss, e.ValLoss })
	if err != nil {
		return err
	}
	acc.p.X.Label.Text = ""
	loss.p.X.Label.Text = "epoch (all stages)"

	// The header: title, subtitle (wrapped), notes. Then the stage strip, then panels.
	width := c.Max.X - c.Min.X - 2*margin
	top := c.Max.Y - margin
	line := func(sty draw.TextStyle, s string) {
		sty.YAlign = draw.YTop
		c.FillText(sty, vg.Point{X: c.Min.X + margin, Y: top}, fit(sty, s, width))
		top -= sty.Font.Size * 1.25
	}
	line(textStyle(titleSize, true, color.Black), "Learning curves: "+clean(info.RunID))
	for _, l := range wrap(textStyle(subtitleSize, false, mutedColor), subtitleParts(info), width) {
		line(textStyle(subtitleSize, false, mutedColor), l)
	}
	if acc.clamped {
		line(textStyle(noteSize, false, noteColor), "accuracy: values beyond ±"+formatLR(plotLimit)+" are drawn at ±"+formatLR(plotLimit))
	}
	if loss.clamped {
		what := "loss: values beyond ±" + formatLR(plotLimit) + " are drawn at ±" + formatLR(plotLimit)
		if loss.log {
			what = "loss: values outside " + formatLR(1/plotLimit) + " to " + formatLR(plotLimit) + " are drawn at the nearer limit"
		}
		line(textStyle(noteSize, false, noteColor), what)
	}
	strip := textStyle(stripSize, true, boundaryColor)
	stripGap := vg.Length(5)
	stripH := stripGap + strip.Height("Ag") + 6
	top -= stripH

	area := draw.Crop(c, margin, -(legendWidth + margin), margin, top-c.Max.Y)
	accC, lossC := stack(area, acc.p, loss.p, 14)
	acc.p.Draw(accC)
	loss.p.Draw(lossC)
	accData, lossData := acc.p.DataCanvas(accC), loss.p.DataCanvas(lossC)

	// The stage strip: each stage's name above the accuracy panel, from where the stage
	// begins, cut short (…) where the next begins; a tick joins it to its boundary line.
	xs := []vg.Length{accData.Min.X}
	for _, b := range acc.boundaries {
		xs = append(xs, accData.X(acc.p.X.Norm(b)))
	}
	base := accData.Max.Y + stripGap
	for i, name := range acc.starts {
		x := xs[i] + 4
		end := area.Max.X
		if i+1 < len(xs) {
			end = xs[i+1] - 6
		}
		if i > 0 {
			c.StrokeLine2(draw.LineStyle{Color: boundaryColor, Width: vg.Points(1)}, xs[i], accData.Max.Y, xs[i], base+strip.Height("Ag"))
		}
		sty := strip
		sty.YAlign = draw.YBottom
		if s := fit(sty, clean(name), end-x); s != "" {
			c.FillText(sty, vg.Point{X: x, Y: base}, s)
		}
	}

	// The legend, beside the accuracy panel; the kept checkpoints, beside the loss panel.
	lx := area.Max.X + 10
	lw := c.Max.X - margin - lx
	ls := textStyle(legendSize, false, color.Black)
	ls.YAlign = draw.YCenter
	row := ls.Font.Size * 1.6
	y := accData.Max.Y - row/2
	thumb := vg.Length(26)
	entry := func(label string, drawThumb func(x0, x1, y vg.Length)) {
		drawThumb(lx, lx+thumb, y)
		c.FillText(ls, vg.Point{X: lx + thumb + 6, Y: y}, fit(ls, label, lw-thumb-6))
		y -= row
	}
	entry("train", func(x0, x1, y vg.Length) {
		c.StrokeLine2(trainLine(), x0, y, x1, y)
		c.DrawGlyph(dot(trainColor), vg.Point{X: (x0 + x1) / 2, Y: y})
	})
	entry("validation", func(x0, x1, y vg.Length) {
		c.StrokeLine2(valLine(), x0, y, x1, y)
		c.DrawGlyph(dot(valColor), vg.Point{X: (x0 + x1) / 2, Y: y})
	})
	// The kept checkpoints, each stage's epoch and where it is on the axis.
	var kept []string // pairs of lines: the stage and epoch, then its numbers
	offset := 0
	for _, s := range stages {
		if ep, ok := bestIn(s); ok {
			at := "epoch " + strconv.Itoa(ep.Epoch)
			if offset > 0 {
				at += fmt.Sprintf(" (%d overall)", offset+ep.Epoch)
			}
			kept = append(kept, clean(s.Name)+": "+at,
				"val acc "+Float(ptr(ep.ValAccuracy), 3)+", loss "+Float(ptr(ep.ValLoss), 3))
		}
		offset += lastEpoch(s)
	}
	if len(kept) > 0 {
		entry("best epoch (checkpoint)", func(x0, x1, y vg.Length) {
			c.DrawGlyph(bestGlyph(), vg.Point{X: (x0 + x1) / 2, Y: y})
		})
	}
	if len(acc.boundaries) > 0 {
		entry("stage boundary", func(x0, x1, y vg.Length) {
			c.StrokeLine2(boundaryLine(), (x0+x1)/2, y-row*0.4, (x0+x1)/2, y+row*0.4)
		})
	}

	hs := textStyle(legendSize, true, color.Black)
	hs.YAlign = draw.YTop
	ts := textStyle(legendSize, false, mutedColor)
	ts.YAlign = draw.YTop
	y = min(y-row/2, lossData.Max.Y)
	step := ls.Font.Size * 1.3
	if len(kept) > 0 {
		c.FillText(hs, vg.Point{X: lx, Y: y}, fit(hs, "Checkpoints kept", lw))
		y -= step * 1.15
		// As many lines as fit above the bottom margin; "…" in the last when some don't.
		if n := max(1, int((y-c.Min.Y-margin)/step)); len(kept) > n {
			kept = append(kept[:n-1], "…")
		}
		for i, t := range kept {
			// The numbers are indented under their stage (by position: SVG collapses
			// leading spaces).
			indent := vg.Length(0)
			if i%2 == 1 && t != "…" {
				indent = 12
			}
			c.FillText(ts, vg.Point{X: lx + indent, Y: y}, fit(ts, t, lw-indent))
			y -= step
		}
	}
	return nil
}

func dot(col color.Color) draw.GlyphStyle {
	return draw.GlyphStyle{Color: col, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
}

// stack lays out two plots one above the other in c, gap apart, with data areas of one
// height and one left and right edge. (plot.Align leaves a wide gap between rows whose
// axes differ, here the loss panel's x axis label.)
// gonum pads a data area by how far glyphs and axis labels reach past it, which depends
// on the area's size, so the layout is refined a few times from the whole of c.
func stack(c draw.Canvas, top, bottom *plot.Plot, gap vg.Length) (draw.Canvas, draw.Canvas) {
	t, b := c, c
	for range 4 {
		tc, bc := top.DataCanvas(t), bottom.DataCanvas(b)
		topAbove, topBelow := t.Max.Y-tc.Max.Y, tc.Min.Y-t.Min.Y
		botAbove, botBelow := b.Max.Y-bc.Max.Y, bc.Min.Y-b.Min.Y
		topLeft, topRight := tc.Min.X-t.Min.X, t.Max.X-tc.Max.X
		botLeft, botRight := bc.Min.X-b.Min.X, b.Max.X-bc.Max.X
		left, right := max(topLeft, botLeft), max(topRight, botRight)
		h := (c.Max.Y - c.Min.Y - topAbove - topBelow - botAbove - botBelow - gap) / 2
		t, b = c, c
		t.Min.Y = c.Max.Y - topAbove - h - topBelow
		t.Min.X += left - topLeft
		t.Max.X -= right - topRight
		b.Max.Y = c.Min.Y + botBelow + h + botAbove
		b.Min.X += left - botLeft
		b.Max.X -= right - botRight
	}
	return t, b
}

func trainLine() draw.LineStyle {
	return draw.LineStyle{Color: trainColor, Width: vg.Points(1.8), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
}

func valLine() draw.LineStyle { return draw.LineStyle{Color: valColor, Width: vg.Points(1.8)} }

func boundaryLine() draw.LineStyle {
	return draw.LineStyle{Color: boundaryColor, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}
}

func bestGlyph() draw.GlyphStyle {
	return draw.GlyphStyle{Color: bestColor, Radius: vg.Points(6), Shape: ringGlyph{}}
}

// ringGlyph is draw.RingGlyph with a line a slide shows.
type ringGlyph struct{}

func (ringGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(1.8)})
	var p vg.Path
	p.Move(vg.Point{X: pt.X + sty.Radius, Y: pt.Y})
	p.Arc(pt, sty.Radius, 0, 2*math.Pi)
	p.Close()
	c.Stroke(p)
}

// lastEpoch is the highest epoch in a stage's history: where the next stage's epochs
// begin on the figure's axis.
func lastEpoch(s StageSummary) int {
	last := 0
	for _, e := range s.History {
		last = max(last, e.Epoch)
	}
	return last
}

// bestIn is a stage's best epoch, the one whose checkpoint the trainer kept (its
// callback keeps the first epoch of the highest val_accuracy; the summary has the
// epoch from metrics.json or, before the stage ends, from the history), when its
// history has that row.
func bestIn(s StageSummary) (Epoch, bool) {
	if s.BestEpoch <= 0 {
		return Epoch{}, false
	}
	for _, e := range s.History {
		if e.Epoch == s.BestEpoch {
			return e, true
		}
	}
	return Epoch{}, false
}

func subtitleParts(info CurveInfo) []string {
	var parts []string
	if info.Backbone != "" {
		parts = append(parts, "backbone "+clean(info.Backbone))
	}
	for _, s := range info.Stages {
		var what []string
		if s.Optimizer != "" {
			what = append(what, clean(s.Optimizer))
		}
		if s.LearningRate != nil {
			what = append(what, "lr "+formatLR(*s.LearningRate))
		}
		if len(what) > 0 {
			parts = append(parts, clean(s.Name)+": "+strings.Join(what, ", "))
		}
	}
	return parts
}

// formatLR writes a learning rate as people do: 0.001, 3e-5.
func formatLR(v float64) string {
	s := strconv.FormatFloat(v, 'g', 3, 64)
	if i := strings.Index(s, "e"); i >= 0 {
		m, e := s[:i], s[i+1:]
		sign := ""
		if e[0] == '-' || e[0] == '+' {
			if e[0] == '-' {
				sign = "-"
			}
			e = e[1:]
		}
		s = m + "e" + sign + strings.TrimLeft(e, "0")
	}
	return s
}

// sep separates the subtitle's parts: en spaces, which SVG does not collapse as it does
// runs of ASCII spaces.
const sep = "\u2002·\u2002"

// wrap joins parts with sep into lines no wider than w.
func wrap(sty draw.TextStyle, parts []string, w vg.Length) []string {
	var lines []string
	cur := ""
	for _, p := range parts {
		next := p
		if cur != "" {
			next = cur + sep + p
		}
		if cur != "" && sty.Width(next) > w {
			lines, cur = append(lines, cur), p
			continue
		}
		cur = next
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// fit cuts s short with … so it is no wider than w; "" when not even one letter fits.
func fit(sty draw.TextStyle, s string, w vg.Length) string {
	if sty.Width(s) <= w {
		return s
	}
	r := []rune(s)
	for n := len(r) - 1; n > 0; n-- {
		if t := string(r[:n]) + "…"; sty.Width(t) <= w {
			return t
		}
	}
	return ""
}

// clean makes a name from the cluster's files fit for a figure: printable characters
// only (an SVG cannot hold most control characters even escaped), at most 64 of them.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 64 {
		s = string(r[:63]) + "…"
	}
	return s
}

// logWorthy says whether the loss spans decades: every finite value positive and the
// largest more than ten times the smallest (at the plot's limits).
func logWorthy(stages []StageSummary) bool {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range stages {
		for _, e := range s.History {
			for _, v := range []num.Float{e.Loss, e.ValLoss} {
				if !v.Finite() {
					continue
				}
				if v <= 0 {
					return false
				}
				f := math.Min(math.Max(float64(v), 1/plotLimit), plotLimit)
				lo, hi = math.Min(lo, f), math.Max(hi, f)
			}
		}
	}
	return lo <= hi && hi/lo > 10
}

func curves(stages []StageSummary, name string, logY bool, pick func(Epoch) (train, val num.Float)) (*panel, error) {
	p := plot.New()
	out := &panel{p: p, log: logY}
	// Only the fonts change: gonum's alignments and rotations of axis text stay.
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(sans, labelSize)
		ax.Tick.Label.Font = font.From(sans, tickSize)
	}
	p.Y.Label.Text = name
	if logY {
		p.Y.Label.Text = name + " (log scale)"
	}
	p.X.Label.Text = "epoch (all stages)"
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = gridColor, gridColor
	g.Vertical.Width, g.Horizontal.Width = vg.Points(0.6), vg.Points(0.6)
	p.Add(g)
	offset := 0
	ymin, ymax := math.Inf(1), math.Inf(-1)
	// A curve is its points and the runs of consecutive finite ones, each joined by a
	// line: a value that is not finite (a metric the trainer could not compute, a
	// diverged epoch) leaves a gap in the line.
	type curve struct {
		points plotter.XYs
		runs   []plotter.XYs
		gap    bool
	}
	clampY := func(y num.Float) (float64, bool) {
		if !y.Finite() {
			return 0, false
		}
		v := float64(y)
		switch {
		case math.Abs(v) > plotLimit:
			v, out.clamped = math.Copysign(plotLimit, v), true
		case logY && v < 1/plotLimit:
			v, out.clamped = 1/plotLimit, true
		}
		if logY {
			v = math.Log10(v)
		}
		return v, true
	}
	add := func(c *curve, x float64, y num.Float) {
		v, ok := clampY(y)
		if !ok {
			c.gap = true
			return
		}
		ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		if len(c.runs) == 0 || c.gap {
			c.runs, c.gap = append(c.runs, nil), false
		}
		c.runs[len(c.runs)-1] = append(c.runs[len(c.runs)-1], plotter.XY{X: x, Y: v})
		c.points = append(c.points, plotter.XY{X: x, Y: v})
	}
	var best plotter.XYs
	for i, s := range stages {
		if len(s.History) == 0 {
			continue
		}
		if i > 0 && offset > 0 {
			out.boundaries = append(out.boundaries, float64(offset)+0.5)
		}
		out.starts = append(out.starts, s.Name)
		var tr, va curve
		for _, e := range s.History {
			x := float64(offset + e.Epoch)
			t, v := pick(e)
			add(&tr, x, t)
			add(&va, x, v)
		}
		if e, ok := bestIn(s); ok {
			_, v := pick(e)
			if y, ok := clampY(v); ok {
				best = append(best, plotter.XY{X: float64(offset + e.Epoch), Y: y})
			}
		}
		for _, c := range []struct {
			curve
			col  color.Color
			line draw.LineStyle
		}{{tr, trainColor, trainLine()}, {va, valColor, valLine()}} {
			if len(c.points) == 0 {
				continue
			}
			for _, run := range c.runs {
				l, err := plotter.NewLine(run)
				if err != nil {
					return nil, err
				}
				l.LineStyle = c.line
				p.Add(l)
			}
			sc, err := plotter.NewScatter(c.points)
			if err != nil {
				return nil, err
			}
			sc.GlyphStyle = dot(c.col)
			p.Add(sc)
		}
		offset += lastEpoch(s)
	}
	if len(best) > 0 {
		sc, err := plotter.NewScatter(best)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = bestGlyph()
		p.Add(sc)
	}
	// The y axis spans the data (clamped above; log10 of it on a log axis) with a
	// margin, or 0 to 1 when no value is finite; the boundary lines span it too.
	if ymin > ymax {
		ymin, ymax = 0, 1
	}
	if ymax-ymin < 1e-9*max(1, math.Abs(ymax)) {
		ymin, ymax = ymin-0.5, ymax+0.5
	}
	pad := (ymax - ymin) * 0.04
	ymin, ymax = ymin-pad, ymax+pad
	if logY {
		p.Y.Tick.Marker = logTicks{}
	}
	p.Y.Min, p.Y.Max = ymin, ymax
	for _, b := range out.boundaries {
		l, err := plotter.NewLine(plotter.XYs{{X: b, Y: ymin}, {X: b, Y: ymax}})
		if err != nil {
			return nil, err
		}
		l.LineStyle = boundaryLine()
		p.Add(l)
	}
	p.X.Min, p.X.Max = 0.5, float64(offset)+0.5
	p.X.Tick.Marker = epochTicks{}
	return out, nil
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

// logTicks are the ticks of an axis of log10 values: labelled with the values, at most
// about six powers of ten (every second or third decade over a wide range), unlabelled
// minor ticks between; over less than two decades 2× and 5× are labelled too. (A log
// axis drawn as log10 values on a linear one: gonum's LogScale misplaces the padding
// for a centred axis label, and its LogTicks labels every decade, which piles labels on
// top of each other over a dozen decades.)
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo <= hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil
	}
	ticks := powerTicks(math.Pow(10, lo), math.Pow(10, hi))
	for i := range ticks {
		ticks[i].Value = math.Log10(ticks[i].Value)
	}
	return ticks
}

func powerTicks(lo, hi float64) []plot.Tick {
	if !(lo > 0 && lo <= hi) || math.IsInf(hi, 0) {
		return nil
	}
	e0, e1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	step := max(1, (e1-e0+5)/6)
	var ticks []plot.Tick
	in := func(v float64) bool { return v >= lo*(1-1e-12) && v <= hi*(1+1e-12) }
	labelled := 0
	for e := e0; e <= e1; e++ {
		v := math.Pow10(e)
		if in(v) {
			t := plot.Tick{Value: v}
			if ((e%step)+step)%step == 0 {
				t.Label = formatTick(v)
				labelled++
			}
			ticks = append(ticks, t)
		}
		if step == 1 {
			for m := 2; m < 10; m++ {
				if w := float64(m) * v; in(w) {
					ticks = append(ticks, plot.Tick{Value: w})
				}
			}
		}
	}
	if labelled < 3 {
		for i, t := range ticks {
			m := t.Value / math.Pow10(int(math.Floor(math.Log10(t.Value)+1e-9)))
			if math.Abs(m-2) < 1e-9 || math.Abs(m-5) < 1e-9 {
				ticks[i].Label = formatTick(t.Value)
			}
		}
	}
	return ticks
}

// formatTick writes 0.001 to 10000 as decimals, the rest as 1e-5 or 1e+06.
func formatTick(v float64) string {
	if v >= 1e-3 && v < 1e5 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return formatLR(v)
}
