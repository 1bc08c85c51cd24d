package results_test

import (
	"bytes"
	"image/png"
	"slices"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/pipeline/results"
)

// TestSweepPlotSVG reads a sweep's comparison figure as the learning curves are read: in
// Liberation Sans with sans fallbacks, no text over another or off the page, a legend
// entry per top trial in leaderboard order, one score panel per swept key, a swept value
// that is no number shown as a category, and a PNG of the same figure that decodes.
func TestSweepPlotSVG(t *testing.T) {
	score := func(v float64) *num.Float { f := num.Float(v); return &f }
	trial := func(k int, lr, backbone string, best float64) results.TrialResult {
		h := history(8, 0.9-best, 1.2)
		return results.TrialResult{Trial: k, Swept: []string{lr, backbone},
			Values: "training.learning_rate=" + lr + ", model.backbone=" + backbone,
			Stages: []results.StageSummary{{Name: "finetune", History: h}},
			Score:  score(best), ScoreStage: "finetune"}
	}
	f := &results.Fetched{
		RunID:     "lrsweep-20261204-031500-ab12",
		SweepKeys: []string{"training.learning_rate", "model.backbone"},
		Trials: []results.TrialResult{
			trial(0, "0.001", "resnet50", 0.81), trial(1, "0.0001", "resnet50", 0.93),
			trial(2, "0.001", "mobilenet_v2", 0.77), trial(3, "0.0001", "mobilenet_v2", 0.88),
			trial(4, "0.00001", "efficientnet_b0", 0.9), trial(5, "0.00001", "resnet50", 0.7),
		},
	}
	pngBytes, svg, err := results.SweepPlot(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(pngBytes)); err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	fig := parseSVG(t, svg)
	checkTexts(t, fig)
	texts := fig.textStrings()
	fig.find(t, func(s string) bool { return s == "Validation accuracy, top 5 trials" }, "the title")
	// Legend: the top five by score, best first; trial 5 (0.70) is not among them.
	var legend []string
	for _, s := range texts {
		if strings.HasPrefix(s, "trial ") {
			legend = append(legend, s)
		}
	}
	if want := []string{"trial 1", "trial 4", "trial 3", "trial 0", "trial 2"}; !slices.Equal(legend, want) {
		t.Errorf("legend %q, want %q", legend, want)
	}
	// Learning rates over two decades: a log axis labelled with the rates themselves.
	fig.find(t, func(s string) bool { return s == "training.learning_rate (log scale)" }, "the log-scale axis label")
	for _, rate := range []string{"1e-5", "0.0001", "0.001"} {
		fig.find(t, func(s string) bool { return s == rate }, "the tick "+rate)
	}
	for _, key := range f.SweepKeys {
		fig.find(t, func(s string) bool { return s == "best val accuracy by "+key }, "the panel of "+key)
	}
	for _, cat := range []string{"resnet50", "mobilenet_v2", "efficientnet_b0"} {
		fig.find(t, func(s string) bool { return s == cat }, "the category "+cat)
	}
	title := fig.find(t, func(s string) bool { return strings.HasPrefix(s, "Validation accuracy") }, "the title")
	tick := fig.find(t, func(s string) bool { return s == "resnet50" }, "a tick label")
	if !title.bold || title.size <= tick.size {
		t.Errorf("title %.1fpx bold=%v, tick label %.1fpx: the title should stand out", title.size, title.bold, tick.size)
	}

	// Nothing to rank yet: no figure, no error.
	for i := range f.Trials {
		f.Trials[i].Score = nil
	}
	if p, s, err := results.SweepPlot(f); p != nil || s != nil || err != nil {
		t.Errorf("no scores: %d PNG bytes, %d SVG bytes, %v; want none", len(p), len(s), err)
	}
}
