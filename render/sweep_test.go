package render

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/golden"
	"github.com/hpctl/hpctl/transport"
)

// A sweep renders one job script per stage (an array job serving every trial), the trial
// table, and each trial's resolved spec with its own values.
func TestSweepRender(t *testing.T) {
	l := parse(t, "../configs/urban-sweep.yaml")
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	p := planOf(t, l, "/home/u", "/home/u")
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]transport.File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	var table struct {
		MaxParallel int `json:"max_parallel"`
		Trials      []struct {
			Trial  int            `json:"trial"`
			Dir    string         `json:"dir"`
			Values map[string]any `json:"values"`
		} `json:"trials"`
	}
	if err := json.Unmarshal(byPath[experiment.TrialTable].Data, &table); err != nil {
		t.Fatalf("trials.json: %v", err)
	}
	if len(table.Trials) != 12 || table.MaxParallel != 4 {
		t.Fatalf("trials.json: %d trials, max_parallel %d; want 12 and 4", len(table.Trials), table.MaxParallel)
	}
	seen := map[string]bool{}
	for k, row := range table.Trials {
		if row.Trial != k || row.Dir != fmt.Sprintf("trials/%d", k) {
			t.Errorf("row %d: %+v", k, row)
		}
		var r struct {
			Seed   int `json:"seed"`
			Stages []struct {
				Name           string `json:"name"`
				UnfreezeLayers int    `json:"unfreeze_layers"`
				Optimizer      struct {
					LearningRate float64 `json:"learning_rate"`
				} `json:"optimizer"`
				Paths experiment.StagePaths `json:"paths"`
			} `json:"stages"`
		}
		if err := json.Unmarshal(byPath[row.Dir+"/spec.resolved.json"].Data, &r); err != nil {
			t.Fatalf("trial %d's resolved spec: %v", k, err)
		}
		ft := r.Stages[1]
		unfreeze := map[string]int{"all": -1, "30": 30}[fmt.Sprint(row.Values["stages.finetune.unfreeze"])]
		if float64(r.Seed) != row.Values["seed"] || ft.Optimizer.LearningRate != row.Values["stages.finetune.optimizer.learning_rate"] || ft.UnfreezeLayers != unfreeze {
			t.Errorf("trial %d runs seed %d, lr %g, unfreeze %d; the table says %v", k, r.Seed, ft.Optimizer.LearningRate, ft.UnfreezeLayers, row.Values)
		}
		if ft.Paths != experiment.PathsOf("finetune") {
			t.Errorf("trial %d: paths %+v are not relative to its own directory", k, ft.Paths)
		}
		seen[fmt.Sprint(row.Values)] = true
	}
	if len(seen) != 12 {
		t.Errorf("%d distinct trials, want 12", len(seen))
	}
	for _, st := range p.Stages {
		s := byPath[st.Paths.Script].Data
		golden.RequireEqual(t, "sweep-"+st.Name, s)
		lint(t, "sweep-"+st.Name, s)
	}
}

// The array script runs the trial its task and offset name, with that trial's
// directory: markers, HPCTL_TRIAL and HPCTL_TRIAL_DIR; a task that is not a number is
// refused before anything runs.
func TestSweepScriptRunsItsTrial(t *testing.T) {
	dir := t.TempDir()
	src := fmt.Sprintf(`name: sw
workdir: %s
data: {train: /d/t, val: /d/v}
container: {runtime: none}
stages:
  - name: s
    command: [sh, -c, 'echo "$HPCTL_TRIAL $PWD" > "$HPCTL_TRIAL_DIR/out"']
sweep:
  grid: {seed: [1, 2, 3, 4, 5]}
`, dir)
	l, err := experiment.Parse("sw.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	p := planOf(t, l, "/home/u", dir)
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(files, p.RunDir); err != nil {
		t.Fatal(err)
	}
	run := func(task, offset string) (string, error) {
		cmd := exec.Command("bash", filepath.Join(p.RunDir, p.Stages[0].Paths.Script))
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "SLURM_ARRAY_TASK_ID=" + task, "HPCTL_TRIAL_OFFSET=" + offset,
			"SLURM_ARRAY_JOB_ID=77", "SLURM_JOB_ID=80"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("1", "2"); err != nil {
		t.Fatalf("task 1 + offset 2: %v\n%s", err, out)
	}
	trial := filepath.Join(p.RunDir, "trials", "3")
	if b, err := os.ReadFile(filepath.Join(trial, "out")); err != nil || string(b) != "3 "+p.RunDir+"\n" {
		t.Errorf("the command saw %q (%v); want trial 3, run from the run directory", b, err)
	}
	fin, err := os.ReadFile(filepath.Join(trial, "stages", "s", ".hpctl", "finished"))
	if m := experiment.ParseMarker(fin); err != nil || m["exit_code"] != "0" || m["job_id"] != "77_1" {
		t.Errorf("trial 3's finished marker: %q (%v)", fin, err)
	}
	for _, k := range []string{"0", "1", "2", "4"} {
		if _, err := os.Stat(filepath.Join(p.RunDir, "trials", k, "out")); err == nil {
			t.Errorf("trial %s ran too", k)
		}
	}
	for _, bad := range [][2]string{{"1;reboot", "0"}, {"a[$(touch /tmp/x)]", "0"}, {"1", "-1"}} {
		out, err := run(bad[0], bad[1])
		if err == nil || !strings.Contains(out, "runs as an array task of a sweep") {
			t.Errorf("task %q offset %q: %v\n%s", bad[0], bad[1], err, out)
		}
	}
}
