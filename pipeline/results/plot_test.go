package results_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	stdfont "golang.org/x/image/font"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"

	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/pipeline/results"
	"github.com/hpctl/hpctl/transport"
)

// The SVG tests read the figure as a person would: where each text is and how big it
// is, where the panels are, where the lines and marks are. No golden image: the SVG is
// parsed (encoding/xml), every transform gonum writes (the page's flip, rotated axis
// labels, each text's own flip) is applied, and text boxes are measured with the
// figure's font.

// affine is an SVG transform: x' = a·x + c·y + e, y' = b·x + d·y + f.
type affine struct{ a, b, c, d, e, f float64 }

var identity = affine{a: 1, d: 1}

func (m affine) mul(n affine) affine {
	return affine{
		a: m.a*n.a + m.c*n.b, b: m.b*n.a + m.d*n.b,
		c: m.a*n.c + m.c*n.d, d: m.b*n.c + m.d*n.d,
		e: m.a*n.e + m.c*n.f + m.e, f: m.b*n.e + m.d*n.f + m.f,
	}
}

func (m affine) apply(x, y float64) (float64, float64) {
	return m.a*x + m.c*y + m.e, m.b*x + m.d*y + m.f
}

// parseTransform reads translate, scale, rotate and matrix, composed left to right.
func parseTransform(t *testing.T, s string) affine {
	m := identity
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		open, end := strings.IndexByte(s, '('), strings.IndexByte(s, ')')
		if open < 0 || end < open {
			t.Fatalf("transform %q", s)
		}
		name := strings.TrimSpace(s[:open])
		var v []float64
		for _, f := range strings.FieldsFunc(s[open+1:end], func(r rune) bool { return r == ',' || r == ' ' }) {
			x, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("transform %q: %v", s, err)
			}
			v = append(v, x)
		}
		var n affine
		switch {
		case name == "translate" && len(v) >= 1:
			n = affine{a: 1, d: 1, e: v[0]}
			if len(v) > 1 {
				n.f = v[1]
			}
		case name == "scale" && len(v) >= 1:
			n = affine{a: v[0], d: v[0]}
			if len(v) > 1 {
				n.d = v[1]
			}
		case name == "rotate" && len(v) == 1:
			sin, cos := math.Sincos(v[0] * math.Pi / 180)
			n = affine{a: cos, b: sin, c: -sin, d: cos}
		case name == "matrix" && len(v) == 6:
			n = affine{v[0], v[1], v[2], v[3], v[4], v[5]}
		default:
			t.Fatalf("transform %q", s)
		}
		m = m.mul(n)
		s = s[end+1:]
	}
	return m
}

type box struct{ x0, y0, x1, y1 float64 } // page coordinates, y down

func (b box) overlaps(o box, tol float64) bool {
	return b.x0+tol < o.x1 && o.x0+tol < b.x1 && b.y0+tol < o.y1 && o.y0+tol < b.y1
}

func (b box) String() string { return fmt.Sprintf("[%.1f,%.1f–%.1f,%.1f]", b.x0, b.y0, b.x1, b.y1) }

