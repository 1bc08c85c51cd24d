package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/results"
)

// TestCompareTwoRuns trains two tiny pipelines (tinycnn on the quickstart's data) that
// differ in two spec keys, one submitted on this machine and one over ssh, and compares
// them right after they end: compare fetches them itself, names exactly the two keys,
// reports each stage's numbers as status and metrics.json give them, and writes the
// plot as PNG and SVG.
func TestCompareTwoRuns(t *testing.T) {
	testenv.RequireSlurm(t)
	sshConfig, host := testenv.RequireSSH(t)
	py := requirePython(t)
	c := newCLI(t)
	c.useSSH(sshConfig)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	short := strings.NewReplacer("epochs: 3\n", "epochs: 1\n", "epochs: 4\n", "epochs: 2\n")
	base := short.Replace(pipelineSpec(dir, py))
	other := strings.NewReplacer("learning_rate: 3.0e-3", "learning_rate: 1.0e-3", "batch_size: 16", "batch_size: 8").Replace(base)
	if other == base || !strings.Contains(base, "epochs: 1\n") {
		t.Fatal("the spec changed; this test's replacements no longer apply")
	}
	specA, specB := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	os.WriteFile(specA, []byte(base), 0o644)
	os.WriteFile(specB, []byte(other), 0o644)
	a := c.submit(t, specA)
	b := c.submit(t, specB, "--host", host)
	stA := c.waitEnded(t, a.RunID, pipelineTimeout)
	stB := c.waitEnded(t, b.RunID, pipelineTimeout, "--host", host)
	for _, st := range []struct {
		id     string
		states []jobs.State
	}{{a.RunID, []jobs.State{stA.Stages[0].State, stA.Stages[1].State}}, {b.RunID, []jobs.State{stB.Stages[0].State, stB.Stages[1].State}}} {
		if slices.ContainsFunc(st.states, func(s jobs.State) bool { return s != jobs.StateCompleted }) {
			t.Fatalf("run %s ended %v", st.id, st.states)
		}
	}

	resultsDir := filepath.Join(dir, "results")
	out, errs, code := c.run(t, "compare", a.RunID, b.RunID, "--results-dir", resultsDir)
	if code != 0 {
		t.Fatalf("compare: exit %d\n%s\n%s", code, out, errs)
	}
	t.Logf("compare:\n%s", out)
	for _, want := range []string{"stages.finetune.optimizer.learning_rate", "0.003", "0.001", "data.batch_size", "finetune best val acc", a.RunID, b.RunID} {
		if !strings.Contains(out, want) {
			t.Errorf("compare's table lacks %q", want)
		}
	}
	if strings.Count(errs, "fetching") != 2 {
		t.Errorf("compare fetched %d runs, want both:\n%s", strings.Count(errs, "fetching"), errs)
	}

	var cmp results.Compared
	plotFile := filepath.Join(dir, "plots", "lr.png")
	c.jsonOut(t, &cmp, "compare", a.RunID, b.RunID, "--results-dir", resultsDir, "--plot", plotFile)
	var keys []string
	for _, d := range cmp.Differs {
		keys = append(keys, d.Key)
	}
	if want := []string{"data.batch_size", "stages.finetune.optimizer.learning_rate"}; !slices.Equal(keys, want) {
		t.Errorf("differing keys %v, want exactly %v", keys, want)
	}
	for i, st := range [][2]float64{{float64(*stA.Stages[0].BestValAccuracy), float64(*stA.Stages[1].BestValAccuracy)}, {float64(*stB.Stages[0].BestValAccuracy), float64(*stB.Stages[1].BestValAccuracy)}} {
		r := cmp.Runs[i]
		if len(r.Stages) != 2 {
			t.Fatalf("run %s: stages %+v", r.Label, r.Stages)
		}
		for j, s := range r.Stages {
			// status reads history.csv on the cluster; compare, metrics.json of the fetched copy.
			if s.BestValAccuracy == nil || float64(*s.BestValAccuracy) != st[j] || s.FinalValAccuracy == nil || s.WallTimeSeconds == nil ||
				s.ImagesPerSecond == nil || s.EpochsRun != []int{1, 2}[j] || s.State != "COMPLETED" {
				t.Errorf("run %s stage %s: %+v (status's best val accuracy %v)", r.Label, s.Name, s, st[j])
			}
		}
	}
	if cmp.Plot != plotFile || cmp.PlotSVG != strings.TrimSuffix(plotFile, ".png")+".svg" {
		t.Errorf("plot files %q %q", cmp.Plot, cmp.PlotSVG)
	}
	for _, f := range []struct{ file, magic string }{{cmp.Plot, "\x89PNG"}, {cmp.PlotSVG, "<svg"}} {
		b, err := os.ReadFile(f.file)
		if err != nil || !bytes.Contains(b[:min(len(b), 400)], []byte(f.magic)) {
			t.Errorf("%s: %v, does not start as a %q file", f.file, err, f.magic)
		}
	}
	// The default plot is under the results folder, where the table says.
	def := filepath.Join(resultsDir, "compare", a.RunID+"_vs_"+b.RunID+".png")
	if !strings.Contains(out, def) {
		t.Errorf("compare's table does not name the plot %s", def)
	}
	if _, err := os.Stat(strings.TrimSuffix(def, ".png") + ".svg"); err != nil {
		t.Error(err)
	}
	raw, _ := json.Marshal(cmp)
	t.Logf("compare -o json: %s", raw)
}
