package pipeline_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

// lines counts the lines of a file the stages' commands append to (0 when absent).
func lines(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// A run whose second stage failed (for real: its command exits 4 while a flag file
// exists) is retried: only stage two is queued again (one sbatch), in the same run
// directory, after its first attempt's files were moved to attempts/1/; stage one is
// neither rerun nor resubmitted. Then nothing is left to retry, and --stage one reruns
// stage one and its dependent.
func TestRetryRerunsOnlyTheFailedStage(t *testing.T) {
	testenv.RequireSlurm(t)
	ctx := context.Background()
	dir := t.TempDir()
	flag := filepath.Join(dir, "fail-two")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, `echo ran >> one.runs`,
		`echo ran >> two.runs; echo "attempt files" > stages/two/left; if [ -e `+flag+` ]; then echo injected >&2; exit 4; fi`)
	run := f.submit(t)
	st := f.waitRun(t, run, "ended", ended)
	if st.Stages[0].State != jobs.StateCompleted || st.Stages[1].State != jobs.StateFailed {
		t.Fatalf("first attempt: %+v", st.Stages)
	}
	oldOne, oldTwo := run.Stages[0].JobID, run.Stages[1].JobID

	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	before := f.t.Count("sbatch")
	res, err := pipeline.Retry(ctx, f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	t.Cleanup(func() { f.ex.Cancel(ctx, []string{res.Run.Stages[1].JobID}) })
	if n := f.t.Count("sbatch") - before; n != 1 {
		t.Fatalf("retry ran sbatch %d times; want 1 (stage two only)", n)
	}
	if strings.Join(res.Stages, ",") != "two" || strings.Join(res.Kept, ",") != "one" {
		t.Fatalf("retried %v, kept %v; want [two], [one]", res.Stages, res.Kept)
	}
	got, err := f.reg.Get(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	one, two := got.Stages[0], got.Stages[1]
	if got.Status != registry.RunSubmitted || got.Attempts() != 2 || len(got.Retrying) != 0 {
		t.Fatalf("recorded run: status %s, attempt %d, retrying %v", got.Status, got.Attempts(), got.Retrying)
	}
	if one.JobID != oldOne || one.Attempts() != 1 || len(one.Past) != 0 {
		t.Fatalf("stage one was touched: %+v", one)
	}
	if two.JobID == "" || two.JobID == oldTwo || two.Attempts() != 2 || len(two.Past) != 1 ||
		two.Past[0].JobID != oldTwo || two.Past[0].State != string(jobs.StateFailed) || two.Past[0].Dir != "attempts/1/stages/two" {
		t.Fatalf("stage two's record: %+v", two)
	}
	// The first attempt's files are aside, markers included; the stage started clean.
	old := filepath.Join(run.RunDir, "attempts", "1", "stages", "two")
	if m := experiment.ParseMarker(mustRead(t, filepath.Join(old, experiment.MarkerDir, experiment.FinishedMarker))); m["state"] != "FAILED" || m["job_id"] != oldTwo {
		t.Fatalf("attempt 1's finished marker: %v", m)
	}
	if _, err := os.Stat(filepath.Join(old, "left")); err != nil {
		t.Fatalf("attempt 1's files were not moved aside: %v", err)
	}

	st = f.waitRun(t, got, "ended", ended)
	if st.State != jobs.StateCompleted || st.Stages[1].Attempt != 2 || st.Stages[0].Attempt != 1 {
		t.Fatalf("after the retry: %+v", st)
	}
	if m := marker(t, got, "two", experiment.FinishedMarker); m["job_id"] != two.JobID || m["state"] != "COMPLETED" {
		t.Fatalf("attempt 2's finished marker: %v", m)
	}
	if n := lines(t, filepath.Join(run.RunDir, "one.runs")); n != 1 {
		t.Fatalf("stage one ran %d times; want once", n)
	}
	if n := lines(t, filepath.Join(run.RunDir, "two.runs")); n != 2 {
		t.Fatalf("stage two ran %d times; want twice", n)
	}

	// Nothing left to retry: refused, nothing queued.
	before = f.t.Count("sbatch")
	_, err = pipeline.Retry(ctx, f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{})
	if !errors.Is(err, pipeline.ErrNothingToRetry) || f.t.Count("sbatch") != before {
		t.Fatalf("retry of a completed run: %v (%d sbatch)", err, f.t.Count("sbatch")-before)
	}
	// --stage one reruns it and its dependent: two jobs, attempts 2 and 3.
	res, err = pipeline.Retry(ctx, f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{Stage: "one"})
	if err != nil {
		t.Fatalf("retry --stage one: %v", err)
	}
	if n := f.t.Count("sbatch") - before; n != 2 || strings.Join(res.Stages, ",") != "one,two" {
		t.Fatalf("retry --stage one: %d sbatch, stages %v", n, res.Stages)
	}
	st = f.waitRun(t, res.Run, "ended", ended)
	if st.State != jobs.StateCompleted || st.Stages[0].Attempt != 2 || st.Stages[1].Attempt != 3 || res.Run.Attempts() != 3 {
		t.Fatalf("after retry --stage one: %+v", st)
	}
	for _, d := range []string{"attempts/1/stages/one", "attempts/2/stages/two"} {
		if _, err := os.Stat(filepath.Join(run.RunDir, d, experiment.MarkerDir, experiment.FinishedMarker)); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Retry refuses, queueing nothing, a run with a stage still running, an unknown stage,
// and a stage whose dependency it would not rerun and that did not complete.
func TestRetryRefuses(t *testing.T) {
	testenv.RequireSlurm(t)
	ctx := context.Background()
	f := newFixture(t, `sleep 60`, `true`)
	run := f.submit(t)
	f.waitRun(t, run, "running", func(st pipeline.RunStatus) bool { return st.Stages[0].State == jobs.StateRunning })
	before := f.t.Count("sbatch")
	_, err := pipeline.Retry(ctx, f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{})
	if err == nil || !strings.Contains(err.Error(), "stage one is still RUNNING (job "+run.Stages[0].JobID+")") {
		t.Fatalf("retry of a running run: %v", err)
	}
	if err := f.ex.Cancel(ctx, []string{run.Stages[0].JobID, run.Stages[1].JobID}); err != nil {
		t.Fatal(err)
	}
	f.waitRun(t, run, "ended", ended)
	_, err = pipeline.Retry(ctx, f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{Stage: "three"})
	if err == nil || !strings.Contains(err.Error(), `no stage "three" (stages: one, two)`) {
		t.Fatalf("retry --stage three: %v", err)
	}
	_, err = pipeline.Retry(ctx, f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{Stage: "two"})
	if err == nil || !strings.Contains(err.Error(), "stage two depends on one, which is CANCELLED") {
		t.Fatalf("retry --stage two after one was cancelled: %v", err)
	}
	if n := f.t.Count("sbatch") - before; n != 0 {
		t.Fatalf("refused retries ran sbatch %d times", n)
	}
	if got, _ := f.reg.Get(ctx, run.ID); got.Attempts() != 1 || got.Status != registry.RunSubmitted {
		t.Fatalf("refused retries changed the record: %+v", got)
	}
}

// A retry killed right after stage one's sbatch, before it recorded the job's id, leaves
// the record "submitting" with its lock free (the kernel dropped it with the process).
// The next retry settles it first (it holds the lock the killed one left free): it finds
// that job by the run directory and cancels it (and no job of an earlier attempt), then
// queues both stages again, and the run completes.
func TestKilledRetryIsSettled(t *testing.T) {
	testenv.RequireSlurm(t)
	ctx := context.Background()
	dir := t.TempDir()
	flag := filepath.Join(dir, "fail-one")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, `if [ -e `+flag+` ]; then exit 5; fi; sleep 8`, `true`)
	run := f.submit(t)
	f.waitRun(t, run, "ended", ended)
	os.Remove(flag)

	// What that retry leaves: the record with both stages' earlier attempts and no new
	// job, and stage one's job queued.
	killed := run
	killed.Stages = append([]registry.RunStage(nil), run.Stages...)
	for i := range killed.Stages {
		s := &killed.Stages[i]
		s.Past = []registry.PastAttempt{{Attempt: 1, JobID: s.JobID, State: "FAILED", Dir: experiment.AttemptDir(1, s.Name)}}
		s.Attempt, s.JobID = 2, ""
	}
	killed.Attempt, killed.Status, killed.Retrying = 2, registry.RunSubmitting, []string{"one", "two"}
	killed.QueueingAt = time.Now().UTC()
	if err := f.reg.Put(ctx, killed); err != nil {
		t.Fatal(err)
	}
	s := killed.Stages[0]
	id, err := f.ex.Submit(ctx, jobs.SubmitRequest{RunID: run.ID, RunDir: run.RunDir, Stage: s.Name,
		Script: experiment.ScriptPath(run.RunDir, s.Name), JobName: s.JobName})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{id}
	t.Cleanup(func() { f.ex.Cancel(ctx, ids) })

	res, err := pipeline.Retry(ctx, f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{})
	if err != nil {
		t.Fatalf("retry after the killed one: %v", err)
	}
	t.Cleanup(func() { f.ex.Cancel(ctx, []string{res.Run.Stages[0].JobID, res.Run.Stages[1].JobID}) })
	st := f.waitRun(t, res.Run, "ended", ended)
	if st.State != jobs.StateCompleted {
		t.Fatalf("after the next retry: %+v", st)
	}
	// The next retry settled the killed one first: the job it had queued was cancelled
	// (recorded as stage one's attempt 2), stage two's never-queued attempt 2 kept its
	// number.
	if p := res.Run.Stages[0].Past; len(p) != 2 || p[1].JobID != id || p[1].State != string(jobs.StateCancelled) {
		t.Fatalf("stage one's past attempts: %+v; want the killed retry's job %s CANCELLED second", p, id)
	}
	states, err := f.ex.Query(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if st := states[id].State; st != jobs.StateCancelled {
		t.Fatalf("job %s of the killed retry: %s, want CANCELLED", id, st)
	}
	if one, two := res.Run.Stages[0], res.Run.Stages[1]; one.Attempts() != 3 || len(one.Past) != 2 || two.Attempts() != 2 || len(two.Past) != 1 {
		t.Fatalf("attempts after the next retry: one %+v, two %+v", one, two)
	}
}

// A sweep is refused before anything changes.
func TestRetryRefusesSweeps(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newSweepFixture(t, 2, "exit 1", "true")
	run := f.submit(t)
	_, err := pipeline.Retry(context.Background(), f.t, f.ex, f.reg, run.ID, pipeline.RetryOptions{})
	if err == nil || !strings.Contains(err.Error(), "is a sweep of 2 trials") {
		t.Fatalf("retry of a sweep: %v", err)
	}
}
