package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/executortest"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
)

// Integration tests of submit, status, logs, cancel and runs against the real Slurm test
// cluster (no fake sbatch). They do not run in parallel: some stop the controller.

func slurmSpec(t *testing.T, dir, one, two string) string {
	t.Helper()
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	spec := fmt.Sprintf(`name: cli
workdir: %s/runs
executor: slurm
data: {train: %s/data/train, val: %s/data/val}
slurm: {time: "00:05:00", gpus: 0, cpus_per_task: 1, mem: 64M, signal_before: 0, requeue: false}
container: {runtime: none}
stages:
  - name: one
    command: [bash, -c, %s]
  - name: two
    depends_on: [one]
    command: [bash, -c, %s]
`, dir, dir, dir, q(one), q(two))
	p := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type submitted struct {
	RunID string `json:"run_id"`
	Jobs  []struct {
		Stage string `json:"stage"`
		JobID string `json:"job_id"`
	} `json:"jobs"`
}

func submitJSON(t *testing.T, spec string) submitted {
	t.Helper()
	out, errs, code := hpctl(t, "submit", spec, "-o", "json")
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, errs)
	}
	var s submitted
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.RunID == "" || len(s.Jobs) != 2 {
		t.Fatalf("submit output %q: %v", out, err)
	}
	t.Cleanup(func() { hpctl(t, "cancel", s.RunID) })
	return s
}

func statusJSON(t *testing.T, run string) pipeline.RunStatus {
	t.Helper()
	return statusJSONWith(t, &env{}, run)
}

// statusJSONWith is statusJSON with e's dependencies.
func statusJSONWith(t *testing.T, e *env, run string) pipeline.RunStatus {
	t.Helper()
	out, errs, code := hpctlWith(t, e, "status", run, "-o", "json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	var st []pipeline.RunStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 {
		t.Fatalf("status output %q: %v", out, err)
	}
	return st[0]
}

func waitEnded(t *testing.T, run string) pipeline.RunStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := statusJSON(t, run)
		// Every stage, not only the run: a run is FAILED as soon as one stage failed,
		// while Slurm may take a moment to cancel the stage that depended on it.
		ended := st.State.Terminal()
		for _, s := range st.Stages {
			ended = ended && s.State.Terminal()
		}
		if ended {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not end: %+v", run, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestCLISubmitStatusLogsRuns(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	spec := slurmSpec(t, dir, `echo hello from one`, `echo "two broke" >&2; exit 7`)
	s := submitJSON(t, spec)
	st := waitEnded(t, s.RunID)
	if st.State != jobs.StateFailed || st.Stages[0].State != jobs.StateCompleted || st.Stages[1].ExitCode != "7" {
		t.Fatalf("status: %+v", st)
	}
	out, _, code := hpctl(t, "status", s.RunID)
	if code != 0 || !strings.Contains(out, "two broke") || !strings.Contains(out, "COMPLETED") {
		t.Fatalf("status table (exit %d):\n%s", code, out)
	}
	out, errs, code := hpctl(t, "logs", s.RunID, "--stage", "one")
	if code != 0 || out != "hello from one\n" {
		t.Fatalf("logs: exit %d, %q %s", code, out, errs)
	}
	out, _, _ = hpctl(t, "logs", s.RunID[:len(s.RunID)-2], "--err") // unique prefix; last started stage
	if out != "two broke\n" {
		t.Fatalf("logs --err: %q", out)
	}
	out, _, code = hpctl(t, "runs", "--state", "failed")
	if code != 0 || !strings.Contains(out, s.RunID) {
		t.Fatalf("runs --state failed (exit %d):\n%s", code, out)
	}
	out, _, _ = hpctl(t, "runs", "--state", "completed")
	if strings.Contains(out, s.RunID) {
		t.Fatalf("runs --state completed lists a failed run:\n%s", out)
	}
	// --watch on ended runs returns at once, with the run-failed code.
	if _, _, code := hpctl(t, "status", s.RunID, "--watch", "--interval", "1s"); code != exitRunFailed {
		t.Fatalf("status --watch of a failed run: exit %d", code)
	}
}

func TestCLICancel(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	s := submitJSON(t, slurmSpec(t, dir, `sleep 120`, `true`))
	deadline := time.Now().Add(time.Minute)
	for statusJSON(t, s.RunID).Stages[0].State != jobs.StateRunning {
		if time.Now().After(deadline) {
			t.Fatal("stage one never ran")
		}
		time.Sleep(300 * time.Millisecond)
	}
	out, errs, code := hpctl(t, "cancel", s.RunID)
	if code != 0 || !strings.Contains(out, "cancelled run "+s.RunID) {
		t.Fatalf("cancel: exit %d: %s %s", code, out, errs)
	}
	st := waitEnded(t, s.RunID)
	if st.State != jobs.StateCancelled || st.Stages[1].State != jobs.StateCancelled {
		t.Fatalf("after cancel: %+v", st)
	}
}

