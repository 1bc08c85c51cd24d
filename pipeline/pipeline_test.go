package pipeline_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/executortest"
	"github.com/hpctl/hpctl/jobs/slurm"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
	"github.com/hpctl/hpctl/weights"
)

// fixture is a spec with runtime none and two command stages, its data folders, and a
// registry, all in temporary directories.
type fixture struct {
	dir  string
	spec *experiment.Loaded
	reg  *registry.Registry
	t    *executortest.Counting
	ex   *slurm.Executor
}

// yamlList writes argv as a YAML flow sequence of double-quoted strings.
func yamlList(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func newFixture(t testing.TB, one, two string) *fixture {
	t.Helper()
	dir := t.TempDir()
	// Cancelled jobs may still be writing their markers as the test ends: remove the run
	// directories (before TempDir's own cleanup) once they are quiet.
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if os.RemoveAll(filepath.Join(dir, "runs")) == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := fmt.Sprintf(`name: pipe
workdir: %s/runs
data:
  train: %s/data/train
  val: %s/data/val
slurm:
  time: "00:05:00"
  gpus: 0
  cpus_per_task: 1
  mem: 64M
  signal_before: 0
  requeue: false
container:
  runtime: none
stages:
  - name: one
    epochs: 3
    command: %s
  - name: two
    depends_on: [one]
    command: %s
`, dir, dir, dir, yamlList([]string{"bash", "-c", one}), yamlList([]string{"bash", "-c", two}))
	file := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := experiment.Load(file)
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	reg, err := registry.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	c := executortest.NewCounting(transport.NewLocal())
	return &fixture{dir: dir, spec: l, reg: reg, t: c, ex: slurm.New(c, slurm.Options{})}
}

func (f *fixture) submit(t testing.TB) registry.Run {
	t.Helper()
	sub, err := pipeline.Submit(context.Background(), f.t, f.ex, f.reg, f.spec, pipeline.SubmitOptions{Version: "test"})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	var ids []string
	for _, s := range sub.Run.Stages {
		ids = append(ids, s.JobID)
	}
	t.Cleanup(func() { f.ex.Cancel(context.Background(), ids) })
	return sub.Run
}

func (f *fixture) status(t *testing.T, run registry.Run) pipeline.RunStatus {
	t.Helper()
	st, err := pipeline.Status(context.Background(), f.t, f.ex, []registry.Run{run}, pipeline.StatusOptions{})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st[0]
}

// waitRun polls status (politely) until cond holds.
func (f *fixture) waitRun(t *testing.T, run registry.Run, what string, cond func(pipeline.RunStatus) bool) pipeline.RunStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st := f.status(t, run)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not %s: %+v", run.ID, what, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func ended(st pipeline.RunStatus) bool {
	for _, s := range st.Stages {
		if !s.State.Terminal() {
			return false
		}
	}
	return true
}

func marker(t *testing.T, run registry.Run, stage, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(experiment.StageDir(run.RunDir, stage), experiment.MarkerDir, name))
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

const historyCmd = "sleep 1; h=stages/one/history.csv; " +
	"echo epoch,loss,accuracy,val_loss,val_accuracy,lr > $h; " +
	"echo 0,0.9,0.5,0.8,0.625,0.001 >> $h; echo 1,0.7,0.6,0.7,0.75,0.001 >> $h; " +
	"date +%s.%N > one.end"

