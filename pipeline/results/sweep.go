package results

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/color"
	"math"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/transport"
)

// SweepPlotFile is a sweep's comparison plot, SweepPlotSVGFile the same figure as SVG.
const (
	SweepPlotFile    = "sweep.png"
	SweepPlotSVGFile = "sweep.svg"
)

// TrialResult is one trial of a fetched sweep.
type TrialResult struct {
	Trial int `json:"trial"`
	// Values are the trial's swept values, "seed=1, stages.finetune.unfreeze=30".
	Values string `json:"values"`
	// Swept are the values alone, one per key of Fetched.SweepKeys ("" where unset).
	Swept  []string       `json:"swept"`
	Stages []StageSummary `json:"stages"`
	// Score is the best validation accuracy of the trial's last stage that has one: what
	// the leaderboard ranks by.
	Score *num.Float `json:"score,omitempty"`
	// ScoreStage is the stage Score comes from.
	ScoreStage string `json:"score_stage,omitempty"`
}

// sweepExcludes: every trial's checkpoints and resume state stay on the cluster unless
// AllCheckpoints; the best trial's best checkpoint is fetched by a second pull.
func (o Options) sweepExcludes() []string {
	every := experiment.PathsOf("*")
	ex := []string{experiment.TrainerDir + "/"}
	if !o.AllCheckpoints {
		trials := path.Join(experiment.TrialsDir, "*")
		ex = append(ex, path.Join(trials, every.Checkpoints)+"/", path.Join(trials, every.State)+"/")
	}
	return ex
}

// fetchSweep is FetchResults for a sweep: every trial's history, metrics, evaluation and
// logs, then the best trial's best checkpoint (unless NoCheckpoints; every trial's
// checkpoints with AllCheckpoints), then summary.json with every trial, the leaderboard
// in report.md and the comparison plot.
func fetchSweep(ctx context.Context, tr transport.Transport, run registry.Run, dir string, opts Options) (*Fetched, error) {
	st, err := tr.Pull(ctx, run.RunDir, dir, transport.PullOptions{
		Exclude: opts.sweepExcludes(), Progress: opts.Progress, BWLimit: opts.BWLimit,
	})
	if err != nil {
		if errors.Is(err, errkind.ErrNotFound) {
			return nil, fmt.Errorf("fetch %s: run directory %s is not on the cluster (removed, or a different cluster?): %w", run.ID, run.RunDir, err)
		}
		return nil, fmt.Errorf("fetch %s: %w", run.ID, err)
	}
	f, err := SummarizeSweep(dir, run)
	if err != nil {
		return nil, err
	}
	if f.BestTrial != nil && !opts.NoCheckpoints && !opts.AllCheckpoints {
		best := f.Trials[*f.BestTrial]
		rel := path.Join(experiment.TrialDir(best.Trial), experiment.PathsOf(best.ScoreStage).Checkpoints)
		more, err := tr.Pull(ctx, path.Join(run.RunDir, rel), filepath.Join(dir, filepath.FromSlash(rel)), transport.PullOptions{
			Exclude: []string{experiment.FinalCheckpoint + ".*"}, Progress: opts.Progress, BWLimit: opts.BWLimit,
		})
		if err != nil && !errors.Is(err, errkind.ErrNotFound) {
			return nil, fmt.Errorf("fetch %s: the best trial's checkpoint: %w", run.ID, err)
		}
		st.Files += more.Files
		st.Bytes += more.Bytes
		st.Checked += more.Checked
	}
	f.Transfer = st
	if err := f.write(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// SummarizeSweep reads a fetched sweep: every trial's stages, as Summarize reads a run's,
// ranked by score (best first; trials without one last, in trial order).
func SummarizeSweep(dir string, run registry.Run) (*Fetched, error) {
	f := &Fetched{RunID: run.ID, SpecName: run.SpecName, Host: run.Host, Dir: dir, SweepKeys: run.SweepKeys}
	for k := 0; k < run.Trials; k++ {
		trial, _ := run.Trial(k)
		tf, err := Summarize(filepath.Join(dir, filepath.FromSlash(experiment.TrialDir(k))), trial)
		if err != nil {
			return nil, err
		}
		if f.FetchedAt.IsZero() {
			f.FetchedAt = tf.FetchedAt
		}
		t := TrialResult{Trial: k, Values: run.TrialLabel(k), Stages: tf.Stages}
		if k < len(run.TrialValues) {
			t.Swept = run.TrialValues[k]
		}
		for i := len(t.Stages) - 1; i >= 0; i-- {
			if v := t.Stages[i].BestValAccuracy; v != nil && v.Finite() {
				t.Score, t.ScoreStage = v, t.Stages[i].Name
				break
			}
		}
		f.Trials = append(f.Trials, t)
	}
	order := Leaderboard(f.Trials)
	if len(order) > 0 && f.Trials[order[0]].Score != nil {
		best := order[0]
		f.BestTrial = &best
	}
	return f, nil
}

// Leaderboard is the trials' indices, best score first; trials without a score come
// last, in trial order.
func Leaderboard(trials []TrialResult) []int {
	order := make([]int, len(trials))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		sa, sb := trials[order[a]].Score, trials[order[b]].Score
		switch {
		case sa == nil || sb == nil:
			return sa != nil && sb == nil
		default:
			return float64(*sa) > float64(*sb)
		}
	})
	return order
}

