package results_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/pipeline/results"
	"github.com/hpctl/hpctl/transport"
)

// inject overwrites one file of a fixture's run directory.
func inject(t *testing.T, runDir, rel, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(runDir, filepath.FromSlash(rel)), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFetchDivergedRun injects a diverged history (nan, inf, -inf, ±1e308, a cell that is
// no number, a row short of columns) into the first stage and a second stage's history
// without a val_accuracy column, a metrics.json that is no JSON and an evaluation.json of
// the wrong types: the fetch succeeds, summary.json is valid JSON with null for every
// non-finite number, the plot decodes as a PNG, and the report names every problem.
func TestFetchDivergedRun(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "r-nan")
	run := fixture{frozenEpochs: 3, finetuneEpochs: 2, finetuneStarted: true, finetuneDone: true}.write(t, remote)
	inject(t, remote, "stages/frozen/history.csv", "epoch,loss,accuracy,val_loss,val_accuracy,lr\n"+
		"1,nan,0.5,inf,nan,0.001\n2,1e308,0.6,-1e308,0.61,0.001\n3,-1e308,-inf,0.5,garbage\n4,0.5,0.7\n5,NaN,NaN,NaN,NaN,NaN\n")
	inject(t, remote, "stages/frozen/metrics.json", `{"best_val_accuracy": NaN, "final_val_loss": [NaN, Infinity, -Infinity], "wall_time_s": 1e999`)
	inject(t, remote, "stages/finetune/history.csv", "epoch,loss,accuracy,val_loss\n1,0.4,0.8,0.45\n2,0.3,0.85,0.41\n")
	inject(t, remote, "stages/finetune/evaluation.json", `{"accuracy": "high", "num_images": 10, "class_names": ["a", "b"], "confusion_matrix": [[1, 2], [3, 4]]}`)
	root := t.TempDir()
	f, err := results.FetchResults(context.Background(), transport.NewLocal(), run, root, results.Options{})
	if err != nil {
		t.Fatalf("fetch of a diverged run: %v", err)
	}
	fr, ft := f.Stages[0], f.Stages[1]
	if len(fr.History) != 5 || fr.BestEpoch != 2 || results.Float(fr.BestValAccuracy, 2) != "0.61" ||
		results.Float(fr.BestValLoss, 0) != "-1.000e+308" || results.Float(fr.FinalValAccuracy, 2) != "nan" {
		t.Errorf("frozen: best %s (epoch %d) loss %s, final %s, %d rows", results.Float(fr.BestValAccuracy, 2), fr.BestEpoch,
			results.Float(fr.BestValLoss, 0), results.Float(fr.FinalValAccuracy, 2), len(fr.History))
	}
	if h := fr.History; !math.IsNaN(float64(h[0].Loss)) || !math.IsInf(float64(h[0].ValLoss), 1) || float64(h[1].Loss) != 1e308 ||
		!math.IsInf(float64(h[2].Accuracy), -1) || !math.IsNaN(float64(h[2].ValAccuracy)) || !math.IsNaN(float64(h[3].ValLoss)) {
		t.Errorf("frozen history: %+v", h)
	}
	if fr.WallTimeSeconds == nil || *fr.WallTimeSeconds != 130 { // the markers', not metrics.json's 1e999
		t.Errorf("frozen wall time %v", fr.WallTimeSeconds)
	}
	warnings := strings.Join(append(fr.Warnings, ft.Warnings...), "\n")
	for _, want := range []string{`val_accuracy "garbage"`, "short rows", "metrics.json is not valid JSON", "no val_accuracy column", `evaluation.json: json: cannot unmarshal string "high"`} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if !math.IsNaN(float64(ft.History[0].ValAccuracy)) || ft.EvalAccuracy != nil || ft.EvalImages != 10 || len(ft.ConfusionMatrix) != 2 {
		t.Errorf("finetune: %+v", ft)
	}

	b, err := os.ReadFile(filepath.Join(root, run.ID, results.SummaryFile))
	if err != nil {
		t.Fatalf("summary.json not written: %v", err)
	}
	var sum map[string]any
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary.json is not JSON: %v", err)
	}
	first := sum["stages"].([]any)[0].(map[string]any)
	if first["final_val_accuracy"] != nil || first["history"].([]any)[0].(map[string]any)["loss"] != nil {
		t.Errorf("non-finite numbers in summary.json are not null: %v", first)
	}
	if v, ok := first["history"].([]any)[1].(map[string]any)["loss"].(float64); !ok || v != 1e308 {
		t.Errorf("1e308 in summary.json: %v", first["history"])
	}
	// summary.json reads back into the Go types, nulls as NaN.
	var back results.Fetched
	if err := json.Unmarshal(b, &back); err != nil || !math.IsNaN(float64(back.Stages[0].History[0].Loss)) {
		t.Errorf("summary.json does not read back: %v", err)
	}

	p, err := os.ReadFile(f.Plot)
	if err != nil {
		t.Fatalf("no plot: %v (plot error %q)", err, f.PlotError)
	}
	if _, err := png.Decode(bytes.NewReader(p)); err != nil {
		t.Errorf("plot: %v", err)
	}
	report, _ := os.ReadFile(f.Report)
	for _, want := range []string{"| frozen | COMPLETED | 101 | 5/3 | 0.6100 (2) | -1.000e+308 | nan | nan |", "## Warnings", `garbage`, "![Accuracy"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// extremes is a history at the edges of float64 in every column and the epoch.
func extremes() []results.StageSummary {
	h := []results.Epoch{
		{Epoch: 1, Loss: 1e308, Accuracy: -1e308, ValLoss: num.Float(math.Inf(1)), ValAccuracy: num.NaN()},
		{Epoch: 2, Loss: -1e308, Accuracy: 1e308, ValLoss: math.MaxFloat64, ValAccuracy: -math.MaxFloat64},
		{Epoch: 3, Loss: 5e-324, Accuracy: 0.5, ValLoss: 1e20, ValAccuracy: 1e20},
	}
	return []results.StageSummary{{Name: "a", History: h}, {Name: "b", History: h}, {Name: "c", History: h[2:]}}
}

// TestPlotExtremeValues: ±1e308 used to send gonum's tick search into an endless loop
// (deaf to SIGINT and SIGTERM); now it draws, promptly. The context's deadline is only a
// net: a plot that returns its error has failed the test too.
func TestPlotExtremeValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fig, err := results.Plot(ctx, results.CurveInfo{RunID: "r"}, extremes())
	if err != nil {
		t.Fatalf("plot of ±1e308: %v", err)
	}
	if _, err := png.Decode(bytes.NewReader(fig.PNG)); err != nil {
		t.Fatalf("plot: %v", err)
	}
	if err := xml.Unmarshal(fig.SVG, new(struct{})); err != nil {
		t.Fatalf("svg: %v", err)
	}
	// Every value the same (a single epoch at 1e20): a range of zero width.
	one := []results.StageSummary{{Name: "a", History: []results.Epoch{{Epoch: 1, Loss: 1e20, Accuracy: 1e20, ValLoss: 1e20, ValAccuracy: 1e20}}}}
	if _, err := results.Plot(ctx, results.CurveInfo{}, one); err != nil {
		t.Errorf("plot of one epoch at 1e20: %v", err)
	}
	// Nothing finite at all in one panel.
	nan := []results.StageSummary{{Name: "a", History: []results.Epoch{{Epoch: 1, Loss: num.NaN(), Accuracy: 0.5, ValLoss: num.NaN(), ValAccuracy: 0.5}}}}
	if _, err := results.Plot(ctx, results.CurveInfo{}, nan); err != nil {
		t.Errorf("plot without a finite loss: %v", err)
	}
}

// TestFetchInterrupted: a fetch whose context is cancelled (hpctl's on SIGINT or
// SIGTERM) while it summarizes returns context.Canceled, which hpctl maps to exit 130,
// and writes no summary, report or plot.
func TestFetchInterrupted(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "r-int")
	run := fixture{frozenEpochs: 3}.write(t, remote)
	tr := cancelAfterPull{Transport: transport.NewLocal()}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	root := t.TempDir()
	_, err := results.FetchResults(ctx, tr, run, root, results.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v, want context.Canceled", err)
	}
	for _, name := range []string{results.SummaryFile, results.ReportFile, results.PlotFile, results.PlotSVGFile} {
		if exists(filepath.Join(root, run.ID, name)) {
			t.Errorf("interrupted fetch wrote %s", name)
		}
	}
	if !exists(filepath.Join(root, run.ID, "stages/frozen/history.csv")) {
		t.Error("the pull itself did not happen")
	}
}

// cancelAfterPull is the local transport whose Pull succeeds and then cancels: the
// interrupt arrives after the copy, while the summary is made.
type cancelAfterPull struct {
	transport.Transport
	cancel context.CancelFunc
}

func (c cancelAfterPull) Pull(ctx context.Context, src, dst string, o transport.PullOptions) (transport.PullStats, error) {
	st, err := c.Transport.Pull(ctx, src, dst, o)
	c.cancel()
	return st, err
}
