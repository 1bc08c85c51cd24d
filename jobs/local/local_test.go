//go:build linux

// The executor runs only on Linux (proc_other.go refuses elsewhere; proc_other_test.go
// checks that).

package local_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/local"
)

// The test binary doubles as the supervisor: New(Options{Hpctl: os.Args[0]}) re-executes
// it as `<test binary> __local-job <record>`, exactly as hpctl is re-executed.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == local.SupervisorCommand {
		ctx, stop := local.SignalContext()
		err := local.Supervise(ctx, os.Args[2])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func newExecutor(t *testing.T, gpus []string) *local.Executor {
	t.Helper()
	e, err := local.New(local.Options{
		StateDir: filepath.Join(t.TempDir(), "local-jobs"),
		Hpctl:    os.Args[0],
		GPUs:     gpus,
		Grace:    time.Second,
		Poll:     50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// stage writes a job script for stage name under runDir; body runs under bash -eu.
func stage(t *testing.T, runDir, name, body string) jobs.SubmitRequest {
	t.Helper()
	script := experiment.ScriptPath(runDir, name)
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("set -eu\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return jobs.SubmitRequest{RunID: "run", RunDir: runDir, Stage: name, Script: script, JobName: "demo-" + name}
}

func submit(t *testing.T, e *local.Executor, req jobs.SubmitRequest, deps ...string) string {
	t.Helper()
	req.DependsOn = deps
	id, err := e.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// A failed test must not leave scripts running (a no-op for jobs that ended).
	t.Cleanup(func() {
		_ = e.Cancel(context.Background(), []string{id})
		local.WaitSupervisorExit(e, id)
	})
	return id
}

func query(t *testing.T, e *local.Executor, id string) jobs.JobState {
	t.Helper()
	m, err := e.Query(context.Background(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	s, ok := m[id]
	if !ok {
		t.Fatalf("Query does not know %s", id)
	}
	return s
}

// waitTerminal polls until every job ended and returns their states.
func waitTerminal(t *testing.T, e *local.Executor, ids ...string) map[string]jobs.JobState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := e.Query(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		done := len(m) == len(ids)
		for _, s := range m {
			done = done && s.State.Terminal()
		}
		if done {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs did not end: %+v", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// nanos reads a file holding `date +%s%N`.
func nanos(t *testing.T, path string) time.Time {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(readFile(t, path)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, n)
}

func TestDependencyRunsAfterItsDependencyCompleted(t *testing.T) {
	e := newExecutor(t, []string{})
	run := t.TempDir()
	one := submit(t, e, stage(t, run, "one", `sleep 0.5; echo out-one; echo err-one >&2; date +%s%N > one.end`))
	// Two must wait even though it is submitted while one is running (or not yet started).
	req := stage(t, run, "two", `date +%s%N > two.start
echo "id=$HPCTL_JOB_ID gpus=[$CUDA_VISIBLE_DEVICES] slurm=${SLURM_JOB_ID:-unset} pwd=$PWD"`)
	t.Setenv("SLURM_JOB_ID", "999") // as if hpctl ran inside an allocation: must not leak
	two := submit(t, e, req, one)
	if s := query(t, e, two); s.State != jobs.StatePending && s.State != jobs.StateRunning {
		t.Errorf("two right after submit: %+v", s)
	}
	states := waitTerminal(t, e, one, two)
	for _, id := range []string{one, two} {
		s := states[id]
		if s.State != jobs.StateCompleted || s.ExitCode != "0" || s.Start.IsZero() || s.End.Before(s.Start) || s.Node == "" {
			t.Errorf("%s: %+v", id, s)
		}
	}
	oneEnd, twoStart := nanos(t, filepath.Join(run, "one.end")), nanos(t, filepath.Join(run, "two.start"))
	if !twoStart.After(oneEnd) {
		t.Errorf("two started at %v, before one ended at %v", twoStart, oneEnd)
	}
	if !states[two].Start.After(states[one].End) && !states[two].Start.Equal(states[one].End) {
		t.Errorf("records: two started %v, one ended %v", states[two].Start, states[one].End)
	}
	// Logs land where Slurm's --output=logs/%x-%j.out would put them.
	if got := readFile(t, experiment.LogPath(run, "demo-one", one, "out")); got != "out-one\n" {
		t.Errorf("one's stdout = %q", got)
	}
	if got := readFile(t, experiment.LogPath(run, "demo-one", one, "err")); got != "err-one\n" {
		t.Errorf("one's stderr = %q", got)
	}
	want := fmt.Sprintf("id=%s gpus=[] slurm=unset pwd=%s\n", two, run)
	if got := readFile(t, experiment.LogPath(run, "demo-two", two, "out")); got != want {
		t.Errorf("two's stdout = %q, want %q", got, want)
	}
}

func TestFailedStageNeverStartsItsDependents(t *testing.T) {
	e := newExecutor(t, []string{})
	run := t.TempDir()
	one := submit(t, e, stage(t, run, "one", `echo boom >&2; exit 3`))
	two := submit(t, e, stage(t, run, "two", `touch two.ran`), one)
	three := submit(t, e, stage(t, run, "three", `touch three.ran`), two)
	states := waitTerminal(t, e, one, two, three)
	if s := states[one]; s.State != jobs.StateFailed || s.ExitCode != "3" || s.Reason != "NonZeroExitCode" {
		t.Errorf("one: %+v", s)
	}
	for _, id := range []string{two, three} {
		s := states[id]
		if s.State != jobs.StateCancelled || s.Reason != "DependencyNeverSatisfied" || !s.Start.IsZero() || s.ExitCode != "" {
			t.Errorf("%s: %+v", id, s)
		}
	}
	for _, f := range []string{"two.ran", "three.ran", "logs/demo-two-" + two + ".out"} {
		if exists(filepath.Join(run, f)) {
			t.Errorf("%s exists: a dependent started", f)
		}
	}
}

func TestCancelEndsTheWholeProcessGroup(t *testing.T) {
	e := newExecutor(t, []string{})
	run := t.TempDir()
	// A script that ignores SIGTERM and leaves a grandchild behind: only SIGKILL of the
	// whole group ends both.
	one := submit(t, e, stage(t, run, "one", `trap '' TERM
sleep 300 &
echo $$ > pgid
sleep 300`))
	two := submit(t, e, stage(t, run, "two", `touch two.ran`), one)
	pidFile := filepath.Join(run, "pgid")
	waitFor(t, "the script to start", func() bool { return exists(pidFile) && len(readFile(t, pidFile)) > 1 })
	pgid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(local.GroupMembers(pgid)); n < 3 {
		t.Fatalf("process group %d has %d members, want bash and two sleeps", pgid, n)
	}
	// The script may run a moment before its record says so.
	waitFor(t, "one to be RUNNING", func() bool { return query(t, e, one).State == jobs.StateRunning })
	if err := e.Cancel(context.Background(), []string{one}); err != nil {
		t.Fatal(err)
	}
	if left := local.GroupMembers(pgid); len(left) > 0 {
		t.Errorf("processes %v of group %d survived Cancel", left, pgid)
	}
	states := waitTerminal(t, e, one, two)
	if s := states[one]; s.State != jobs.StateCancelled || s.End.IsZero() {
		t.Errorf("one: %+v", s)
	}
	if s := states[two]; s.State != jobs.StateCancelled || s.Reason != "DependencyNeverSatisfied" {
		t.Errorf("two: %+v", s)
	}
	if exists(filepath.Join(run, "two.ran")) {
		t.Error("two ran after its dependency was cancelled")
	}
	// Cancelling again, or a job that ended, is not an error; an unknown job is.
	if err := e.Cancel(context.Background(), []string{one, two}); err != nil {
		t.Errorf("second cancel: %v", err)
	}
	if err := e.Cancel(context.Background(), []string{"local-19700101000000-1"}); !errors.Is(err, errkind.ErrNotFound) {
		t.Errorf("cancel of an unknown job: %v", err)
	}
}

func TestCancelPendingJobNeverStarts(t *testing.T) {
	e := newExecutor(t, []string{})
	run := t.TempDir()
	one := submit(t, e, stage(t, run, "one", `while [ ! -e go ]; do sleep 0.05; done`))
	two := submit(t, e, stage(t, run, "two", `touch two.ran`), one)
	waitFor(t, "two to wait on its dependency", func() bool {
		s := query(t, e, two)
		return s.State == jobs.StatePending && s.Reason == "Dependency"
	})
	if err := e.Cancel(context.Background(), []string{two}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	states := waitTerminal(t, e, one, two)
	if states[one].State != jobs.StateCompleted || states[two].State != jobs.StateCancelled {
		t.Errorf("states: %+v", states)
	}
	// Give a (wrongly) surviving supervisor time to start it.
	time.Sleep(200 * time.Millisecond)
	if exists(filepath.Join(run, "two.ran")) {
		t.Error("a cancelled pending job ran")
	}
}

func TestKilledSupervisorIsReportedFailed(t *testing.T) {
	e := newExecutor(t, []string{})
	run := t.TempDir()
	// The stage template's shape: a trap that passes TERM to the command it waits for.
	one := submit(t, e, stage(t, run, "one", `sleep 300 & child=$!
trap 'kill -TERM $child; exit 143' TERM
echo $$ > pgid
wait $child`))
	two := submit(t, e, stage(t, run, "two", `touch two.ran`), one)
	pidFile := filepath.Join(run, "pgid")
	waitFor(t, "the script to start", func() bool { return exists(pidFile) && len(readFile(t, pidFile)) > 1 })
	pgid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	sup := local.SupervisorPID(t, e, one)
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	states := waitTerminal(t, e, one, two)
	if s := states[one]; s.State != jobs.StateFailed || s.Reason != "supervisor died" {
		t.Errorf("one: %+v", s)
	}
	if s := states[two]; s.State != jobs.StateCancelled || s.Reason != "DependencyNeverSatisfied" {
		t.Errorf("two: %+v", s)
	}
	// The script got SIGTERM when its supervisor died (Pdeathsig) and ended its command.
	waitFor(t, "the orphaned job to end", func() bool { return len(local.GroupMembers(pgid)) == 0 })
}

func TestGPUsAreHandedOutExclusively(t *testing.T) {
	e := newExecutor(t, []string{"0", "1"})
	run := t.TempDir()
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		req := stage(t, run, name, `echo "$CUDA_VISIBLE_DEVICES" > `+name+`.gpus; while [ ! -e go ]; do sleep 0.05; done`)
		req.Resources.GPUs = 1
		ids = append(ids, submit(t, e, req))
	}
	cpu := stage(t, run, "cpu", `echo "[$CUDA_VISIBLE_DEVICES]" > cpu.gpus`)
	ids = append(ids, submit(t, e, cpu))
	// Two of the three GPU jobs run, the third waits for a free GPU as Slurm would.
	waitFor(t, "two GPU jobs to run and one to wait", func() bool {
		m, _ := e.Query(context.Background(), ids[:3])
		n := map[string]int{}
		for _, s := range m {
			n[string(s.State)+"/"+s.Reason]++
		}
		return n["RUNNING/"] == 2 && n["PENDING/Resources"] == 1
	})
	if err := os.WriteFile(filepath.Join(run, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitTerminal(t, e, ids...)
	seen := map[string]int{}
	for _, name := range []string{"a", "b", "c"} {
		seen[strings.TrimSpace(readFile(t, filepath.Join(run, name+".gpus")))]++
	}
	if seen["0"]+seen["1"] != 3 || seen["0"] == 0 || seen["1"] == 0 {
		t.Errorf("GPUs handed out: %v", seen)
	}
	if got := readFile(t, filepath.Join(run, "cpu.gpus")); got != "[]\n" {
		t.Errorf("a job without GPUs saw CUDA_VISIBLE_DEVICES=%q", got)
	}
	req := stage(t, run, "big", "true")
	req.Resources.GPUs = 3
	if _, err := e.Submit(context.Background(), req); !errors.Is(err, errkind.ErrUsage) {
		t.Errorf("3 GPUs on a 2-GPU machine: %v", err)
	}
}

func TestQuery(t *testing.T) {
	e := newExecutor(t, []string{})
	m, err := e.Query(context.Background(), []string{"local-19700101000000-1", "12345", "../etc/passwd"})
	if err != nil || len(m) != 0 {
		t.Errorf("unknown jobs: %v, %v", m, err)
	}
	if _, err := e.Submit(context.Background(), jobs.SubmitRequest{RunDir: "/x", Script: "/nonexistent/job.sh"}); err == nil {
		t.Error("a missing script was submitted")
	}
	run := t.TempDir()
	if s := waitTerminal(t, e, submit(t, e, stage(t, run, "x", "true"))); len(s) != 1 {
		t.Errorf("Query: %v", s)
	}
	req := stage(t, run, "y", "true")
	req.DependsOn = []string{"local-19700101000000-1"}
	if _, err := e.Submit(context.Background(), req); !errors.Is(err, errkind.ErrNotFound) {
		t.Errorf("unknown dependency: %v", err)
	}
}

// TestKilledSupervisorsJobStillRunning: a job that does not stop on the SIGTERM its
// supervisor's death sends (here it ignores it) keeps running. It must be reported
// RUNNING, not ended, while its processes live (so its GPU is not handed out again), and
// FAILED once they are gone.
func TestKilledSupervisorsJobStillRunning(t *testing.T) {
	e := newExecutor(t, []string{"0"})
	run := t.TempDir()
	one := submit(t, e, stage(t, run, "one", `trap '' TERM
echo $$ > pgid
while [ ! -e stop ]; do sleep 0.05; done`))
	pidFile := filepath.Join(run, "pgid")
	waitFor(t, "the script to start", func() bool { return exists(pidFile) && len(readFile(t, pidFile)) > 1 })
	pgid, _ := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err := syscall.Kill(local.SupervisorPID(t, e, one), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the supervisor to be gone", func() bool {
		m, err := e.Query(context.Background(), []string{one})
		return err == nil && m[one].Reason != ""
	})
	m, err := e.Query(context.Background(), []string{one})
	if err != nil {
		t.Fatal(err)
	}
	if s := m[one]; s.State != jobs.StateRunning || s.Reason != "supervisor died; job still running" {
		t.Errorf("with its processes alive: %+v; want RUNNING, supervisor died; job still running", s)
	}
	if len(local.GroupMembers(pgid)) == 0 {
		t.Fatal("the job's processes are gone already; the test proves nothing")
	}
	if err := os.WriteFile(filepath.Join(run, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	states := waitTerminal(t, e, one)
	if s := states[one]; s.State != jobs.StateFailed || s.Reason != "supervisor died" {
		t.Errorf("after its processes ended: %+v", s)
	}
}
