// Package executortest is the contract every jobs.Executor must pass, run against the
// real thing (a Slurm cluster, the local machine), never a fake:
//
//   - a job runs its script, and a job submitted with DependsOn starts only after its
//     dependency ended successfully;
//   - a dependency that fails keeps the dependent job from ever running, and Query then
//     shows the dependency FAILED with its exit code and the dependent CANCELLED (or, where
//     the scheduler leaves it, PENDING with reason DependencyNeverSatisfied);
//   - Cancel stops a running job and Query shows it CANCELLED;
//   - Query resolves many ids in one go; ids it does not know are absent from its map.
//
// Scripts are tiny bash scripts. They carry #SBATCH lines (output file, small memory) that
// other executors ignore as comments.
package executortest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/jobs"
)

// Env is what the suite needs from one executor.
type Env struct {
	Executor jobs.Executor
	// Dir is a directory the executor's jobs can read and write (a shared file system
	// for a cluster). The suite writes scripts and outputs under it.
	Dir string
	// Timeout bounds how long the suite waits for a job to end (default 2 minutes).
	Timeout time.Duration
	// Poll is the interval between two Query calls while waiting (default 250 ms).
	Poll time.Duration
}

// Run runs the contract. newEnv is called once per subtest.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	t.Run("ChainCompletes", func(t *testing.T) { chainCompletes(t, setup(t, newEnv)) })
	t.Run("FailurePropagates", func(t *testing.T) { failurePropagates(t, setup(t, newEnv)) })
	t.Run("Cancel", func(t *testing.T) { cancel(t, setup(t, newEnv)) })
	t.Run("QueryMany", func(t *testing.T) { queryMany(t, setup(t, newEnv)) })
	t.Run("FindByRunDir", func(t *testing.T) { findByRunDir(t, setup(t, newEnv)) })
	t.Run("ArraysCorrelate", func(t *testing.T) { arraysCorrelate(t, setup(t, newEnv)) })
}

type suite struct {
	Env
	ctx context.Context
	// submitted are cancelled at the end, so a failing test leaves no jobs behind.
	submitted []string
}

func setup(t *testing.T, newEnv func(t *testing.T) Env) *suite {
	s := &suite{Env: newEnv(t), ctx: context.Background()}
	if s.Timeout == 0 {
		s.Timeout = 2 * time.Minute
	}
	if s.Poll == 0 {
		s.Poll = 250 * time.Millisecond
	}
	t.Cleanup(func() {
		if len(s.submitted) > 0 {
			_ = s.Executor.Cancel(context.Background(), s.submitted)
		}
	})
	return s
}

// submit writes a script running body and submits it.
func (s *suite) submit(t *testing.T, name, body string, deps ...string) string {
	t.Helper()
	return s.queue(t, name, s.script(t, name, body), nil, deps)
}

// submitArray is submit for an array job of a, each task running body with $trial set
// to the trial it runs (offset + task index).
func (s *suite) submitArray(t *testing.T, name, body string, a jobs.Array, deps ...string) string {
	t.Helper()
	body = "task=${SLURM_ARRAY_TASK_ID:-$HPCTL_ARRAY_TASK}; trial=$((task + ${HPCTL_TRIAL_OFFSET:-0}))\n" + body
	return s.queue(t, name, s.script(t, name, body), &a, deps)
}