func TestTwoStagesComplete(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, historyCmd, `date +%s.%N > two.start`)
	run := f.submit(t)
	if got, err := f.reg.Get(context.Background(), run.ID); err != nil || got.Stages[1].JobID == "" {
		t.Fatalf("registry: %+v, %v", got, err)
	}
	st := f.waitRun(t, run, "ended", ended)
	if st.State != jobs.StateCompleted {
		t.Fatalf("run: %+v", st)
	}
	one := st.Stages[0]
	if one.Epoch != 2 || one.Epochs != 3 || one.BestValAccuracy == nil || *one.BestValAccuracy != 0.75 {
		t.Fatalf("stage one progress: %d of %d, best %v", one.Epoch, one.Epochs, one.BestValAccuracy)
	}
	if one.ExitCode != "0" || one.Node == "" {
		t.Fatalf("stage one: %+v", one)
	}
	// Stage two started only after stage one ended: by the markers (seconds) and by the
	// commands' own clocks (nanoseconds).
	end1, _ := strconv.ParseInt(marker(t, run, "one", experiment.FinishedMarker)["end_time"], 10, 64)
	start2, _ := strconv.ParseInt(marker(t, run, "two", experiment.StartedMarker)["start_time"], 10, 64)
	if end1 == 0 || start2 < end1 {
		t.Fatalf("stage two started at %d, stage one ended at %d", start2, end1)
	}
	e, _ := os.ReadFile(filepath.Join(run.RunDir, "one.end"))
	s, _ := os.ReadFile(filepath.Join(run.RunDir, "two.start"))
	ef, _ := strconv.ParseFloat(strings.TrimSpace(string(e)), 64)
	sf, _ := strconv.ParseFloat(strings.TrimSpace(string(s)), 64)
	if ef == 0 || sf < ef {
		t.Fatalf("stage two's command started at %f, before stage one's ended at %f", sf, ef)
	}
}

func TestStageOneFails(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, `echo "loading data"; echo "boom: no such file" >&2; exit 3`, `touch two.ran`)
	run := f.submit(t)
	st := f.waitRun(t, run, "ended", ended)
	one, two := st.Stages[0], st.Stages[1]
	if one.State != jobs.StateFailed || one.ExitCode != "3" {
		t.Fatalf("stage one: %+v, want FAILED exit 3", one)
	}
	if !strings.Contains(one.LogTail, "boom: no such file") || !strings.HasSuffix(one.Log, ".err") {
		t.Fatalf("stage one's log tail %q (from %s) lacks the error", one.LogTail, one.Log)
	}
	if two.State != jobs.StateCancelled || two.Reason != pipeline.ReasonDependencyFailed {
		t.Fatalf("stage two: %+v, want CANCELLED, %q", two, pipeline.ReasonDependencyFailed)
	}
	if st.State != jobs.StateFailed {
		t.Fatalf("run state %s, want FAILED", st.State)
	}
	if _, err := os.Stat(filepath.Join(run.RunDir, "two.ran")); err == nil {
		t.Fatal("stage two ran")
	}
}

func TestCancelRunningRun(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, `sleep 120`, `touch two.ran`)
	run := f.submit(t)
	f.waitRun(t, run, "running", func(st pipeline.RunStatus) bool { return st.Stages[0].State == jobs.StateRunning })
	if err := f.ex.Cancel(context.Background(), []string{run.Stages[0].JobID, run.Stages[1].JobID}); err != nil {
		t.Fatal(err)
	}
	st := f.waitRun(t, run, "ended", ended)
	if st.State != jobs.StateCancelled || st.Stages[0].State != jobs.StateCancelled || st.Stages[1].State != jobs.StateCancelled {
		t.Fatalf("after cancel: %+v", st)
	}
}

// TestStatusOfThousandJobs: 500 recorded runs (1,000 jobs; one real run, the rest with
// ids Slurm never handed out) are resolved with at most two Slurm commands.
func TestStatusOfThousandJobs(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, historyCmd, `true`)
	real := f.submit(t)
	f.waitRun(t, real, "ended", ended)
	runs := []registry.Run{real}
	for i := 1; i < 500; i++ {
		r := real
		r.ID = fmt.Sprintf("synthetic-%d", i)
		r.RunDir = filepath.Join(f.dir, "runs", r.ID)
		r.Stages = []registry.RunStage{
			{Name: "one", JobName: "pipe-one", JobID: strconv.Itoa(800_000_000 + 2*i), Epochs: 3},
			{Name: "two", JobName: "pipe-two", JobID: strconv.Itoa(800_000_001 + 2*i), DependsOn: []string{"one"}},
		}
		runs = append(runs, r)
	}
	f.t.Reset()
	st, err := pipeline.Status(context.Background(), f.t, f.ex, runs, pipeline.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := f.t.Counts()
	slurmCalls := c["squeue"] + c["sacct"] + c["scancel"] + c["sbatch"] + c["scontrol"]
	t.Logf("commands for 1,000 jobs: %v", c)
	if slurmCalls > 2 || c["squeue"] != 1 {
		t.Fatalf("status of 1,000 jobs ran %d Slurm commands (%v); want at most 2", slurmCalls, c)
	}
	// Every run's markers and history are read by one awk process, and nothing else runs.
	reads := c["awk"]
	delete(c, "squeue")
	delete(c, "sacct")
	delete(c, "awk")
	if reads != 1 || len(c) > 0 {
		t.Fatalf("status read the run directories with %d awk and also ran %v; want one awk and nothing else", reads, c)
	}
	if st[0].State != jobs.StateCompleted || len(st) != 500 {
		t.Fatalf("status: %d runs, first %+v", len(st), st[0])
	}
}

