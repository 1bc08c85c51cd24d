package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

// asHpctl runs the test binary as hpctl (TestMain) in dir, with the test's isolated
// settings: the local executor's supervisors are this binary too.
func asHpctl(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "HPCTL_TEST_AS_MAIN=1")
	cmd.Dir = dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("hpctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// A sweep on the local executor, through the command line: status sums it up per stage
// and lists the failed trial with its log's last line; --trials and -o json carry every
// trial; logs and cancel take --trial.
func TestSweepCommands(t *testing.T) {
	dir := isolate(t)
	for _, d := range []string{"d/t/a", "d/t/b", "d/v/a", "d/v/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	spec := filepath.Join(dir, "sweep.yaml")
	os.WriteFile(spec, []byte(`name: sw
workdir: `+dir+`/runs
executor: local
data: {train: d/t, val: d/v}
model: {weights: none}
container: {runtime: none}
stages:
  - name: one
    command: [sh, -c, 'echo "one of trial $HPCTL_TRIAL"; if [ "$HPCTL_TRIAL" = 1 ]; then echo "trial one fell over" >&2; exit 3; fi']
  - name: two
    depends_on: [one]
    command: [sh, -c, 'echo "two of trial $HPCTL_TRIAL"']
sweep:
  grid:
    seed: [10, 11, 12]
  max_parallel: 2
`), 0o644)
	dry, errs, code := asHpctl(t, dir, "submit", spec, "--dry-run")
	if code != 0 || !strings.Contains(dry, "sweep: 3 trials, each stage one array job (at most 2 trials at once)") ||
		!strings.Contains(dry, "seed=11") || !strings.Contains(dry, "trials/2/spec.resolved.json") {
		t.Fatalf("submit --dry-run of a sweep: exit %d\n%s%s", code, dry, errs)
	}
	out, errs, code := asHpctl(t, dir, "submit", spec, "-o", "json")
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, errs)
	}
	var sub struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal([]byte(out), &sub); err != nil {
		t.Fatal(err)
	}
	defer asHpctl(t, dir, "cancel", sub.RunID)
	var st []pipeline.RunStatus
	deadline := time.Now().Add(time.Minute)
	for {
		out, errs, code = asHpctl(t, dir, "status", sub.RunID, "-o", "json")
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, errs)
		}
		st = nil
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		done := len(st) == 1 && len(st[0].Trials) == 3
		for _, tr := range st[0].Trials {
			for _, s := range tr.Stages {
				done = done && s.State.Terminal()
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep did not end: %s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
	r := st[0]
	if r.Trials[1].Stages[0].State != jobs.StateFailed || r.Trials[1].Stages[1].Reason != pipeline.ReasonDependencyFailed ||
		r.Trials[0].State != jobs.StateCompleted || r.Trials[2].State != jobs.StateCompleted || r.Trials[1].Values != "seed=11" {
		t.Fatalf("trials: %+v", r.Trials)
	}

	text, _, _ := asHpctl(t, dir, "status", sub.RunID, "--trials")
	for _, want := range []string{"2 COMPLETED · 1 FAILED", "2 COMPLETED · 1 CANCELLED",
		"trial 1 (seed=11) one FAILED exit 3: trial one fell over", "trial by trial", "seed=12"} {
		if !strings.Contains(text, want) {
			t.Errorf("status --trials lacks %q:\n%s", want, text)
		}
	}
	if log, errs, code := asHpctl(t, dir, "logs", sub.RunID, "--trial", "2", "--stage", "two"); code != 0 || strings.TrimSpace(log) != "two of trial 2" {
		t.Errorf("logs --trial 2 --stage two: exit %d %q %s", code, log, errs)
	}
	if _, errs, code := asHpctl(t, dir, "logs", sub.RunID); code != exitUsage || !strings.Contains(errs, "--trial") {
		t.Errorf("logs of a sweep without --trial: exit %d %s", code, errs)
	}
	if _, errs, code := asHpctl(t, dir, "logs", sub.RunID, "--trial", "3"); code != exitUsage || !strings.Contains(errs, "trials 0 to 2") {
		t.Errorf("logs --trial 3: exit %d %s", code, errs)
	}
	if out, _, _ := asHpctl(t, dir, "runs"); !strings.Contains(out, "(sweep of 3 trials)") {
		t.Errorf("runs does not say the run is a sweep:\n%s", out)
	}
	if out, errs, code := asHpctl(t, dir, "cancel", sub.RunID, "--trial", "0"); code != 0 || !strings.Contains(out, "trial 0 of run "+sub.RunID+" had already ended") {
		t.Errorf("cancel --trial 0: exit %d %q %s", code, out, errs)
	}
}
