package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
)

// TestStatusOfARequeuedStage: the trainer's frozen stage gets USR2 (as before a time
// limit or a preemption) after a few epochs; it saves its state and the job is requeued.
// While it waits to start again, status says "requeued, resumes at epoch N+1" (N the
// epochs history.csv holds) and, with RUN, its attempt; once it runs again, its live line
// shows attempt 2.
func TestStatusOfARequeuedStage(t *testing.T) {
	testenv.RequireSlurm(t)
	py := requirePython(t)
	c := newCLI(t)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	spec := strings.Replace(pipelineSpec(dir, py), fmt.Sprintf("epochs: %d\n", frozenEpochs), "epochs: 5000\n", 1)
	spec = strings.Replace(spec, "  mem: 3000M\n", "  mem: 3000M\n  requeue: true\n", 1)
	file := filepath.Join(dir, "requeue.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := c.submit(t, file)
	frozen := sub.Jobs[0].JobID
	history := filepath.Join(experiment.StageDir(sub.RunDir, "frozen"), experiment.HistoryFile)
	for deadline := time.Now().Add(watchTimeout); ; time.Sleep(time.Second) {
		if b, _ := os.ReadFile(history); strings.Count(string(b), "\n") >= 3 { // the header and two epochs
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two epochs in %s after %s", history, watchTimeout)
		}
	}
	if out, err := exec.Command("scancel", "--batch", "--signal=USR2", frozen).CombinedOutput(); err != nil {
		t.Fatalf("scancel --signal=USR2 %s: %v\n%s", frozen, err, out)
	}
	var waited, resumed bool
	for deadline := time.Now().Add(3 * time.Minute); !(waited && resumed); time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after USR2: seen waiting %v, seen running again %v; status:\n%s", waited, resumed, c.must(t, "status", sub.RunID))
		}
		st := c.status(t, sub.RunID)
		s := st.Stages[0]
		switch {
		case s.State.Waiting() && s.JobAttempt == 2:
			want := fmt.Sprintf("requeued, resumes at epoch %d", s.Epoch+1)
			if s.ResumeEpoch != s.Epoch+1 || s.Explanation != want || s.Epoch < 2 {
				t.Fatalf("requeued frozen stage: resume epoch %d, explanation %q after %d epochs (Slurm: %s %s)", s.ResumeEpoch, s.Explanation, s.Epoch, s.State, s.Reason)
			}
			if !waited {
				out := c.must(t, "status", sub.RunID)
				t.Logf("waiting (Slurm: %s %s):\n%s", s.State, s.Reason, out)
				if !strings.Contains(out, want) || !strings.Contains(out, fmt.Sprintf("frozen: requeued (attempt 2), resumes at epoch %d", s.Epoch+1)) {
					t.Errorf("status %s while frozen waits to resume:\n%s", sub.RunID, out)
				}
			}
			waited = true
		case s.State == jobs.StateRunning && s.JobAttempt == 2 && waited:
			out := c.must(t, "status", sub.RunID)
			if !strings.Contains(out, "attempt 2 (requeued 1×)") {
				t.Errorf("status %s once frozen runs again:\n%s", sub.RunID, out)
			}
			t.Logf("running again:\n%s", out)
			resumed = true
		case s.State.Terminal():
			t.Fatalf("frozen ended: %s (%s)\n%s", s.State, s.Reason, c.stageLogs(t, sub.RunID, st))
		}
	}
}