func TestDataChecks(t *testing.T) {
	f := newFixture(t, `true`, `true`)
	// The fixture's spec has data.train on line 4 and data.val on line 5, values at col 10
	// and col 8.
	os.RemoveAll(filepath.Join(f.dir, "data/val/b"))
	_, err := pipeline.Submit(context.Background(), f.t, nil, f.reg, f.spec, pipeline.SubmitOptions{DryRun: true})
	var se *experiment.SpecError
	if !errors.As(err, &se) || len(se.Problems) != 1 ||
		se.Problems[0].String() != f.spec.File+":5:8: data.val: "+filepath.Join(f.dir, "data/val")+" holds 1 class folder(s); it needs at least two (one folder of images per class)" {
		t.Fatalf("one class folder: %v", err)
	}
	os.RemoveAll(filepath.Join(f.dir, "data/train"))
	_, err = pipeline.Submit(context.Background(), f.t, nil, f.reg, f.spec, pipeline.SubmitOptions{DryRun: true})
	if !errors.As(err, &se) || len(se.Problems) != 2 ||
		se.Problems[0].String() != f.spec.File+":4:10: data.train: "+filepath.Join(f.dir, "data/train")+" does not exist on the cluster" {
		t.Fatalf("missing train: %v", err)
	}
}

func TestDryRunTouchesNothing(t *testing.T) {
	f := newFixture(t, `true`, `true`)
	ex := slurm.New(f.t, slurm.Options{})
	sub, err := pipeline.Submit(context.Background(), f.t, ex, f.reg, f.spec, pipeline.SubmitOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Files) == 0 || len(sub.Order) != 2 {
		t.Fatalf("dry run: %d files, order %v", len(sub.Files), sub.Order)
	}
	if _, err := os.Stat(sub.Plan.RunDir); err == nil {
		t.Fatal("dry run created the run directory")
	}
	if c := f.t.Counts(); c["sbatch"] != 0 {
		t.Fatalf("dry run ran sbatch: %v", c)
	}
	if runs, _ := f.reg.List(context.Background()); len(runs) != 0 {
		t.Fatalf("dry run recorded %d runs", len(runs))
	}
}