// sweepReport is report.md for a sweep: the leaderboard, the plot, where the files are.
func sweepReport(f *Fetched) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: a sweep of %d trials\n\n", f.RunID, len(f.Trials))
	where := "this machine"
	if f.Host != "" {
		where = "`" + f.Host + "`"
	}
	fmt.Fprintf(&b, "Spec `%s`, fetched from %s at %s UTC. Swept: %s.\n\n", f.SpecName, where,
		f.FetchedAt.Format("2006-01-02 15:04:05"), md(strings.Join(f.SweepKeys, ", ")))
	b.WriteString("## Leaderboard\n\nRanked by the best validation accuracy of each trial's last stage.\n\n")
	b.WriteString(LeaderboardMarkdown(f))
	if f.BestTrial != nil {
		t := f.Trials[*f.BestTrial]
		fmt.Fprintf(&b, "\nBest: trial %d (%s), %s val accuracy %s; its best checkpoint is in `%s/`.\n",
			t.Trial, md(t.Values), md(t.ScoreStage), Float(t.Score, 4),
			path.Join(experiment.TrialDir(t.Trial), experiment.PathsOf(t.ScoreStage).Checkpoints))
	}
	if f.Plot != "" {
		fmt.Fprintf(&b, "\n## Comparison\n\n![Validation accuracy of the top trials, and the best accuracy against each swept value](%s)\n", SweepPlotFile)
		if f.PlotSVG != "" {
			fmt.Fprintf(&b, "\nThe same figure as SVG: [%s](%s).\n", SweepPlotSVGFile, SweepPlotSVGFile)
		}
	}
	b.WriteString("\nEach trial's files are in `trials/<trial>/` (history, metrics, evaluation per stage); `summary.json` holds every trial.\n")
	return b.String()
}

