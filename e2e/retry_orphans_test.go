package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/pipeline"
)

// A retry killed (SIGKILL) at any moment leaves no job that hpctl does not know and no
// torn record: the next hpctl command settles it (its jobs cancelled, or recorded when
// every stage was queued), and the next retry picks up where it stopped. The kills are
// spread over the length of one retry, measured first; at the end one retry runs to its
// end and every earlier attempt's files are in their attempts/<n>/ directory.
func TestKilledRetriesLeaveNoOrphans(t *testing.T) {
	t.Run("slurm", func(t *testing.T) {
		testenv.RequireSlurm(t)
		killRetries(t, "slurm", 12)
	})
	t.Run("local", func(t *testing.T) { killRetries(t, "local", 12) })
}

func killRetries(t *testing.T, executor string, n int) {
	c := newCLI(t)
	for _, d := range []string{"train/a", "train/b", "val/a", "val/b"} {
		if err := os.MkdirAll(filepath.Join(c.dir, "data", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	workdir := filepath.Join(c.dir, "runs")
	spec := filepath.Join(c.dir, "spec.yaml")
	// Stage one always fails, so every retry has both stages to queue again.
	if err := os.WriteFile(spec, []byte(fmt.Sprintf(`name: rorphans
workdir: %q
executor: %s
data: {train: data/train, val: data/val}
slurm: {time: "00:10:00", cpus_per_task: 1, mem: 50M, gpus: 0}
container: {runtime: none}
stages:
  - name: one
    command: [sh, -c, "exit 1"]
  - name: two
    depends_on: [one]
    command: ["true"]
`, workdir, executor)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancelEverything(t, c, workdir, executor) })
	sub := c.submit(t, spec)
	c.waitEnded(t, sub.RunID, time.Minute)
	retry := func() *exec.Cmd {
		cmd := exec.Command(c.bin, "retry", sub.RunID)
		cmd.Env, cmd.Dir = c.env, c.dir
		return cmd
	}
	start := time.Now()
	if out, err := retry().CombinedOutput(); err != nil {
		t.Fatalf("retry: %v\n%s", err, out)
	}
	whole := time.Since(start)
	t.Logf("one retry takes %s; killing %d retries at points spread over it", whole, n)
	for i := 0; i < n; i++ {
		// Every other retry starts from a run that has ended, after status settled the
		// killed one; the others right after a kill, settling it themselves.
		if i%2 == 0 {
			c.waitEnded(t, sub.RunID, time.Minute)
		}
		cmd := retry()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i) * whole / time.Duration(n))
		cmd.Process.Kill()
		cmd.Wait()
	}
	st := c.waitEnded(t, sub.RunID, time.Minute)
	if out, err := retry().CombinedOutput(); err != nil {
		t.Fatalf("the last retry: %v\n%s", err, out)
	}
	st = c.waitEnded(t, sub.RunID, time.Minute)
	run := st.Run
	if run.Status != registry.RunSubmitted || len(run.Retrying) != 0 {
		t.Errorf("run after the last retry: status %s (%s), retrying %v", run.Status, run.Error, run.Retrying)
	}
	t.Logf("run %s: attempt %d; stage attempts: one %d, two %d", run.ID, run.Attempts(), run.Stages[0].Attempts(), run.Stages[1].Attempts())
	known := map[string]bool{}
	for _, s := range run.Stages {
		known[s.JobID] = true
		for _, p := range s.Past {
			known[p.JobID] = true
			if _, err := os.Stat(filepath.Join(run.RunDir, p.Dir, experiment.ScriptFile)); err != nil {
				t.Errorf("stage %s's attempt %d: its files are not in %s: %v", s.Name, p.Attempt, p.Dir, err)
			}
		}
		if _, err := os.Stat(experiment.ScriptPath(run.RunDir, s.Name)); err != nil {
			t.Errorf("stage %s has no job script: %v", s.Name, err)
		}
	}
	for id, dir := range jobsUnder(t, c, workdir, executor) {
		if !known[id] {
			t.Errorf("job %s (run directory %s) is known to no attempt of run %s: stages %+v", id, dir, run.ID, run.Stages)
		}
	}
	var all []pipeline.RunStatus
	c.jsonOut(t, &all, "status", "--last", "100")
	for _, s := range all {
		if s.Run.Status == registry.RunSubmitting {
			t.Errorf("run %s is still recorded as submitting after status", s.Run.ID)
		}
	}
}
