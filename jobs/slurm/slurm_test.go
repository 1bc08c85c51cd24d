package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/executortest"
	"github.com/hpctl/hpctl/transport"
)

// fastRetry keeps the fault-injection tests quick.
var fastRetry = Retry{Attempts: 3, Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}

func TestContract(t *testing.T) {
	testenv.RequireSlurm(t)
	executortest.Run(t, func(t *testing.T) executortest.Env {
		return executortest.Env{Executor: New(transport.NewLocal(), Options{}), Dir: t.TempDir()}
	})
}

func tinyScript(t *testing.T, body string) string {
	dir := t.TempDir()
	p := dir + "/job.sh"
	text := "#!/bin/bash\n#SBATCH --output=" + dir + "/out.log\n#SBATCH --mem=32M\n#SBATCH --time=1\n" + body + "\n"
	if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSubmitRetriesTransientErrors: sbatch "times out" twice, then the real sbatch
// runs; the job is submitted once.
func TestSubmitRetriesTransientErrors(t *testing.T) {
	testenv.RequireSlurm(t)
	ctx := context.Background()
	f := &executortest.Faulty{Transport: transport.NewLocal(), Prog: "sbatch", Fail: 2}
	counted := executortest.NewCounting(f)
	e := New(counted, Options{Retry: fastRetry})
	id, err := e.Submit(ctx, jobs.SubmitRequest{Script: tinyScript(t, "true")})
	if err != nil {
		t.Fatalf("submit after 2 transient failures: %v", err)
	}
	defer e.Cancel(ctx, []string{id})
	if f.Failed() != 2 || counted.Count("sbatch") != 3 {
		t.Fatalf("injected %d failures, sbatch run %d times; want 2 and 3", f.Failed(), counted.Count("sbatch"))
	}
}

// TestPersistentTransientErrorIsUnreachable: when the controller keeps timing out the
// error wraps ErrUnreachable (exit code 3) and says what Slurm answered.
func TestPersistentTransientErrorIsUnreachable(t *testing.T) {
	ctx := context.Background()
	for _, msg := range []string{
		"sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
		"squeue: error: slurm_receive_msg: Resource temporarily unavailable",
		"slurm_load_jobs error: Unable to contact slurm controller (connect failure)",
		"ssh: connect to host login port 22: Connection refused",
	} {
		f := &executortest.Faulty{Transport: transport.NewLocal(), Fail: 100, Stderr: msg}
		e := New(f, Options{Retry: fastRetry})
		start := time.Now()
		_, err := e.Query(ctx, []string{"1"})
		if !errors.Is(err, errkind.ErrUnreachable) {
			t.Fatalf("%q: %v, want ErrUnreachable", msg, err)
		}
		if !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "3 tries") {
			t.Fatalf("error does not say what happened: %v", err)
		}
		if f.Failed() != fastRetry.Attempts {
			t.Fatalf("%d tries, want %d", f.Failed(), fastRetry.Attempts)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("retries took %s", d)
		}
	}
	// A real error (not transient) is not retried.
	f := &executortest.Faulty{Transport: transport.NewLocal(), Fail: 100, Stderr: "sbatch: error: invalid partition specified: nope"}
	_, err := New(f, Options{Retry: fastRetry}).Submit(ctx, jobs.SubmitRequest{Script: "/x.sh"})
	if err == nil || errors.Is(err, errkind.ErrUnreachable) || f.Failed() != 1 {
		t.Fatalf("non-transient error: %v after %d tries; want a plain error after 1", err, f.Failed())
	}
}