// LeaderboardMarkdown is the leaderboard as a Markdown table: rank, trial, values, and
// per stage the best validation accuracy and loss, epochs and wall time.
func LeaderboardMarkdown(f *Fetched) string {
	var b strings.Builder
	var stages []string
	if len(f.Trials) > 0 {
		for _, s := range f.Trials[0].Stages {
			stages = append(stages, s.Name)
		}
	}
	b.WriteString("| rank | trial | values | state |")
	for _, s := range stages {
		fmt.Fprintf(&b, " %s best val acc | %s best val loss | %s epochs | %s wall time |", md(s), md(s), md(s), md(s))
	}
	b.WriteString("\n|---|---|---|---|" + strings.Repeat("---|---|---|---|", len(stages)) + "\n")
	for rank, i := range Leaderboard(f.Trials) {
		t := f.Trials[i]
		fmt.Fprintf(&b, "| %d | %d | %s | %s |", rank+1, t.Trial, md(t.Values), trialState(t))
		for j := range stages {
			if j >= len(t.Stages) {
				b.WriteString(" | | | |")
				continue
			}
			s := t.Stages[j]
			fmt.Fprintf(&b, " %s | %s | %s | %s |", Float(s.BestValAccuracy, 4), Float(s.BestValLoss, 4), Epochs(s), Duration(s.WallTimeSeconds))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// trialState is the first stage state that is not COMPLETED, else COMPLETED.
func trialState(t TrialResult) string {
	for _, s := range t.Stages {
		if s.State != "COMPLETED" {
			return string(s.State)
		}
	}
	return "COMPLETED"
}

// topCurves is how many trials the comparison plot draws curves for.
const topCurves = 5

// SweepPlot draws the comparison: the validation accuracy per epoch of the top trials'
// scored stage, and for each swept key the trials' scores against its values (numbers on
// a number axis, anything else as categories), as PNG and SVG. Both nil when no trial has
// a score yet.
func SweepPlot(f *Fetched) (png, svg []byte, err error) {
	order := Leaderboard(f.Trials)
	if len(order) == 0 || f.Trials[order[0]].Score == nil {
		return nil, nil, nil
	}
	top := plot.New()
	sansFonts(top)
	top.Title.Text = fmt.Sprintf("Validation accuracy, top %d trials", min(topCurves, len(order)))
	top.X.Label.Text = "epoch"
	top.Y.Label.Text = "val accuracy"
	top.Legend.Top = false
	for n, i := range order {
		t := f.Trials[i]
		if n >= topCurves || t.Score == nil {
			break
		}
		var pts plotter.XYs
		for _, s := range t.Stages {
			if s.Name != t.ScoreStage {
				continue
			}
			for _, e := range s.History {
				if e.ValAccuracy.Finite() {
					pts = append(pts, plotter.XY{X: float64(e.Epoch), Y: float64(e.ValAccuracy)})
				}
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, nil, err
		}
		l.Color = palette[n%len(palette)]
		l.Width = vg.Points(1.5)
		top.Add(l)
		top.Legend.Add(fmt.Sprintf("trial %d", t.Trial), l)
	}
	rows := [][]*plot.Plot{{top}}
	for ki, key := range f.SweepKeys {
		p, err := scorePlot(f, ki, key)
		if err != nil {
			return nil, nil, err
		}
		rows = append(rows, []*plot.Plot{p})
	}
	w, h := 8*vg.Inch, vg.Length(3.5+3*float64(len(rows)-1))*vg.Inch
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadY: vg.Millimeter * 8, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	drawRows := func(c vg.CanvasSizer) {
		cs := plot.Align(rows, tiles, draw.New(c))
		for r := range rows {
			rows[r][0].Draw(cs[r][0])
		}
	}
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(figDPI))
	drawRows(img)
	var pb, sb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return nil, nil, err
	}
	sc := vgsvg.New(w, h)
	drawRows(sc)
	if _, err := sc.WriteTo(&sb); err != nil {
		return nil, nil, err
	}
	return pb.Bytes(), svgFallbackFonts(sb.Bytes()), nil
}

// scorePlot is the trials' scores against the values of swept key ki.
func scorePlot(f *Fetched, ki int, key string) (*plot.Plot, error) {
	p := plot.New()
	sansFonts(p)
	p.Title.Text = "best val accuracy by " + key
	p.Y.Label.Text = "best val accuracy"
	p.X.Label.Text = key
	type point struct {
		value string
		score float64
	}
	var pts []point
	numeric := true
	for _, t := range f.Trials {
		if t.Score == nil || !t.Score.Finite() {
			continue
		}
		v := ""
		if ki < len(t.Swept) {
			v = t.Swept[ki]
		}
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			numeric = false
		}
		pts = append(pts, point{v, float64(*t.Score)})
	}
	var xys plotter.XYs
	if numeric {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, pt := range pts {
			x, _ := strconv.ParseFloat(pt.value, 64)
			lo, hi = math.Min(lo, x), math.Max(hi, x)
			xys = append(xys, plotter.XY{X: x, Y: pt.score})
		}
		// Learning rates and the like are swept by decades: on a linear axis all but the
		// largest crowd at its left end.
		if lo > 0 && hi/lo > 10 && !math.IsInf(hi, 0) {
			for i := range xys {
				xys[i].X = math.Log10(xys[i].X)
			}
			p.X.Tick.Marker = logTicks{}
			p.X.Label.Text = key + " (log scale)"
			pad := (math.Log10(hi) - math.Log10(lo)) * 0.04
			p.X.Min, p.X.Max = math.Log10(lo)-pad, math.Log10(hi)+pad
		}
	} else {
		var cats []string
		for _, pt := range pts {
			if !slices.Contains(cats, pt.value) {
				cats = append(cats, pt.value)
			}
		}
		for _, pt := range pts {
			xys = append(xys, plotter.XY{X: float64(slices.Index(cats, pt.value)), Y: pt.score})
		}
		p.NominalX(cats...)
	}
	s, err := plotter.NewScatter(xys)
	if err != nil {
		return nil, err
	}
	s.GlyphStyle.Color = valColor
	s.GlyphStyle.Radius = vg.Points(3)
	p.Add(s)
	return p, nil
}

var palette = []color.Color{
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}
