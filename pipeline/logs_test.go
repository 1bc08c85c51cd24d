package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
)

// answers is an executor that says what the test sets: the follow loop's reactions to
// each answer are the subject here, the executors have their own contract suite.
type answers struct {
	mu      sync.Mutex
	states  map[string]jobs.JobState
	queries int
}

func (a *answers) Name() string { return "answers" }
func (a *answers) Submit(context.Context, jobs.SubmitRequest) (string, error) {
	return "", errors.New("not here")
}
func (a *answers) Cancel(context.Context, []string) error { return nil }
func (a *answers) Query(_ context.Context, ids []string) (map[string]jobs.JobState, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.queries++
	m := map[string]jobs.JobState{}
	for _, id := range ids {
		if st, ok := a.states[id]; ok {
			m[id] = st
		}
	}
	return m, nil
}
func (a *answers) set(id string, st jobs.JobState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.states[id] = st
}

func logsRun(t *testing.T) registry.Run {
	dir := t.TempDir()
	return registry.Run{ID: "r-1", RunDir: dir, Stages: []registry.RunStage{
		{Name: "one", JobID: "7", JobName: "demo-one"},
		{Name: "two", JobID: "8", JobName: "demo-two", DependsOn: []string{"one"}},
	}}
}

func TestLogsFollowUntilTheJobEnds(t *testing.T) {
	run := logsRun(t)
	path := pipeline.LogFile(run, run.Stages[0], "out")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("epoch 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ex := &answers{states: map[string]jobs.JobState{"7": {State: jobs.StateRunning, Node: "n1"}, "8": {State: jobs.StatePending, Reason: "Dependency"}}}
	go func() {
		time.Sleep(100 * time.Millisecond)
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("epoch 2\n")
		f.Close()
		time.Sleep(50 * time.Millisecond)
		ex.set("7", jobs.JobState{State: jobs.StateCompleted, Node: "n1"})
	}()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pipeline.Logs(ctx, transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Stage: "one", Follow: true, Interval: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if err != nil || out.String() != "epoch 1\nepoch 2\n" {
		t.Fatalf("follow: %v, %q", err, out.String())
	}
	if ctx.Err() != nil {
		t.Fatal("follow did not end when the job did")
	}
}

func TestLogsOfStagesWithoutLog(t *testing.T) {
	run := logsRun(t)
	ex := &answers{states: map[string]jobs.JobState{
		"7": {State: jobs.StateFailed, Node: "n1"},
		"8": {State: jobs.StateCancelled, Reason: "DependencyNeverSatisfied"},
	}}
	var out, notice bytes.Buffer
	err := pipeline.Logs(context.Background(), transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Stage: "two", Notice: &notice})
	if !errors.Is(err, errkind.ErrNotFound) || !strings.Contains(err.Error(), "never ran (CANCELLED dependency failed)") {
		t.Errorf("a stage whose dependency failed: %v", err)
	}
	err = pipeline.Logs(context.Background(), transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Stage: "three"})
	if !errors.Is(err, errkind.ErrUsage) {
		t.Errorf("a stage the run lacks: %v", err)
	}
	ex.set("7", jobs.JobState{State: jobs.StatePending, Reason: "Priority"})
	err = pipeline.Logs(context.Background(), transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Stage: "one", Notice: &notice})
	if err != nil || !strings.Contains(notice.String(), "one has not started yet (PENDING Priority)") || out.Len() != 0 {
		t.Errorf("a pending stage: %v, notice %q, out %q", err, notice.String(), out.String())
	}
	ex.set("7", jobs.JobState{State: jobs.StateCompleted, Node: "n1"})
	err = pipeline.Logs(context.Background(), transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Stage: "one"})
	if !errors.Is(err, errkind.ErrNotFound) || !strings.Contains(err.Error(), "log ") {
		t.Errorf("a completed stage whose log is gone: %v", err)
	}
}

