package e2e

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/results"
)

// TestSweepEndToEnd: a 2x2 sweep (fine-tune learning rate x seed) of the two-stage
// pipeline on the real cluster with the real trainer. Every trial's two stages complete;
// each trial ran with its own values; trial k's fine-tune started from trial k's own
// frozen checkpoint (SHA-256); fetch-results ranks the 4 trials by their fine-tune's best
// validation accuracy, fetches only the best trial's checkpoint, draws a plot that
// decodes, and a second fetch copies nothing.
func TestSweepEndToEnd(t *testing.T) {
	testenv.RequireSlurm(t)
	py := requirePython(t)
	c := newCLI(t)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	lrs := []string{"3.0e-3", "1.0e-4"}
	src := pipelineSpec(dir, py)
	src = strings.Replace(src, "epochs: "+fmt.Sprint(frozenEpochs), "epochs: 2", 1)
	src = strings.Replace(src, "epochs: "+fmt.Sprint(finetuneEpochs), "epochs: 2", 1)
	src += "sweep:\n  grid:\n    stages.finetune.optimizer.learning_rate: [" + strings.Join(lrs, ", ") + "]\n    seed: [1, 2]\n  max_parallel: 2\n"
	spec := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := c.submit(t, spec)
	st := c.waitEnded(t, sub.RunID, 2*pipelineTimeout)
	if st.State != jobs.StateCompleted || len(st.Trials) != 4 {
		t.Fatalf("sweep %s: %s with %d trials\n%s", sub.RunID, st.State, len(st.Trials), c.must(t, "status", sub.RunID, "--trials"))
	}
	for _, s := range st.Stages {
		if s.Counts[jobs.StateCompleted] != 4 {
			t.Errorf("stage %s: %v, want 4 COMPLETED", s.Name, s.Counts)
		}
	}

	// Each trial ran with its own values, and its fine-tune from its own frozen stage.
	scores := map[int]float64{}
	for k := 0; k < 4; k++ {
		trial := filepath.Join(sub.RunDir, "trials", fmt.Sprint(k))
		var resolved struct {
			Seed   int `json:"seed"`
			Stages []struct {
				Optimizer struct {
					LearningRate float64 `json:"learning_rate"`
				} `json:"optimizer"`
			} `json:"stages"`
		}
		readJSON(t, filepath.Join(trial, "spec.resolved.json"), &resolved)
		wantLR := map[int]float64{0: 3e-3, 1: 3e-3, 2: 1e-4, 3: 1e-4}[k]
		if resolved.Seed != 1+k%2 || resolved.Stages[1].Optimizer.LearningRate != wantLR {
			t.Errorf("trial %d's spec: seed %d, fine-tune lr %g", k, resolved.Seed, resolved.Stages[1].Optimizer.LearningRate)
		}
		var m struct {
			Seed      int `json:"seed"`
			Optimizer struct {
				LearningRate float64 `json:"learning_rate"`
			} `json:"optimizer"`
			BestValAccuracy *float64 `json:"best_val_accuracy"`
			InitCheckpoint  struct {
				Path   string `json:"path"`
				SHA256 string `json:"sha256"`
			} `json:"init_checkpoint"`
		}
		readJSON(t, filepath.Join(trial, "stages", "finetune", "metrics.json"), &m)
		if m.Seed != resolved.Seed || m.Optimizer.LearningRate != wantLR || m.BestValAccuracy == nil {
			t.Errorf("trial %d's fine-tune metrics: seed %d lr %g (want %d, %g), best %v", k, m.Seed, m.Optimizer.LearningRate, resolved.Seed, wantLR, m.BestValAccuracy)
			continue
		}
		scores[k] = *m.BestValAccuracy
		frozenBest, _ := filepath.Glob(filepath.Join(trial, "stages", "frozen", "checkpoints", "best.*"))
		if len(frozenBest) != 1 || sha256File(t, frozenBest[0]) != m.InitCheckpoint.SHA256 ||
			!strings.HasPrefix(m.InitCheckpoint.Path, "stages/frozen/checkpoints/best") {
			t.Errorf("trial %d's fine-tune started from %+v; its own frozen best is %v", k, m.InitCheckpoint, frozenBest)
		}
	}

	// The leaderboard: 4 trials in the order of their fine-tune's best val accuracy.
	local := filepath.Join(dir, "results")
	f := fetch(t, c, sub.RunID, local)
	if len(f.Trials) != 4 || f.BestTrial == nil {
		t.Fatalf("fetch: %d trials, best %v", len(f.Trials), f.BestTrial)
	}
	want := []int{0, 1, 2, 3}
	sort.SliceStable(want, func(a, b int) bool { return scores[want[a]] > scores[want[b]] })
	for _, tr := range f.Trials {
		if tr.Score == nil || float64(*tr.Score) != scores[tr.Trial] || tr.ScoreStage != "finetune" {
			t.Errorf("trial %d: score %v from %s; metrics.json says %v", tr.Trial, tr.Score, tr.ScoreStage, scores[tr.Trial])
		}
	}
	text := c.must(t, "fetch-results", sub.RunID, "--results-dir", local)
	var ranked []string
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == fmt.Sprint(len(ranked)+1) {
			ranked = append(ranked, f[1])
		}
	}
	if fmt.Sprint(ranked) != fmt.Sprint(want) {
		t.Errorf("the leaderboard ranks trials %v; their scores %v rank them %v:\n%s", ranked, scores, want, text)
	}
	if *f.BestTrial != want[0] && scores[*f.BestTrial] != scores[want[0]] {
		t.Errorf("best trial %d, want %d (scores %v)", *f.BestTrial, want[0], scores)
	}
	for k := 0; k < 4; k++ {
		ck, _ := filepath.Glob(filepath.Join(f.Dir, "trials", fmt.Sprint(k), "stages", "*", "checkpoints", "best.*"))
		if (k == *f.BestTrial) != (len(ck) == 1) {
			t.Errorf("trial %d: fetched checkpoints %v (best trial %d)", k, ck, *f.BestTrial)
		}
	}
	pf, err := os.Open(f.Plot)
	if err != nil {
		t.Fatalf("plot: %v", err)
	}
	defer pf.Close()
	if _, err := png.Decode(pf); err != nil {
		t.Errorf("plot %s does not decode: %v", f.Plot, err)
	}
	if f.PlotSVG != filepath.Join(f.Dir, results.SweepPlotSVGFile) {
		t.Errorf("svg plot %q, want %s", f.PlotSVG, filepath.Join(f.Dir, results.SweepPlotSVGFile))
	} else if b, err := os.ReadFile(f.PlotSVG); err != nil || !strings.Contains(string(b), "best val accuracy by ") {
		t.Errorf("%s: %v, or no score panel", f.PlotSVG, err)
	}
	if b, err := os.ReadFile(f.Report); err != nil || !strings.Contains(string(b), "## Leaderboard") {
		t.Errorf("report.md: %v", err)
	}
	var summary struct {
		Trials []json.RawMessage `json:"trials"`
	}
	readJSON(t, filepath.Join(f.Dir, "summary.json"), &summary)
	if len(summary.Trials) != 4 {
		t.Errorf("summary.json has %d trials", len(summary.Trials))
	}
	again := fetch(t, c, sub.RunID, local)
	if again.Transfer.Files != 0 || again.Transfer.Bytes != 0 {
		t.Errorf("second fetch of an unchanged sweep: %+v; want nothing copied", again.Transfer)
	}
}
