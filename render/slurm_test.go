package render

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/testenv"
)

// TestSlurmSubmit submits a rendered script to the real test cluster, from a run
// directory whose path holds a space and a single quote, and checks the markers and the
// job's log.
func TestSlurmSubmit(t *testing.T) {
	testenv.RequireSlurm(t)
	l := parse(t, "testdata/minimal.yaml")
	l.Spec.Workdir = filepath.Join(t.TempDir(), "it's a run dir")
	one := 1
	l.Spec.Slurm.Requeue = true
	l.Spec.Slurm.SignalBefore = 30
	l.Spec.Stages[0].Slurm.GPUs = &one // the test cluster declares gres gpu
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	p := planOf(t, l, "/nonexistent-home", "/")
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(files, p.RunDir); err != nil {
		t.Fatal(err)
	}
	st := p.Stages[0]
	out, err := exec.Command("sbatch", "--parsable", experiment.ScriptPath(p.RunDir, st.Name)).CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, out)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	t.Cleanup(func() { _ = exec.Command("scancel", id).Run() })
	t.Logf("job %s, run dir %s", id, p.RunDir)

	finishedPath := filepath.Join(experiment.StageDir(p.RunDir, st.Name), experiment.MarkerDir, experiment.FinishedMarker)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(finishedPath); err == nil {
			break
		}
		if time.Now().After(deadline) {
			q, _ := exec.Command("squeue", "-h", "-j", id, "-o", "%T %r").CombinedOutput()
			errLog, _ := os.ReadFile(experiment.LogPath(p.RunDir, st.JobName, id, "err"))
			t.Fatalf("job %s: no finished marker after 2 minutes; squeue: %s; stderr of the job:\n%s", id, q, errLog)
		}
		time.Sleep(300 * time.Millisecond)
	}
	started, finished := (&stageRun{t: t, runDir: p.RunDir}).markers(st.Name)
	if started["job_id"] != id || started["attempt"] != "1" || started["host"] == "" {
		t.Errorf("started = %v", started)
	}
	if finished["job_id"] != id || finished["state"] != "COMPLETED" || finished["exit_code"] != "0" {
		t.Errorf("finished = %v", finished)
	}
	log, err := os.ReadFile(experiment.LogPath(p.RunDir, st.JobName, id, "out"))
	if err != nil {
		t.Fatalf("job log: %v", err)
	}
	if strings.TrimSpace(string(log)) != "ok" {
		t.Errorf("job log = %q, want ok", log)
	}
}