// script writes a job script running body in the suite's directory.
func (s *suite) script(t *testing.T, name, body string) string {
	t.Helper()
	script := filepath.Join(s.Dir, name+".sh")
	text := fmt.Sprintf(`#!/bin/bash
#SBATCH --job-name=hpctl-contract-%[1]s
#SBATCH --chdir=%[2]s
#SBATCH --output=%[2]s/%[1]s-%%a.log
#SBATCH --error=%[2]s/%[1]s-%%a.log
#SBATCH --mem=32M
#SBATCH --cpus-per-task=1
#SBATCH --time=5
set -eu
cd %[2]q
%[3]s
`, name, s.Dir, body)
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func (s *suite) queue(t *testing.T, name, script string, arr *jobs.Array, deps []string) string {
	t.Helper()
	id, err := s.Executor.Submit(s.ctx, jobs.SubmitRequest{
		RunID: "contract", RunDir: s.Dir, Stage: name, Script: script,
		JobName: "hpctl-contract-" + name, DependsOn: deps, Array: arr,
	})
	if err != nil {
		t.Fatalf("submit %s: %v", name, err)
	}
	if id == "" {
		t.Fatalf("submit %s: empty job id", name)
	}
	s.submitted = append(s.submitted, id)
	return id
}

// waitFor polls Query for ids until done says so for every one, and returns the last
// answer.
func (s *suite) waitFor(t *testing.T, ids []string, what string, done func(jobs.JobState) bool) map[string]jobs.JobState {
	t.Helper()
	deadline := time.Now().Add(s.Timeout)
	for {
		got, err := s.Executor.Query(s.ctx, ids)
		if err != nil {
			t.Fatalf("query %v: %v", ids, err)
		}
		all := true
		for _, id := range ids {
			st, ok := got[id]
			if !ok || !done(st) {
				all = false
				break
			}
		}
		if all {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs %v not %s after %s: %+v", ids, what, s.Timeout, got)
		}
		time.Sleep(s.Poll)
	}
}

func terminal(st jobs.JobState) bool { return st.State.Terminal() }

func neverRuns(st jobs.JobState) bool {
	return st.State == jobs.StateCancelled ||
		(st.State == jobs.StatePending && st.Reason == "DependencyNeverSatisfied")
}

func readStamp(t *testing.T, path string) float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("job output: %v", err)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		t.Fatalf("job output %s: %v", path, err)
	}
	return f
}

func chainCompletes(t *testing.T, s *suite) {
	a := s.submit(t, "first", `sleep 1; date +%s.%N > first.end`)
	b := s.submit(t, "second", `date +%s.%N > second.start`, a)
	got := s.waitFor(t, []string{a, b}, "ended", terminal)
	for _, id := range []string{a, b} {
		if got[id].State != jobs.StateCompleted {
			t.Fatalf("job %s: %+v, want COMPLETED", id, got[id])
		}
		if got[id].ExitCode != "" && got[id].ExitCode != "0" {
			t.Fatalf("job %s: exit code %q, want 0", id, got[id].ExitCode)
		}
		if got[id].ID != id {
			t.Fatalf("job %s: state carries id %q", id, got[id].ID)
		}
	}
	end, start := readStamp(t, filepath.Join(s.Dir, "first.end")), readStamp(t, filepath.Join(s.Dir, "second.start"))
	if start < end {
		t.Fatalf("second job started at %f, before its dependency ended at %f", start, end)
	}
}

func failurePropagates(t *testing.T, s *suite) {
	a := s.submit(t, "fails", `exit 3`)
	b := s.submit(t, "dependent", `touch dependent.ran`, a)
	got := s.waitFor(t, []string{a}, "ended", terminal)
	if got[a].State != jobs.StateFailed {
		t.Fatalf("failing job: %+v, want FAILED", got[a])
	}
	if got[a].ExitCode != "" && got[a].ExitCode != "3" {
		t.Fatalf("failing job: exit code %q, want 3", got[a].ExitCode)
	}
	s.waitFor(t, []string{b}, "cancelled (or never satisfiable)", neverRuns)
	if _, err := os.Stat(filepath.Join(s.Dir, "dependent.ran")); err == nil {
		t.Fatal("the dependent job ran although its dependency failed")
	}
}

func cancel(t *testing.T, s *suite) {
	a := s.submit(t, "long", `touch long.started; sleep 120; touch long.finished`)
	s.waitFor(t, []string{a}, "running", func(st jobs.JobState) bool {
		return st.State == jobs.StateRunning || terminal(st)
	})
	if err := s.Executor.Cancel(s.ctx, []string{a}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	got := s.waitFor(t, []string{a}, "ended", terminal)
	if got[a].State != jobs.StateCancelled {
		t.Fatalf("cancelled job: %+v, want CANCELLED", got[a])
	}
	// Cancelling a job that already ended is not an error.
	if err := s.Executor.Cancel(s.ctx, []string{a}); err != nil {
		t.Fatalf("cancel of an ended job: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "long.finished")); err == nil {
		t.Fatal("the cancelled job ran to its end")
	}
}

func queryMany(t *testing.T, s *suite) {
	if got, err := s.Executor.Query(s.ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("Query(nil): %v, %v; want an empty map", got, err)
	}
	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, s.submit(t, fmt.Sprintf("many%d", i), fmt.Sprintf("exit %d", i%2)))
	}
	got := s.waitFor(t, ids, "ended", terminal)
	for i, id := range ids {
		want := jobs.StateCompleted
		if i%2 == 1 {
			want = jobs.StateFailed
		}
		if got[id].State != want {
			t.Fatalf("job %d (%s): %+v, want %s", i, id, got[id], want)
		}
	}
	// An id no executor has handed out is simply absent.
	const unknown = "987654321"
	got, err := s.Executor.Query(s.ctx, append([]string{unknown}, ids...))
	if err != nil {
		t.Fatalf("query with an unknown id: %v", err)
	}
	if _, ok := got[unknown]; ok {
		t.Fatalf("unknown id %s present: %+v", unknown, got[unknown])
	}
	if len(got) != len(ids) {
		t.Fatalf("query of %d known ids returned %d", len(ids), len(got))
	}
}