func boxOf(m affine, pts ...[2]float64) box {
	b := box{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, p := range pts {
		x, y := m.apply(p[0], p[1])
		b = box{math.Min(b.x0, x), math.Min(b.y0, y), math.Max(b.x1, x), math.Max(b.y1, y)}
	}
	return b
}

type svgText struct {
	text  string
	size  float64
	bold  bool
	style string
	box   box
}

type svgPath struct {
	style  string
	arcs   bool
	points [][2]float64 // page coordinates
}

func (p svgPath) stroke() string { return strings.ToLower(styleValue(p.style, "stroke")) }

func (p svgPath) box() box { return boxOf(identity, p.points...) }

type figure struct {
	width, height float64
	texts         []svgText
	paths         []svgPath
}

func styleValue(style, key string) string {
	for _, kv := range strings.Split(style, ";") {
		if k, v, ok := strings.Cut(kv, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// parseSVG reads the figure: every text with its box (measured with Liberation Sans at
// its size and weight: advance width, ascent above the baseline, descent below) and
// every path's points, both through the transforms of the groups around them.
func parseSVG(t *testing.T, b []byte) figure {
	t.Helper()
	var fig figure
	dec := xml.NewDecoder(bytes.NewReader(b))
	stack := []affine{identity}
	var cur *svgText
	var curM affine
	var curX, curY float64
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			m := stack[len(stack)-1].mul(parseTransform(t, attr(tok, "transform")))
			stack = append(stack, m)
			switch tok.Name.Local {
			case "svg":
				vb := strings.Fields(attr(tok, "viewBox"))
				if len(vb) != 4 {
					t.Fatalf("viewBox %q", attr(tok, "viewBox"))
				}
				fig.width, _ = strconv.ParseFloat(vb[2], 64)
				fig.height, _ = strconv.ParseFloat(vb[3], 64)
			case "text":
				style := attr(tok, "style")
				size, err := strconv.ParseFloat(strings.TrimSuffix(styleValue(style, "font-size"), "px"), 64)
				if err != nil {
					t.Fatalf("text font-size in %q", style)
				}
				curX, _ = strconv.ParseFloat(attr(tok, "x"), 64)
				curY, _ = strconv.ParseFloat(attr(tok, "y"), 64)
				cur, curM = &svgText{size: size, bold: styleValue(style, "font-weight") == "bold", style: style}, m
			case "path":
				fig.paths = append(fig.paths, parsePath(t, m, attr(tok, "d"), attr(tok, "style")))
			}
		case xml.CharData:
			if cur != nil {
				cur.text += string(tok)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if tok.Name.Local == "text" && cur != nil {
				f := font.Font{Typeface: "Liberation", Variant: "Sans", Size: vg.Length(cur.size)}
				if cur.bold {
					f.Weight = stdfont.WeightBold
				}
				face := font.DefaultCache.Lookup(f, f.Size)
				w, ext := float64(face.Width(cur.text)), face.Extents()
				cur.box = boxOf(curM, [2]float64{curX, curY - float64(ext.Ascent)}, [2]float64{curX + w, curY + float64(ext.Descent)})
				fig.texts = append(fig.texts, *cur)
				cur = nil
			}
		}
	}
	if fig.width == 0 || len(fig.texts) == 0 {
		t.Fatalf("no SVG figure:\n%.500s", b)
	}
	return fig
}

// parsePath reads the points of M, L and A (absolute, as gonum writes them).
func parsePath(t *testing.T, m affine, d, style string) svgPath {
	p := svgPath{style: style}
	fields := strings.FieldsFunc(d, func(r rune) bool { return r == ',' || r == ' ' })
	var nums []float64
	cmd := byte(0)
	flush := func() {
		switch cmd {
		case 'M', 'L':
			for i := 0; i+1 < len(nums); i += 2 {
				x, y := m.apply(nums[i], nums[i+1])
				p.points = append(p.points, [2]float64{x, y})
			}
		case 'A':
			p.arcs = true
			for i := 0; i+6 < len(nums); i += 7 {
				x, y := m.apply(nums[i+5], nums[i+6])
				p.points = append(p.points, [2]float64{x, y})
			}
		}
		nums = nums[:0]
	}
	for _, f := range fields {
		for f != "" {
			if c := f[0]; strings.IndexByte("MLAZ", c) >= 0 {
				flush()
				cmd, f = c, f[1:]
				continue
			}
			i := 1
			for i < len(f) && strings.IndexByte("MLAZ", f[i]) < 0 {
				i++
			}
			v, err := strconv.ParseFloat(f[:i], 64)
			if err != nil {
				t.Fatalf("path %q: %v", d, err)
			}
			nums, f = append(nums, v), f[i:]
		}
	}
	flush()
	return p
}

// panels are the data areas, top first: the extent of each panel's grid (vertical grid
// lines span a data area's height, horizontal ones its width).
func (fig figure) panels(t *testing.T) []box {
	t.Helper()
	var vert, horiz []box
	for _, p := range fig.paths {
		if p.stroke() != "#dddddd" || len(p.points) != 2 {
			continue
		}
		if b := p.box(); b.x0 == b.x1 {
			vert = append(vert, b)
		} else if b.y0 == b.y1 {
			horiz = append(horiz, b)
		}
	}
	var out []box
	for _, v := range vert {
		seen := false
		for _, o := range out {
			seen = seen || (o.y0 == v.y0 && o.y1 == v.y1)
		}
		if seen {
			continue
		}
		for _, h := range horiz {
			if h.y0 >= v.y0 && h.y0 <= v.y1 {
				out = append(out, box{h.x0, v.y0, h.x1, v.y1})
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].y0 < out[j].y0 })
	if len(out) != 2 {
		t.Fatalf("want two panels (accuracy, loss), found %v", out)
	}
	return out
}

func (fig figure) find(t *testing.T, pred func(string) bool, what string) svgText {
	t.Helper()
	for _, x := range fig.texts {
		if pred(x.text) {
			return x
		}
	}
	t.Fatalf("no text %s among %q", what, fig.textStrings())
	return svgText{}
}

func (fig figure) textStrings() []string {
	var s []string
	for _, x := range fig.texts {
		s = append(s, x.text)
	}
	return s
}

// checkLayout: checkTexts, and no stage label touches a panel's data area.
func checkLayout(t *testing.T, fig figure, stageNames []string) {
	t.Helper()
	checkTexts(t, fig)
	panels := fig.panels(t)
	for _, name := range stageNames {
		found := false
		for _, x := range fig.texts {
			if x.text != name && !(strings.HasSuffix(x.text, "…") && strings.HasPrefix(name, strings.TrimSuffix(x.text, "…"))) {
				continue
			}
			found = true
			for _, p := range panels {
				if x.box.overlaps(p, 0) {
					t.Errorf("stage label %q %v overlaps the data area %v", x.text, x.box, p)
				}
			}
		}
		if !found && len(stageNames) <= 3 {
			t.Errorf("no stage label %q among %q", name, fig.textStrings())
		}
	}
}

// checkTexts: no two texts overlap, every text is on the page and in Liberation Sans
// (with sans-serif fallbacks).
func checkTexts(t *testing.T, fig figure) {
	t.Helper()
	for i, a := range fig.texts {
		if !strings.Contains(styleValue(a.style, "font-family"), "Liberation Sans") || !strings.Contains(a.style, "sans-serif") {
			t.Errorf("text %q is in %q", a.text, styleValue(a.style, "font-family"))
		}
		if a.box.x0 < 0 || a.box.y0 < 0 || a.box.x1 > fig.width || a.box.y1 > fig.height {
			t.Errorf("text %q %v is off the %gx%g page", a.text, a.box, fig.width, fig.height)
		}
		for _, b := range fig.texts[i+1:] {
			if a.box.overlaps(b.box, 0.25) {
				t.Errorf("texts overlap: %q %v and %q %v", a.text, a.box, b.text, b.box)
			}
		}
	}
}

// tickLabels are the numbers left of a panel, at its height: its y axis's labels.
func (fig figure) tickLabels(p box) map[float64]float64 {
	out := map[float64]float64{}
	for _, x := range fig.texts {
		v, err := strconv.ParseFloat(x.text, 64)
		cy := (x.box.y0 + x.box.y1) / 2
		if err == nil && x.box.x1 <= p.x0 && cy >= p.y0-x.size && cy <= p.y1+x.size {
			out[v] = cy
		}
	}
	return out
}

// TestLearningCurvesSVG fetches a two-stage run whose loss falls from 2 to 0.004 and
// reads the SVG beside the PNG: title, axis labels, a log loss axis, each stage's kept
// checkpoint ringed on its validation curve (frozen's from metrics.json, finetune's from
// the history: the first epoch of the best val_accuracy, as the trainer's callback
// keeps it), and a layout with no text on other text or stage label on the data.
func TestLearningCurvesSVG(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "urban-rural-20261129-054012-a3f9")
	run := fixture{frozenEpochs: 5, finetuneEpochs: 4, finetuneStarted: true, finetuneDone: true}.write(t, remote)
	inject(t, remote, "spec.resolved.json", `{"name": "urban-rural", "model": {"backbone": "resnet50"}, "stages": [
  {"name": "frozen", "optimizer": {"name": "rmsprop", "learning_rate": 0.001}},
  {"name": "finetune", "optimizer": {"name": "rmsprop", "learning_rate": 1e-05}}]}`)
	inject(t, remote, "stages/frozen/history.csv", "epoch,loss,accuracy,val_loss,val_accuracy,lr\n"+
		"1,2.0,0.5,1.8,0.6,0.001\n2,1.2,0.6,1.1,0.7,0.001\n3,0.8,0.7,0.9,0.8,0.001\n4,0.6,0.75,0.85,0.8,0.001\n5,0.5,0.8,0.9,0.75,0.001\n")
	inject(t, remote, "stages/frozen/metrics.json", `{"best_epoch": 3, "best_val_accuracy": 0.8, "epochs_run": 5, "epochs": 5}`)
	inject(t, remote, "stages/finetune/history.csv", "epoch,loss,accuracy,val_loss,val_accuracy,lr\n"+
		"1,0.3,0.85,0.4,0.82,1e-05\n2,0.05,0.95,0.1,0.9,1e-05\n3,0.01,0.99,0.05,0.88,1e-05\n4,0.004,1.0,0.03,0.9,1e-05\n")
	if err := os.Remove(filepath.Join(remote, "stages/finetune/metrics.json")); err != nil {
		t.Fatal(err)
	}
	f, err := results.FetchResults(context.Background(), transport.NewLocal(), run, t.TempDir(), results.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.PlotError != "" || f.Plot != filepath.Join(f.Dir, results.PlotFile) || f.PlotSVG != filepath.Join(f.Dir, results.PlotSVGFile) {
		t.Fatalf("plot %q, svg %q, error %q", f.Plot, f.PlotSVG, f.PlotError)
	}
	if p, err := os.ReadFile(f.Plot); err != nil {
		t.Fatal(err)
	} else if _, err := png.Decode(bytes.NewReader(p)); err != nil {
		t.Fatalf("png: %v", err)
	}
	if rep, err := os.ReadFile(f.Report); err != nil || !strings.Contains(string(rep), "](learning-curves.svg)") {
		t.Errorf("report.md does not link the SVG (%v):\n%s", err, rep)
	}
	b, err := os.ReadFile(f.PlotSVG)
	if err != nil {
		t.Fatal(err)
	}
	fig := parseSVG(t, b)
	checkLayout(t, fig, []string{"frozen", "finetune"})

	title := fig.find(t, func(s string) bool { return strings.HasPrefix(s, "Learning curves") }, "title")
	if !strings.Contains(title.text, run.ID) || !title.bold || title.size < 16 {
		t.Errorf("title %q (bold %v, %gpt)", title.text, title.bold, title.size)
	}
	sub := fig.find(t, func(s string) bool { return strings.Contains(s, "backbone") }, "subtitle")
	for _, want := range []string{"backbone resnet50", "frozen: rmsprop, lr 0.001", "finetune: rmsprop, lr 1e-5"} {
		if !strings.Contains(sub.text, want) {
			t.Errorf("subtitle %q lacks %q", sub.text, want)
		}
	}
	for _, label := range []string{"accuracy", "loss (log scale)"} {
		x := fig.find(t, func(s string) bool { return s == label }, "y axis label "+label)
		if h, w := x.box.y1-x.box.y0, x.box.x1-x.box.x0; h <= w || x.size < 12 {
			t.Errorf("y axis label %q is not upright along the axis or small: %v, %gpt", label, x.box, x.size)
		}
	}
	fig.find(t, func(s string) bool { return s == "epoch (all stages)" }, "x axis label")

	panels := fig.panels(t)
	// The loss axis is logarithmic: 0.01, 0.1 and 1 are labelled, a decade apart each.
	ticks := fig.tickLabels(panels[1])
	y001, ok1 := ticks[0.01]
	y01, ok2 := ticks[0.1]
	y1, ok3 := ticks[1]
	if !ok1 || !ok2 || !ok3 {
		t.Fatalf("loss ticks %v lack 0.01, 0.1, 1", ticks)
	}
	if d1, d2 := y001-y01, y01-y1; d1 < 10 || math.Abs(d1-d2) > 0.5 {
		t.Errorf("loss ticks not a decade apart each: 0.01 at %.2f, 0.1 at %.2f, 1 at %.2f", y001, y01, y1)
	}

	// The kept checkpoints are ringed: frozen's epoch 3 and finetune's epoch 2 (epoch 7
	// of the axis), on the validation curve, in both panels; a ring in the legend too.
	for i, p := range panels {
		var val [][2]float64
		var rings []box
		for _, path := range fig.paths {
			b := path.box()
			if !b.overlaps(p, -1) {
				continue
			}
			switch {
			case path.stroke() == "#d62728" && !path.arcs:
				val = append(val, path.points...)
			case path.stroke() == "#000000" && path.arcs:
				rings = append(rings, b)
			}
		}
		sort.Slice(val, func(a, b int) bool { return val[a][0] < val[b][0] })
		if len(val) != 9 {
			t.Fatalf("panel %d: %d validation points, want 9", i, len(val))
		}
		if len(rings) != 2 {
			t.Fatalf("panel %d: %d rings, want 2", i, len(rings))
		}
		for k, epoch := range []int{3, 7} {
			cx, cy := (rings[k].x0+rings[k].x1)/2, (rings[k].y0+rings[k].y1)/2
			if pt := val[epoch-1]; math.Abs(pt[0]-cx) > 0.5 || math.Abs(pt[1]-cy) > 0.5 {
				t.Errorf("panel %d: ring %d at %.1f,%.1f, want the validation point of epoch %d at %.1f,%.1f", i, k, cx, cy, epoch, pt[0], pt[1])
			}
		}
	}
	legend := fig.find(t, func(s string) bool { return strings.Contains(s, "best epoch") }, "legend entry for the best epoch")
	inLegend := false
	for _, path := range fig.paths {
		b := path.box()
		cy := (b.y0 + b.y1) / 2
		inLegend = inLegend || (path.arcs && path.stroke() == "#000000" && b.x1 < legend.box.x0 && math.Abs(cy-(legend.box.y0+legend.box.y1)/2) < legend.size)
	}
	if !inLegend {
		t.Errorf("no ring beside the legend's %q", legend.text)
	}
	for _, want := range []string{"frozen: epoch 3", "finetune: epoch 2"} {
		fig.find(t, func(s string) bool { return strings.HasPrefix(s, want) }, want)
	}
}

// history is n epochs whose loss runs from lo to hi.
func history(n int, lo, hi float64) []results.Epoch {
	var h []results.Epoch
	for e := 1; e <= n; e++ {
		v := hi - (hi-lo)*float64(e-1)/float64(max(1, n-1))
		h = append(h, results.Epoch{Epoch: e, Loss: num.Float(v), ValLoss: num.Float(v * 1.1), Accuracy: num.Float(1 - v/2), ValAccuracy: num.Float(0.9 - v/2)})
	}
	return h
}

// TestLearningCurvesLinearLoss: a loss within one decade stays on a linear axis (tick
// spacing proportional to the values).
func TestLearningCurvesLinearLoss(t *testing.T) {
	fig, err := results.Plot(context.Background(), results.CurveInfo{RunID: "r1"}, []results.StageSummary{
		{Name: "frozen", History: history(6, 0.3, 0.8), BestEpoch: 6}, {Name: "finetune", History: history(4, 0.2, 0.28), BestEpoch: 4}})
	if err != nil {
		t.Fatal(err)
	}
	svg := parseSVG(t, fig.SVG)
	checkLayout(t, svg, []string{"frozen", "finetune"})
	svg.find(t, func(s string) bool { return s == "loss" }, "the linear loss axis label")
	ticks := svg.tickLabels(svg.panels(t)[1])
	var vs []float64
	for v := range ticks {
		vs = append(vs, v)
	}
	sort.Float64s(vs)
	if len(vs) < 3 {
		t.Fatalf("loss ticks %v", ticks)
	}
	per := (ticks[vs[0]] - ticks[vs[1]]) / (vs[1] - vs[0])
	for i := 2; i < len(vs); i++ {
		if got := (ticks[vs[0]] - ticks[vs[i]]) / (vs[i] - vs[0]); math.Abs(got-per) > 0.01*per {
			t.Errorf("loss ticks not linear: %v", ticks)
		}
	}
}

// TestLearningCurvesCrowdedStages: many short stages with long names, and a title and
// settings longer than the page: the stage names are cut short (…) where the next stage
// begins, the subtitle wraps, and still no text overlaps another or the data; names
// from the cluster's files with control characters still make valid XML.
func TestLearningCurvesCrowdedStages(t *testing.T) {
	var stages []results.StageSummary
	info := results.CurveInfo{RunID: strings.Repeat("a-very-long-run-id-", 6), Backbone: "efficientnetb0\x01<&>"}
	for i := range 7 {
		n := 1
		if i == 3 {
			n = 40
		}
		name := fmt.Sprintf("stage-%d-with-a-rather-long-name", i)
		lr := math.Pow10(-i)
		stages = append(stages, results.StageSummary{Name: name, History: history(n, 0.001, 3), BestEpoch: 1})
		info.Stages = append(info.Stages, results.StageSetting{Name: name, Optimizer: "sgd", LearningRate: &lr})
	}
	fig, err := results.Plot(context.Background(), info, stages)
	if err != nil {
		t.Fatal(err)
	}
	svg := parseSVG(t, fig.SVG)
	var names []string
	for _, s := range stages {
		names = append(names, s.Name)
	}
	checkLayout(t, svg, names)
	svg.find(t, func(s string) bool { return s == stages[3].Name }, "the long stage's whole name")
	if n := strings.Count(string(fig.SVG), "stage-6-with"); n < 1 {
		t.Errorf("the last stage's settings are not in the subtitle")
	}
}

// TestFetchTensorBoardEvents: a stage's TensorBoard event files (training.tensorboard)
// are fetched with the metrics, even with --no-checkpoints, so `tensorboard --logdir
// results/` shows the run.
func TestFetchTensorBoardEvents(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "urban-rural-20261129-054012-a3f9")
	run := fixture{frozenEpochs: 2}.write(t, remote)
	events := filepath.Join("stages", "frozen", "tensorboard", "validation", "events.out.tfevents.1764395000.node001.1.v2")
	if err := os.MkdirAll(filepath.Join(remote, filepath.Dir(events)), 0o755); err != nil {
		t.Fatal(err)
	}
	inject(t, remote, filepath.ToSlash(events), "epoch_loss")
	for _, o := range []results.Options{{}, {NoCheckpoints: true}} {
		root := t.TempDir()
		if _, err := results.FetchResults(context.Background(), transport.NewLocal(), run, root, o); err != nil {
			t.Fatal(err)
		}
		if !exists(filepath.Join(root, run.ID, events)) {
			t.Errorf("%+v: %s not fetched", o, events)
		}
	}
}

// BenchmarkPlot draws the figure (PNG and SVG) of a 20 + 10 epoch run.
//
//	go test ./pipeline/results -run '^$' -bench Plot
func BenchmarkPlot(b *testing.B) {
	st := []results.StageSummary{{Name: "frozen", History: history(20, 0.01, 3), BestEpoch: 20}, {Name: "finetune", History: history(10, 0.001, 0.5), BestEpoch: 5}}
	info := results.CurveInfo{RunID: "urban-rural-20261129-054012-a3f9", Backbone: "resnet50"}
	for b.Loop() {
		if _, err := results.Plot(context.Background(), info, st); err != nil {
			b.Fatal(err)
		}
	}
}