// TestQueryIsOneCallEach: many ids, one squeue and at most one sacct.
func TestQueryIsOneCallEach(t *testing.T) {
	testenv.RequireSlurm(t)
	ctx := context.Background()
	c := executortest.NewCounting(transport.NewLocal())
	e := New(c, Options{})
	id, err := e.Submit(ctx, jobs.SubmitRequest{Script: tinyScript(t, "true")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Cancel(ctx, []string{id})
	ids := []string{id}
	for i := 0; i < 2000; i++ {
		ids = append(ids, fmt.Sprint(900_000_000+i)) // never handed out
	}
	c.Reset()
	got, err := e.Query(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[id]; !ok {
		t.Fatalf("submitted job %s missing from %d results", id, len(got))
	}
	if n := c.Count("squeue"); n != 1 {
		t.Fatalf("squeue ran %d times", n)
	}
	if n := c.Count("sacct"); n > 1 {
		t.Fatalf("sacct ran %d times", n)
	}
	// Past MaxArgLen, ids are split: documented, and still bounded.
	c.Reset()
	e = New(c, Options{MaxArgLen: 10_000})
	if _, err := e.Query(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if n := c.Count("squeue"); n != 3 {
		t.Fatalf("squeue ran %d times for ~20,000 bytes of ids in 10,000-byte chunks", n)
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]string{"123\n": "123", "45;cluster\n": "45", "7_3": "7_3"} {
		got, err := parseSubmit(in)
		if err != nil || got != want {
			t.Errorf("parseSubmit(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := parseSubmit("Submitted batch job 12"); err == nil {
		t.Error("non-parsable output accepted")
	}
	for in, want := range map[string]time.Duration{"0:05": 5 * time.Second, "1:02:03": time.Hour + 2*time.Minute + 3*time.Second, "2-00:00:01": 48*time.Hour + time.Second} {
		if got := parseElapsed(in); got != want {
			t.Errorf("parseElapsed(%q) = %s, want %s", in, got, want)
		}
	}
	sq := parseSqueue("12|PENDING|DependencyNeverSatisfied||0:00\n13|COMPLETING|None|vm|1:00\n")
	if sq["12"].Reason != "DependencyNeverSatisfied" || sq["13"].State != jobs.StateRunning || sq["13"].Reason != "" {
		t.Errorf("parseSqueue: %+v", sq)
	}
	sa := parseSacct("14|CANCELLED by 0|Dependency|None assigned|0|0:0|Unknown|1764395600\n15|FAILED|None|vm|3|3:0|1764395000|1764395003\n16|TIMEOUT|None|vm|60|0:15|1|61\n")
	if sa["14"].State != jobs.StateCancelled || sa["14"].Node != "" || sa["15"].ExitCode != "3" || sa["15"].Elapsed != 3*time.Second || sa["16"].ExitCode != "0:15" {
		t.Errorf("parseSacct: %+v", sa)
	}
}

// TestTamperedIDsNeverReachSlurm: a registry record whose job id reads "--state=PENDING"
// would make `scancel --state=PENDING` cancel every pending job of the user. Cancel must
// refuse it without calling scancel, and Query must leave it out, while a real held job
// of the same user stays pending.
func TestTamperedIDsNeverReachSlurm(t *testing.T) {
	testenv.RequireSlurm(t)
	ctx := context.Background()
	counted := executortest.NewCounting(transport.NewLocal())
	e := New(counted, Options{Retry: fastRetry})
	held, err := New(transport.NewLocal(), Options{}).Submit(ctx, jobs.SubmitRequest{Script: tinyScript(t, "#SBATCH --hold\ntrue")})
	if err != nil {
		t.Fatal(err)
	}
	defer New(transport.NewLocal(), Options{}).Cancel(ctx, []string{held})
	for _, bad := range []string{"--state=PENDING", "--user=root", "1,2", "", "12 13", "-1"} {
		err := e.Cancel(ctx, []string{held, bad})
		if err == nil || !strings.Contains(err.Error(), "not a Slurm job id") {
			t.Errorf("Cancel(%q): err %v, want a refusal", bad, err)
		}
	}
	if n := counted.Count("scancel"); n != 0 {
		t.Errorf("scancel ran %d times for tampered ids", n)
	}
	got, err := e.Query(ctx, []string{held, "--state=PENDING", "1,2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[held].State != jobs.StatePending {
		t.Errorf("Query = %+v; want only the held job, PENDING", got)
	}
}