// findByRunDir: a job is found by the run directory it was submitted for, with its name,
// without its id (how an interrupted submission is settled); another directory finds
// nothing of it.
func findByRunDir(t *testing.T, s *suite) {
	f, ok := s.Executor.(jobs.Finder)
	if !ok {
		t.Skipf("%s does not implement jobs.Finder", s.Executor.Name())
	}
	id := s.submit(t, "found", "sleep 30")
	got, err := f.Find(s.ctx, []string{s.Dir})
	if err != nil {
		t.Fatal(err)
	}
	var hit *jobs.Found
	for i := range got {
		if got[i].ID == id {
			hit = &got[i]
		}
	}
	if hit == nil || hit.Name != "hpctl-contract-found" || hit.RunDir != s.Dir || hit.State == "" {
		t.Fatalf("Find(%s) = %+v; want job %s named hpctl-contract-found", s.Dir, got, id)
	}
	other, err := f.Find(s.ctx, []string{s.Dir + "-elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range other {
		if o.ID == id {
			t.Fatalf("Find of another directory found job %s", id)
		}
	}
}

// arraysCorrelate: two array jobs over trials 10..13, the second depending on the first
// task by task. Trial 11 fails in the first: only trial 11's second task never runs;
// the others complete. At most MaxParallel tasks of an array run at once, and each task
// runs the trial its index and offset name.
func arraysCorrelate(t *testing.T, s *suite) {
	a := s.submitArray(t, "frozen", `date +%s.%N > a.$trial.start; sleep 2; date +%s.%N > a.$trial.end; [ "$trial" != 11 ]`,
		jobs.Array{Count: 4, Offset: 10, MaxParallel: 2})
	b := s.submitArray(t, "finetune", `touch b.$trial.ran`, jobs.Array{Count: 4, Offset: 10}, a)
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, jobs.TaskID(a, i), jobs.TaskID(b, i))
	}
	s.waitFor(t, ids, "ended", func(st jobs.JobState) bool { return terminal(st) || neverRuns(st) })
	got := s.waitFor(t, ids, "ended", func(st jobs.JobState) bool { return terminal(st) || neverRuns(st) })
	for i := 0; i < 4; i++ {
		trial := 10 + i
		fa, fb := got[jobs.TaskID(a, i)], got[jobs.TaskID(b, i)]
		_, ranErr := os.Stat(filepath.Join(s.Dir, fmt.Sprintf("b.%d.ran", trial)))
		if trial == 11 {
			if fa.State != jobs.StateFailed || !neverRuns(fb) || ranErr == nil {
				t.Errorf("trial 11: first %+v, second %+v (ran: %v); want FAILED and never run", fa, fb, ranErr == nil)
			}
			continue
		}
		if fa.State != jobs.StateCompleted || fb.State != jobs.StateCompleted || ranErr != nil {
			t.Errorf("trial %d: first %+v, second %+v, ran %v; want both COMPLETED", trial, fa, fb, ranErr == nil)
		}
	}
	// Never more than 2 of the first array at once.
	type span struct{ start, end float64 }
	var spans []span
	for trial := 10; trial < 14; trial++ {
		spans = append(spans, span{readStamp(t, filepath.Join(s.Dir, fmt.Sprintf("a.%d.start", trial))),
			readStamp(t, filepath.Join(s.Dir, fmt.Sprintf("a.%d.end", trial)))})
	}
	for _, x := range spans {
		overlapping := 0
		for _, y := range spans {
			if y.start <= x.start && x.start < y.end {
				overlapping++
			}
		}
		if overlapping > 2 {
			t.Errorf("%d tasks ran at once; max_parallel is 2 (%+v)", overlapping, spans)
		}
	}
}