// TestCLIControllerDown: with slurmctld stopped, submit and status fail with exit code
// 3 and a clear message, the registry stays intact, and both work again after the
// controller is back.
func TestCLIControllerDown(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	spec := slurmSpec(t, dir, `true`, `true`)
	before := submitJSON(t, spec)
	waitEnded(t, before.RunID)

	testenv.StopController(t)
	start := time.Now()
	_, errs, code := hpctl(t, "submit", spec)
	t.Logf("submit with the controller down: exit %d after %s: %s", code, time.Since(start).Round(time.Millisecond), errs)
	if code != exitUnreachable || !strings.Contains(errs, "controller did not answer") {
		t.Fatalf("submit with the controller down: exit %d: %s", code, errs)
	}
	start = time.Now()
	_, errs, code = hpctl(t, "status", before.RunID)
	t.Logf("status with the controller down: exit %d after %s: %s", code, time.Since(start).Round(time.Millisecond), errs)
	if code != exitUnreachable || !strings.Contains(errs, "controller did not answer") {
		t.Fatalf("status with the controller down: exit %d: %s", code, errs)
	}
	// The registry is whole: integrity check passes, the earlier run is there.
	reg, err := registry.Open(context.Background(), filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(context.Background(), before.RunID); err != nil {
		t.Fatalf("earlier run lost: %v", err)
	}
	reg.Close()

	testenv.StartController(t)
	if st := statusJSON(t, before.RunID); st.State != jobs.StateCompleted {
		t.Fatalf("status after restart: %+v", st)
	}
	after := submitJSON(t, spec)
	if st := waitEnded(t, after.RunID); st.State != jobs.StateCompleted {
		t.Fatalf("run submitted after restart: %+v", st)
	}
}

// TestCLINoAccounting runs the status checks on a cluster without accounting (sacct
// fails, as on many sites): completed and failed pipelines are reported right, and a
// run whose jobs Slurm has forgotten takes its states from the marker files.
func TestCLINoAccounting(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	testenv.WithoutAccounting(t)
	if testenv.AccountingEnabled() {
		t.Fatal("accounting still enabled after slurm-up.sh --no-accounting")
	}
	good := submitJSON(t, slurmSpec(t, filepath.Join(dir, "good"), `echo ok`, `true`))
	bad := submitJSON(t, slurmSpec(t, filepath.Join(dir, "bad"), `echo "one fell over" >&2; exit 3`, `true`))
	if st := waitEnded(t, good.RunID); st.State != jobs.StateCompleted || st.Stages[1].ExitCode != "0" {
		t.Fatalf("good run without accounting: %+v", st)
	}
	st := waitEnded(t, bad.RunID)
	if st.Stages[0].State != jobs.StateFailed || st.Stages[0].ExitCode != "3" ||
		!strings.Contains(st.Stages[0].LogTail, "one fell over") || st.Stages[1].State != jobs.StateCancelled {
		t.Fatalf("failed run without accounting: %+v", st)
	}

	// Slurm forgets finished jobs after MinJobAge (5 minutes here). Rather than wait,
	// make squeue answer as it then does ("Invalid job id", its real message) through
	// the command-runner fault seam: status must still say COMPLETED / FAILED, never
	// PENDING or UNKNOWN.
	forgetful := &env{wrapTransport: func(t transport.Transport) transport.Transport {
		return &executortest.Faulty{Transport: t, Prog: "squeue", Fail: 1 << 30,
			Stderr: "slurm_load_jobs error: Invalid job id specified"}
	}}
	if st := statusJSONWith(t, forgetful, good.RunID); st.State != jobs.StateCompleted || st.Stages[0].State != jobs.StateCompleted ||
		st.Stages[0].Node == "" || st.Stages[0].Elapsed < 0 {
		t.Fatalf("forgotten good run: %+v", st)
	}
	st = statusJSONWith(t, forgetful, bad.RunID)
	if st.Stages[0].State != jobs.StateFailed || st.Stages[0].ExitCode != "3" || st.Stages[1].State != jobs.StateCancelled ||
		st.Stages[1].Reason != pipeline.ReasonDependencyFailed {
		t.Fatalf("forgotten failed run: %+v", st)
	}
}
