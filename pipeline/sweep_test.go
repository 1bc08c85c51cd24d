package pipeline_test

import (
	"context"
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
	"github.com/hpctl/hpctl/pipeline"
)

// newSweepFixture is newFixture's two command stages swept over n trials (seeds), with
// extra sbatch options.
func newSweepFixture(t testing.TB, n int, one, two string, extra ...string) *fixture {
	t.Helper()
	f := newFixture(t, one, two)
	seeds := make([]string, n)
	for i := range seeds {
		seeds[i] = fmt.Sprint(i)
	}
	src := string(f.spec.Source)
	if len(extra) > 0 {
		src = strings.Replace(src, "slurm:\n", "slurm:\n  extra: ["+strings.Join(extra, ", ")+"]\n", 1)
	}
	src += "sweep:\n  grid:\n    seed: [" + strings.Join(seeds, ", ") + "]\n"
	file := filepath.Join(f.dir, "sweep.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := experiment.Load(file)
	if err != nil {
		t.Fatalf("sweep spec: %v", err)
	}
	f.spec = l
	return f
}

// A 256-trial sweep of two stages is two sbatch calls, one array job per stage.
func TestSweepIsOneSbatchPerStage(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newSweepFixture(t, 256, "true", "true")
	before := f.t.Count("sbatch")
	run := f.submit(t)
	if n := f.t.Count("sbatch") - before; n != 2 {
		t.Fatalf("%d sbatch calls for a 256-trial sweep of two stages; want 2", n)
	}
	if run.Trials != 256 {
		t.Fatalf("run records %d trials", run.Trials)
	}
	for _, s := range run.Stages {
		if len(s.Arrays) != 1 || s.Arrays[0].Count != 256 || s.Arrays[0].First != 0 {
			t.Errorf("stage %s: arrays %+v; want one of 256", s.Name, s.Arrays)
		}
	}
	states, err := f.ex.Query(context.Background(), run.Stages[1].JobIDs())
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 256 {
		t.Errorf("the second stage's array has %d tasks in squeue/sacct; want 256", len(states))
	}
	// Status of all 512 tasks while the sweep runs, and again once it has ended: one
	// squeue and at most one sacct each time.
	countStatus := func(when string) pipeline.RunStatus {
		before := f.t.Counts()
		st := f.status(t, run)
		after := f.t.Counts()
		if q, a := after["squeue"]-before["squeue"], after["sacct"]-before["sacct"]; q != 1 || a > 1 {
			t.Errorf("status %s: %d squeue, %d sacct; want 1 and at most 1", when, q, a)
		}
		return st
	}
	if st := countStatus("while the sweep runs"); len(st.Trials) != 256 {
		t.Fatalf("status shows %d trials", len(st.Trials))
	}
	// Ended: cancelled rather than waited for (512 tasks on a 4-slot node take minutes).
	if err := f.ex.Cancel(context.Background(), []string{run.Stages[0].JobID, run.Stages[1].JobID}); err != nil {
		t.Fatal(err)
	}
	st := f.waitRun(t, run, "ended", func(st pipeline.RunStatus) bool { return st.State.Terminal() })
	if c := st.Stages[0].Counts; c[jobs.StateCompleted]+c[jobs.StateCancelled] != 256 {
		t.Errorf("after the end: %v", c)
	}
	countStatus("after the sweep ended")
}

// A sweep of 4 trials where trial 1's first stage fails: only trial 1's second stage is
// cancelled ("dependency failed"), the others complete; status shows each trial, counts
// per stage and the failure's log, with one squeue and at most one sacct.
func TestSweepStatus(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newSweepFixture(t, 4, `echo "trial $HPCTL_TRIAL in $HPCTL_TRIAL_DIR"; if [ "$HPCTL_TRIAL" = 1 ]; then echo "trial one fell over" >&2; exit 4; fi`, "true")
	run := f.submit(t)
	st := f.waitRun(t, run, "ended", func(st pipeline.RunStatus) bool {
		for _, tr := range st.Trials {
			for _, s := range tr.Stages {
				if !s.State.Terminal() {
					return false
				}
			}
		}
		return len(st.Trials) == 4
	})
	for _, tr := range st.Trials {
		one, two := tr.Stages[0], tr.Stages[1]
		if tr.Trial == 1 {
			if one.State != jobs.StateFailed || one.ExitCode != "4" || !strings.Contains(one.LogTail, "trial one fell over") ||
				two.State != jobs.StateCancelled || two.Reason != pipeline.ReasonDependencyFailed {
				t.Errorf("trial 1: %+v / %+v", one, two)
			}
			continue
		}
		if one.State != jobs.StateCompleted || two.State != jobs.StateCompleted || tr.Values != fmt.Sprintf("seed=%d", tr.Trial) {
			t.Errorf("trial %d (%s): %s / %s", tr.Trial, tr.Values, one.State, two.State)
		}
		if one.JobID != fmt.Sprintf("%s_%d", run.Stages[0].JobID, tr.Trial) {
			t.Errorf("trial %d's first task is %s", tr.Trial, one.JobID)
		}
		out, err := os.ReadFile(filepath.Join(run.RunDir, "logs", fmt.Sprintf("pipe-one-%s_%d.out", run.Stages[0].JobID, tr.Trial)))
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("trial %d in %s/trials/%d", tr.Trial, run.RunDir, tr.Trial)) {
			t.Errorf("trial %d's log: %q, %v", tr.Trial, out, err)
		}
	}
	if c := st.Stages[0].Counts; c[jobs.StateCompleted] != 3 || c[jobs.StateFailed] != 1 {
		t.Errorf("first stage counts %v", c)
	}
	if c := st.Stages[1].Counts; c[jobs.StateCompleted] != 3 || c[jobs.StateCancelled] != 1 {
		t.Errorf("second stage counts %v", c)
	}
	if st.State != jobs.StateFailed {
		t.Errorf("run state %s; a failed trial makes the sweep FAILED", st.State)
	}
	before := f.t.Counts()
	f.status(t, run)
	after := f.t.Counts()
	if after["squeue"]-before["squeue"] != 1 || after["sacct"]-before["sacct"] > 1 {
		t.Errorf("status of a 4-trial sweep: %d squeue, %d sacct", after["squeue"]-before["squeue"], after["sacct"]-before["sacct"])
	}
}