// TestLaterSubmissionFails: sbatch refuses stage two (a real refusal, not transient)
// after stage one was queued: stage one's job is cancelled, sbatch's whole message is
// kept, no run is recorded and the run directory is removed.
func TestLaterSubmissionFails(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, `sleep 30`, `true`)
	// The real controller refuses stage two: its partition does not exist. Pre-flight
	// would refuse it before anything is queued, so sinfo is made to fail here as where
	// a site forbids it: the check is skipped, with a warning, and stage one is queued
	// by the time sbatch refuses stage two.
	src := strings.Replace(string(f.spec.Source), "    depends_on: [one]\n", "    depends_on: [one]\n    slurm: {partition: no-such-partition}\n", 1)
	l, err := experiment.Parse(f.spec.File, []byte(src))
	if err == nil {
		err = l.Validate()
	}
	if err != nil || l.Spec.Stages[1].Slurm.Partition != "no-such-partition" {
		t.Fatalf("spec with a bad partition for stage two: %v", err)
	}
	noSinfo := &executortest.Faulty{Transport: f.t, Prog: "sinfo", Fail: 1 << 30, Stderr: "sinfo: error: Access/permission denied"}
	ex := slurm.New(noSinfo, slurm.Options{})
	sub, err := pipeline.Submit(context.Background(), noSinfo, ex, f.reg, l, pipeline.SubmitOptions{})
	if err == nil {
		t.Fatal("submit succeeded")
	}
	if len(sub.Warnings) != 1 || !strings.Contains(sub.Warnings[0], "pre-flight skipped") {
		t.Errorf("warnings %q: want one saying pre-flight was skipped", sub.Warnings)
	}
	if !errors.Is(err, errkind.ErrRefused) || !strings.Contains(err.Error(), "were cancelled") ||
		!strings.Contains(err.Error(), "\n  sbatch: error: invalid partition specified: no-such-partition\n  sbatch: error: Batch job submission failed: Invalid partition name specified\n") {
		t.Fatalf("error is not a refusal with sbatch's whole message saying the queued jobs were cancelled: %v", err)
	}
	if got, gerr := f.reg.Get(context.Background(), sub.Run.ID); !errors.Is(gerr, errkind.ErrNotFound) {
		t.Fatalf("the refused run is recorded: %+v, %v", got, gerr)
	}
	if _, serr := os.Stat(sub.Run.RunDir); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("the refused run's directory is left: %v", serr)
	}
	id := sub.Run.Stages[0].JobID
	if id == "" || !strings.Contains(err.Error(), "("+id+")") {
		t.Fatalf("stage one's job id %q not in the error: %v", id, err)
	}
	st, qerr := ex.Query(context.Background(), []string{id})
	if qerr != nil || st[id].State != jobs.StateCancelled {
		t.Fatalf("stage one's job after the refused submission: %+v, %v", st[id], qerr)
	}
}

// TestQueuedJobsAreRecordedFirst looks at the registry at the moment the second sbatch
// runs: were hpctl to die there, the first job must already be recorded, with the run
// marked as still submitting, so that `hpctl cancel` can reach it.
func TestQueuedJobsAreRecordedFirst(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, `sleep 30`, `true`)
	var seen registry.Run
	var seenErr error
	peek := &peekAtSecond{Transport: f.t, peek: func() {
		runs, err := f.reg.List(context.Background())
		if err != nil || len(runs) != 1 {
			seenErr = fmt.Errorf("registry at the second sbatch: %d runs, %v", len(runs), err)
			return
		}
		seen = runs[0]
	}}
	ex := slurm.New(peek, slurm.Options{})
	sub, err := pipeline.Submit(context.Background(), peek, ex, f.reg, f.spec, pipeline.SubmitOptions{})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	t.Cleanup(func() { ex.Cancel(context.Background(), []string{sub.Run.Stages[0].JobID, sub.Run.Stages[1].JobID}) })
	if seenErr != nil {
		t.Fatal(seenErr)
	}
	if seen.Status != registry.RunSubmitting || seen.Stages[0].JobID != sub.Run.Stages[0].JobID || seen.Stages[1].JobID != "" {
		t.Fatalf("registry before the second sbatch: status %q, jobs %q %q; want submitting, %q, none",
			seen.Status, seen.Stages[0].JobID, seen.Stages[1].JobID, sub.Run.Stages[0].JobID)
	}
	got, err := f.reg.Get(context.Background(), sub.Run.ID)
	if err != nil || got.Status != registry.RunSubmitted {
		t.Fatalf("after submit: %+v %v", got, err)
	}
}

type peekAtSecond struct {
	transport.Transport
	n    int
	peek func()
}

func (p *peekAtSecond) Run(ctx context.Context, argv []string, stdin io.Reader) (transport.Result, error) {
	if argv[0] == "sbatch" {
		p.n++
		if p.n == 2 {
			p.peek()
		}
	}
	return p.Transport.Run(ctx, argv, stdin)
}

