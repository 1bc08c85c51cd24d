package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

func TestPrintSummary(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	run := func(id string, ago time.Duration, state jobs.State, stages ...pipeline.StageStatus) pipeline.RunStatus {
		return pipeline.RunStatus{Run: registry.Run{ID: id, SubmittedAt: now.Add(-ago)}, State: state, Stages: stages}
	}
	st := []pipeline.RunStatus{
		run("new-run", 30*time.Second, jobs.StatePending,
			pipeline.StageStatus{Name: "frozen", State: jobs.StatePending, Reason: "Resources", Explanation: "waiting for free CPUs, GPUs or memory on a node"},
			pipeline.StageStatus{Name: "finetune", State: jobs.StatePending, Reason: "Dependency", Explanation: "waits for frozen to finish"}),
		run("live-run", 90*time.Minute, jobs.StateRunning,
			pipeline.StageStatus{Name: "frozen", State: jobs.StateCompleted, Epoch: 5, Epochs: 5, BestValAccuracy: num.Ptr(0.8)},
			pipeline.StageStatus{Name: "finetune", State: jobs.StateRunning, Epoch: 3, Epochs: 10, BestValAccuracy: num.Ptr(0.9125)}),
		run("old-run", 72*time.Hour, jobs.StateFailed,
			pipeline.StageStatus{Name: "frozen", State: jobs.StateFailed, ExitCode: "7", LogTail: "boom\n"},
			pipeline.StageStatus{Name: "finetune", State: jobs.StateCancelled, Reason: pipeline.ReasonDependencyFailed}),
	}
	var b bytes.Buffer
	if err := printStatus(&b, st, false, statusView{summary: true, now: now}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and one line per run, got:\n%s", b.String())
	}
	for i, want := range [][]string{
		{"RUN", "STATE", "STAGE", "EPOCH", "BEST VAL ACC", "AGE"},
		{"new-run", "PENDING", "frozen", "30s", "waiting for free CPUs, GPUs or memory on a node"},
		{"live-run", "RUNNING", "finetune", "3/10", "0.9125", "1h"},
		{"old-run", "FAILED", "frozen", "3d", "exit 7"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(b.String(), "boom") {
		t.Errorf("the summary shows a log tail:\n%s", b.String())
	}

	// On a 60-column terminal every line is cut, and says so.
	b.Reset()
	printStatus(&b, st, false, statusView{summary: true, now: now, width: 60})
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		if n := len([]rune(l)); n > 60 {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	if !strings.Contains(b.String(), "…") {
		t.Errorf("nothing cut at 60 columns:\n%s", b.String())
	}
}

func TestFitWidth(t *testing.T) {
	for _, c := range []struct {
		in    string
		width int
		want  string
	}{
		{"abcdef", 0, "abcdef"},
		{"abcdef", 6, "abcdef"},
		{"abcdef", 4, "abc…"},
		{"日本語です", 5, "日本…"}, // wide runes count two columns
	} {
		if got := fitWidth(c.in, c.width); got != c.want {
			t.Errorf("fitWidth(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
	}
}

// TestStatusPendingDependency: on the test cluster, a stage waiting for its dependency
// shows the plain sentence in the one-line summary and the Slurm code beside it in the
// run's detail.
func TestStatusPendingDependency(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	spec := slurmSpec(t, dir, `sleep 60`, `echo two`)
	s := submitJSON(t, spec)
	deadline := time.Now().Add(time.Minute)
	for {
		st := statusJSON(t, s.RunID)
		if two := st.Stages[1]; two.State == jobs.StatePending && two.Reason == "Dependency" {
			if two.Explanation != "waits for one to finish" {
				t.Fatalf("explanation of a stage pending on Dependency: %q", two.Explanation)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stage two never pending on Dependency: %+v", st.Stages)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Stage one may still wait for CPUs on the shared cluster; stage two waits for it.
	out, errs, code := hpctl(t, "status")
	if code != 0 || !strings.Contains(out, s.RunID) {
		t.Fatalf("status: exit %d: %s\n%s", code, errs, out)
	}
	out, errs, code = hpctl(t, "status", s.RunID)
	if code != 0 || !strings.Contains(out, "waits for one to finish (Dependency)") {
		t.Fatalf("status %s: exit %d: %s\n%s", s.RunID, code, errs, out)
	}
	t.Logf("status %s:\n%s", s.RunID, out)
}

func TestLiveLine(t *testing.T) {
	for _, c := range []struct {
		s    pipeline.StageStatus
		want string
	}{
		{pipeline.StageStatus{Name: "finetune", State: jobs.StateRunning, Epoch: 3, Epochs: 10, LastLoss: num.Ptr(0.41234),
			LastValAccuracy: num.Ptr(0.9125), EpochSeconds: 42, ETASeconds: 294, JobAttempt: 1},
			"r finetune: epoch 3/10\n  loss 0.4123 · val acc 0.9125 · 42.0 s/epoch · ETA 4:54"},
		{pipeline.StageStatus{Name: "finetune", State: jobs.StateRunning, Epoch: 84, Epochs: 100, EpochSeconds: 5, ETASeconds: 80, JobAttempt: 2},
			"r finetune: epoch 84/100, attempt 2 (requeued 1×)\n  5.0 s/epoch · ETA 1:20"},
		{pipeline.StageStatus{Name: "frozen", State: jobs.StateRunning, Epochs: 5}, "r frozen: epoch 0/5"},
		{pipeline.StageStatus{Name: "finetune", State: jobs.StatePending, Reason: "BeginTime", JobAttempt: 2, ResumeEpoch: 83},
			"r finetune: requeued (attempt 2), resumes at epoch 83"},
		{pipeline.StageStatus{Name: "cmd", State: jobs.StateRunning}, ""},
		{pipeline.StageStatus{Name: "frozen", State: jobs.StateCompleted, Epoch: 5, Epochs: 5}, ""},
		{pipeline.StageStatus{Name: "frozen", State: jobs.StatePending, Reason: "Resources"}, ""},
	} {
		if got := liveLine("r", c.s); got != c.want {
			t.Errorf("liveLine(%+v)\n got %q\nwant %q", c.s, got, c.want)
		}
	}
}

func TestRedrawFrame(t *testing.T) {
	var frame strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&frame, "line %02d %s\n", i, strings.Repeat("x", 100))
	}
	got := redrawFrame(frame.String(), 80, 24)
	if !strings.HasPrefix(got, "\x1b[H") || !strings.HasSuffix(got, "\x1b[J") {
		t.Errorf("frame does not start at home and clear below: %q...", got[:10])
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n\x1b[J"), "\n")
	if len(lines) != 23 {
		t.Errorf("%d lines on a 24-line screen, want 23 (the cursor's line stays free)", len(lines))
	}
	for _, l := range lines {
		l = strings.TrimPrefix(strings.TrimSuffix(l, "\x1b[K"), "\x1b[H")
		if n := len([]rune(l)); n > 80 {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	if !strings.HasPrefix(lines[len(lines)-1], "… 8 more lines") || !strings.Contains(lines[21], "line 21") {
		t.Errorf("last lines: %q %q", lines[21], lines[22])
	}
}