// A 25-trial sweep on a cluster whose MaxArraySize is 10: three arrays per stage, trials
// 0-9, 10-19 and 20-24, each trial's second stage after its own first (trial 13's first
// stage fails: only its second is cancelled), and each task runs its own trial.
func TestSweepSplitsAtMaxArraySize(t *testing.T) {
	testenv.RequireSlurm(t)
	testenv.WithMaxArraySize(t, 10)
	f := newSweepFixture(t, 25, `echo "$HPCTL_TRIAL" > "$HPCTL_TRIAL_DIR/one"; [ "$HPCTL_TRIAL" != 13 ]`,
		`test "$(cat "$HPCTL_TRIAL_DIR/one")" = "$HPCTL_TRIAL"`)
	// max_parallel: 4 must hold across the three arrays, not within each.
	file := filepath.Join(f.dir, "parallel.yaml")
	if err := os.WriteFile(file, append(f.spec.Source, "  max_parallel: 4\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := experiment.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	f.spec = l
	before := f.t.Count("sbatch")
	run := f.submit(t)
	if n := f.t.Count("sbatch") - before; n != 6 {
		t.Errorf("%d sbatch calls; want 3 arrays for each of 2 stages", n)
	}
	for _, s := range run.Stages {
		if fmt.Sprint(s.Arrays[0].First, s.Arrays[1].First, s.Arrays[2].First, s.Arrays[2].Count) != "0 10 20 5" || len(s.Arrays) != 3 {
			t.Errorf("stage %s: arrays %+v", s.Name, s.Arrays)
		}
	}
	// Each array after the previous one has ended: array c's first stage waits (afterany)
	// for both stages of array c-1, its second stage task by task for its first.
	for c := 1; c < 3; c++ {
		want := fmt.Sprintf("afterany:%s", run.Stages[0].Arrays[c-1].JobID)
		dep := scontrolDependency(t, run.Stages[0].Arrays[c].JobID)
		if !strings.Contains(dep, want) || !strings.Contains(dep, run.Stages[1].Arrays[c-1].JobID) {
			t.Errorf("array %d of the first stage: Dependency=%s; want it after both stages of array %d", c, dep, c-1)
		}
	}
	t.Cleanup(func() {
		var ids []string
		for _, s := range run.Stages {
			ids = append(ids, s.JobIDs()...)
		}
		f.ex.Cancel(context.Background(), ids)
	})
	st := f.waitRun(t, run, "ended", func(st pipeline.RunStatus) bool {
		for _, tr := range st.Trials {
			for _, s := range tr.Stages {
				if !s.State.Terminal() {
					return false
				}
			}
		}
		return len(st.Trials) == 25
	})
	for _, tr := range st.Trials {
		one, two := tr.Stages[0].State, tr.Stages[1].State
		switch {
		case tr.Trial == 13 && (one != jobs.StateFailed || two != jobs.StateCancelled):
			t.Errorf("trial 13: %s / %s; want FAILED / CANCELLED", one, two)
		case tr.Trial != 13 && (one != jobs.StateCompleted || two != jobs.StateCompleted):
			t.Errorf("trial %d: %s / %s (%s)", tr.Trial, one, two, tr.Stages[1].LogTail)
		}
	}
}

// A USR2 to one task of a sweep's array (a preemption, a time limit coming) requeues that
// task alone: its trial is marked REQUEUED and waits to run again, while the other task
// runs on untouched.
func TestSweepRequeuesOneTask(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newSweepFixture(t, 2, `trap 'echo saved; exit 99' USR2; echo "attempt $HPCTL_ATTEMPT"; sleep 120 & wait`, "true")
	src := strings.Replace(string(f.spec.Source), "requeue: false", "requeue: true", 1)
	file := filepath.Join(f.dir, "requeue.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := experiment.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	f.spec = l
	run := f.submit(t)
	array := run.Stages[0].JobID
	f.waitRun(t, run, "running", func(st pipeline.RunStatus) bool {
		return len(st.Trials) == 2 && st.Trials[0].Stages[0].State == jobs.StateRunning && st.Trials[1].Stages[0].State == jobs.StateRunning
	})
	// The command has set its trap once it printed its attempt: a signal before that
	// would test the job script's early-USR2 path instead (render's tests do).
	out1 := filepath.Join(run.RunDir, "logs", "pipe-one-"+array+"_1.out")
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if b, _ := os.ReadFile(out1); strings.Contains(string(b), "attempt 1") {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("trial 1's command did not start (%s)", out1)
		}
	}
	if out, err := exec.Command("scancel", "--batch", "--signal=USR2", array+"_1").CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	fin := filepath.Join(run.RunDir, "trials", "1", "stages", "one", ".hpctl", "finished")
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(fin)
		if m := experiment.ParseMarker(b); m["state"] == "REQUEUED" && m["exit_code"] == "99" {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := filepath.Glob(filepath.Join(run.RunDir, "logs", "*"))
			var text []string
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				text = append(text, l+":\n"+string(b))
			}
			t.Fatalf("trial 1 was not requeued; its finished marker: %q\n%s", b, strings.Join(text, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	st := f.status(t, run)
	if s := st.Trials[1].Stages[0]; s.State != jobs.StatePending && s.State != jobs.StateRunning && s.State != jobs.StateRequeued {
		t.Errorf("trial 1 after its requeue: %s (%s); want it waiting to run again", s.State, s.Reason)
	}
	if s := st.Trials[0].Stages[0]; s.State != jobs.StateRunning {
		t.Errorf("trial 0: %s (%s); the requeue of trial 1 must not touch it", s.State, s.Reason)
	}
	if _, err := os.Stat(filepath.Join(run.RunDir, "trials", "0", "stages", "one", ".hpctl", "finished")); err == nil {
		t.Error("trial 0 has a finished marker: it was stopped too")
	}
}

// scontrolDependency is a pending job's Dependency field, as Slurm holds it.
func scontrolDependency(t *testing.T, id string) string {
	t.Helper()
	out, err := exec.Command("scontrol", "show", "job", "-o", id).CombinedOutput()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v\n%s", id, err, out)
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "Dependency="); ok {
			return v
		}
	}
	return ""
}