// TestLogsFollowThePipeline: without --stage, -f waits for a stage that has not started
// (saying why once), prints each stage's log under its header in turn, and ends when the
// last stage has.
func TestLogsFollowThePipeline(t *testing.T) {
	run := logsRun(t)
	one, two := pipeline.LogFile(run, run.Stages[0], "out"), pipeline.LogFile(run, run.Stages[1], "out")
	if err := os.MkdirAll(filepath.Dir(one), 0o755); err != nil {
		t.Fatal(err)
	}
	ex := &answers{states: map[string]jobs.JobState{"7": {State: jobs.StatePending, Reason: "Resources"}, "8": {State: jobs.StatePending, Reason: "Dependency"}}}
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.WriteFile(one, []byte("epoch 1\n"), 0o644)
		ex.set("7", jobs.JobState{State: jobs.StateRunning, Node: "n1"})
		time.Sleep(100 * time.Millisecond)
		f, _ := os.OpenFile(one, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("epoch 2\n")
		f.Close()
		time.Sleep(50 * time.Millisecond)
		ex.set("7", jobs.JobState{State: jobs.StateCompleted, Node: "n1"})
		time.Sleep(100 * time.Millisecond)
		os.WriteFile(two, []byte("from two\n"), 0o644)
		ex.set("8", jobs.JobState{State: jobs.StateRunning, Node: "n1"})
		time.Sleep(50 * time.Millisecond)
		ex.set("8", jobs.JobState{State: jobs.StateCompleted, Node: "n1"})
	}()
	var out, notice bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pipeline.Logs(ctx, transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Follow: true, Notice: &notice,
		Interval: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if want := "== one (job 7) ==\nepoch 1\nepoch 2\n== two (job 8) ==\nfrom two\n"; err != nil || out.String() != want {
		t.Fatalf("follow: %v\n got %q\nwant %q", err, out.String(), want)
	}
	if ctx.Err() != nil {
		t.Fatal("follow did not end when the run did")
	}
	for _, want := range []string{"waiting for one (job 7) to start: waiting for free CPUs, GPUs or memory on a node\n",
		"waiting for two (job 8) to start: waits for one to finish\n"} {
		if strings.Count(notice.String(), want) != 1 {
			t.Errorf("notice %q lacks, once, %q", notice.String(), want)
		}
	}
}

// TestLogsFollowEndsWhereTheRunDid: a stage cancelled because its dependency failed
// ends the followed pipeline, with a notice, not an error.
func TestLogsFollowEndsWhereTheRunDid(t *testing.T) {
	run := logsRun(t)
	one := pipeline.LogFile(run, run.Stages[0], "out")
	os.MkdirAll(filepath.Dir(one), 0o755)
	os.WriteFile(one, []byte("Traceback\n"), 0o644)
	ex := &answers{states: map[string]jobs.JobState{"7": {State: jobs.StateFailed, Node: "n1", ExitCode: "1:0"},
		"8": {State: jobs.StateCancelled, Reason: "DependencyNeverSatisfied"}}}
	var out, notice bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pipeline.Logs(ctx, transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Follow: true, Notice: &notice,
		Interval: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if err != nil || out.String() != "== one (job 7) ==\nTraceback\n" || !strings.Contains(notice.String(), "two never ran (CANCELLED dependency failed); the run ends here") {
		t.Fatalf("follow: %v, out %q, notice %q", err, out.String(), notice.String())
	}
}

// TestLogsTail: --tail N prints a log's last N lines, and a follow goes on from its end.
func TestLogsTail(t *testing.T) {
	run := logsRun(t)
	one := pipeline.LogFile(run, run.Stages[0], "out")
	os.MkdirAll(filepath.Dir(one), 0o755)
	os.WriteFile(one, []byte("l1\nl2\nl3\nl4\n"), 0o644)
	ex := &answers{states: map[string]jobs.JobState{"7": {State: jobs.StateRunning, Node: "n1"}, "8": {State: jobs.StatePending, Reason: "Dependency"}}}
	var out bytes.Buffer
	err := pipeline.Logs(context.Background(), transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Stage: "one", Tail: 2})
	if err != nil || out.String() != "l3\nl4\n" {
		t.Fatalf("--tail 2: %v, %q", err, out.String())
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		f, _ := os.OpenFile(one, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("l5\n")
		f.Close()
		time.Sleep(50 * time.Millisecond)
		ex.set("7", jobs.JobState{State: jobs.StateCompleted, Node: "n1"})
	}()
	out.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = pipeline.Logs(ctx, transport.NewLocal(), ex, run, &out, pipeline.LogOptions{Stage: "one", Tail: 1, Follow: true,
		Interval: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	if err != nil || out.String() != "l4\nl5\n" {
		t.Fatalf("--tail 1 -f: %v, %q", err, out.String())
	}
}