// TestSubmitPutsWeightsInTheCache: a spec whose trainer stage needs ImageNet weights gets
// them into the cluster's cache at submit, downloaded once from a (local) mirror and
// verified; a second submit reuses the cached file. A corrupt mirror stops the
// submission before anything is queued.
func TestSubmitPutsWeightsInTheCache(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, `true`, `true`)
	src := strings.Replace(string(f.spec.Source), "    command: [\"bash\", \"-c\", \"true\"]\n  - name: two", "  - name: two", 1)
	cache := filepath.Join(f.dir, "weights cache")
	src = strings.Replace(src, "container:\n", "model:\n  weights: imagenet\n  weights_cache: "+strconv.Quote(cache)+"\ncontainer:\n", 1)
	l, err := experiment.Parse(f.spec.File, []byte(src))
	if err == nil {
		err = l.Validate()
	}
	if err != nil {
		t.Fatalf("spec: %v\n%s", err, src)
	}
	content := []byte("not really weights, but checked like them\n")
	sum := md5.Sum(content)
	var requests atomic.Int32
	var corrupt atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if corrupt.Load() {
			w.Write([]byte("corrupted"))
			return
		}
		w.Write(content)
	}))
	defer srv.Close()
	opts := pipeline.SubmitOptions{Weights: weights.Options{
		BaseURL:  srv.URL,
		Manifest: weights.Manifest{"resnet50": {File: "w.h5", URL: "https://example.invalid/w.h5", MD5: hex.EncodeToString(sum[:])}},
	}}
	submit := func() (*pipeline.Submission, error) {
		sub, err := pipeline.Submit(context.Background(), f.t, f.ex, f.reg, l, opts)
		if sub != nil {
			var ids []string
			for _, s := range sub.Run.Stages {
				if s.JobID != "" {
					ids = append(ids, s.JobID)
				}
			}
			f.ex.Cancel(context.Background(), ids)
		}
		return sub, err
	}
	if _, err := submit(); err != nil {
		t.Fatalf("submit: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(cache, "w.h5"))
	if err != nil || string(got) != string(content) || requests.Load() != 1 {
		t.Fatalf("cache after the first submit: %q, %v; %d requests", got, err, requests.Load())
	}
	if _, err := submit(); err != nil || requests.Load() != 1 {
		t.Fatalf("second submit: %v; %d requests, want the cached file reused", err, requests.Load())
	}
	os.Remove(filepath.Join(cache, "w.h5"))
	corrupt.Store(true)
	before, _ := f.reg.List(context.Background())
	if _, err := submit(); err == nil || !strings.Contains(err.Error(), "weights") {
		t.Fatalf("a corrupt download was accepted: %v", err)
	}
	after, _ := f.reg.List(context.Background())
	if len(after) != len(before) {
		t.Errorf("a submission stopped by bad weights left a run in the registry")
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("the corrupt download left files in the cache: %v", entries)
	}
}

// A job killed hard (SIGKILL to its batch shell: no finished marker, as after a node
// failure) is FAILED in Slurm's word, and status still shows the tail of its log: the
// second, small read that a failure without a marker gets.
func TestStageKilledHardShowsItsLog(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newFixture(t, `echo "started the long part" >&2; sleep 120`, `true`)
	run := f.submit(t)
	errLog := filepath.Join(run.RunDir, "logs", "pipe-one-"+run.Stages[0].JobID+".err")
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if b, _ := os.ReadFile(errLog); strings.Contains(string(b), "started the long part") {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("stage one did not start")
		}
	}
	if out, err := exec.Command("scancel", "--batch", "--signal=KILL", run.Stages[0].JobID).CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	st := f.waitRun(t, run, "ended", ended)
	one := st.Stages[0]
	if !one.State.Failed() || !strings.Contains(one.LogTail, "started the long part") {
		t.Fatalf("stage one killed hard: %s (%s), log tail %q", one.State, one.Reason, one.LogTail)
	}
	if _, err := os.Stat(filepath.Join(run.RunDir, "stages", "one", ".hpctl", "finished")); err == nil {
		t.Error("the killed job wrote a finished marker; the test no longer kills it hard")
	}
}
