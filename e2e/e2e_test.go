// Package e2e runs the whole pipeline as a user does: the real hpctl binary (built once
// with `go build`), the real Slurm test cluster, the real trainer in a TensorFlow
// virtual environment, and a real sshd on 127.0.0.1 (docs/test-cluster.md).
//
// TestPipelineEndToEnd submits a frozen → fine-tune pipeline on a generated two-class
// data set, follows it with `hpctl status`, then fetches the results once on this
// machine and once over ssh, and checks what a user would look at. TestSSHOneLogin
// shows that submit, status, logs and fetch-results, each its own process, share one
// ssh login.
//
// Needs: the Slurm test cluster (HPCTL_REQUIRE_SLURM=1 makes its absence a failure),
// the test sshd (HPCTL_REQUIRE_SSH=1), and for the pipeline a Python with TensorFlow,
// numpy and Pillow named by HPCTL_TEST_PYTHON (HPCTL_REQUIRE_TF=1 makes its absence a
// failure; scripts/test.sh sets it to .venv-tfcur/bin/python).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/pipeline/results"
)

const (
	// pipelineTimeout bounds the wait for both trainer stages. They take about 3 to 4
	// minutes on a loaded 2-core machine (most of it TensorFlow start-up and the first
	// epoch's graph compilation); the margin is for a busy cluster.
	pipelineTimeout = 12 * time.Minute
	// commandTimeout bounds one hpctl command (status, fetch-results...).
	commandTimeout = 3 * time.Minute
	// pollEvery: Slurm asks tools not to poll in tight loops.
	pollEvery = 2 * time.Second

	frozenEpochs   = 3
	finetuneEpochs = 4
	// minValAccuracy: the trainer's own two-stage test asks 0.9 of its stripes. On the
	// quickstart's data (circles vs squares: shape and colour both differ) both stages
	// reached 1.0 in every run while this test was written, so 0.9 leaves a margin
	// for the nondeterminism of multithreaded CPU training.
	minValAccuracy = 0.9
)

var historyHeader = []string{"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}

// ---------------------------------------------------------------- the hpctl binary

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// hpctlBinary builds cmd/hpctl once per test process, as a user's `go build` would, so
// the tests run the same program (with the trainer embedded) that users run.
func hpctlBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			build.err = err
			return
		}
		build.dir, build.err = os.MkdirTemp("", "hpctl-e2e-bin-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "hpctl")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/hpctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/hpctl: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// cli runs the hpctl binary with a private state, config and ssh control directory, so
// the tests never touch the user's registry or masters.
type cli struct {
	bin       string
	env       []string
	dir       string // working directory
	sshConfig string // HPCTL_SSH_CONFIG, once useSSH set it
	ctl       string // HPCTL_CONTROL_DIR
	calls     int    // hpctl processes run
	asUser    string // run hpctl as this user (runuser), "" as the test's
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	dir := t.TempDir()
	// A short, fresh control directory: no master from earlier tests is reused, and the
	// socket path stays well under the 104-byte limit whatever t.TempDir returns.
	ctl, err := os.MkdirTemp("/tmp", "hpctl-e2e-cm-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{bin: hpctlBinary(t), dir: dir, ctl: ctl}
	t.Cleanup(func() {
		c.stopMasters(t)
		os.RemoveAll(ctl)
	})
	var env []string
	for _, kv := range os.Environ() {
		// Nothing of the user's hpctl settings leaks into the test.
		if !strings.HasPrefix(kv, "HPCTL_") || strings.HasPrefix(kv, "HPCTL_TEST_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"XDG_STATE_HOME="+filepath.Join(dir, "state"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HPCTL_CONTROL_DIR="+ctl,
		"HPCTL_LOG_FORMAT=console",
		"TF_CPP_MIN_LOG_LEVEL=2",
	)
	c.env = env
	return c
}

// useSSH makes hpctl read the test sshd's client config (ssh -F), for --host.
func (c *cli) useSSH(config string) {
	c.sshConfig = config
	c.env = append(c.env, "HPCTL_SSH_CONFIG="+config)
}

// run runs hpctl with args and returns its stdout, stderr and exit code.
func (c *cli) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	c.calls++
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	if c.asUser != "" {
		// runuser keeps the environment it is given (cmd.Env below).
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", c.bin}, args...)...)
	}
	cmd.Env = c.env
	cmd.Dir = c.dir
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("hpctl %s: no answer after %s\nstderr:\n%s", strings.Join(args, " "), commandTimeout, errb.String())
	}
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("hpctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// must runs hpctl and fails the test unless it exits 0.
func (c *cli) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := c.run(t, args...)
	if code != 0 {
		t.Fatalf("hpctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// jsonOut runs hpctl with -o json and decodes its output into v.
func (c *cli) jsonOut(t *testing.T, v any, args ...string) {
	t.Helper()
	out := c.must(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("hpctl %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

type submitted struct {
	RunID  string `json:"run_id"`
	RunDir string `json:"run_dir"`
	Jobs   []struct {
		Stage string `json:"stage"`
		JobID string `json:"job_id"`
	} `json:"jobs"`
}

// submit submits spec (with extra global flags before the command) and makes sure
// whatever is left of the run is cancelled when the test ends.
func (c *cli) submit(t *testing.T, spec string, global ...string) submitted {
	t.Helper()
	var s submitted
	c.jsonOut(t, &s, append(global, "submit", spec)...)
	if s.RunID == "" || s.RunDir == "" || len(s.Jobs) != 2 {
		t.Fatalf("submit: unexpected answer %+v", s)
	}
	t.Cleanup(func() {
		// Ended runs are left as they are; anything pending or running is cancelled.
		if out, errs, code := c.run(t, append(global, "status", s.RunID, "-o", "json")...); code == 0 {
			var st []pipeline.RunStatus
			if json.Unmarshal([]byte(out), &st) == nil && len(st) == 1 && st[0].State.Terminal() {
				return
			}
		} else {
			t.Logf("status before cleanup: exit %d: %s", code, errs)
		}
		if out, errs, code := c.run(t, append(global, "cancel", s.RunID)...); code != 0 {
			t.Logf("cleanup: hpctl cancel %s: exit %d: %s%s", s.RunID, code, out, errs)
		}
	})
	return s
}

// status is `hpctl status RUN -o json`.
func (c *cli) status(t *testing.T, run string, global ...string) pipeline.RunStatus {
	t.Helper()
	var st []pipeline.RunStatus
	c.jsonOut(t, &st, append(global, "status", run)...)
	if len(st) != 1 || len(st[0].Stages) != 2 {
		t.Fatalf("status %s: unexpected answer %+v", run, st)
	}
	return st[0]
}

// waitEnded polls status until every stage has ended, logging each change.
func (c *cli) waitEnded(t *testing.T, run string, timeout time.Duration, global ...string) pipeline.RunStatus {
	t.Helper()
	start := time.Now()
	last := ""
	for {
		st := c.status(t, run, global...)
		var now []string
		ended := true
		for _, s := range st.Stages {
			now = append(now, fmt.Sprintf("%s %s %d/%d", s.Name, s.State, s.Epoch, s.Epochs))
			if !s.State.Terminal() {
				ended = false
			}
		}
		if line := strings.Join(now, ", "); line != last {
			t.Logf("%6.1fs  %s", time.Since(start).Seconds(), line)
			last = line
		}
		if ended {
			return st
		}
		if time.Since(start) > timeout {
			t.Fatalf("run %s has not ended after %s: %s\n%s", run, timeout, last, c.stageLogs(t, run, st, global...))
		}
		time.Sleep(pollEvery)
	}
}

// stageLogs is the tail of every started stage's stdout and stderr, for failure messages.
func (c *cli) stageLogs(t *testing.T, run string, st pipeline.RunStatus, global ...string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range st.Stages {
		if s.Node == "" && s.State != jobs.StateRunning {
			fmt.Fprintf(&b, "--- stage %s never ran: %s %s\n", s.Name, s.State, s.Reason)
			continue
		}
		for _, stream := range []string{"", "--err"} {
			args := append(append([]string{}, global...), "logs", run, "--stage", s.Name)
			if stream != "" {
				args = append(args, stream)
			}
			out, errs, code := c.run(t, args...)
			fmt.Fprintf(&b, "--- hpctl %s (exit %d), last lines:\n%s%s", strings.Join(args, " "), code, tail(out, 30), tail(errs, 5))
		}
	}
	return b.String()
}

func tail(s string, n int) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// stopMasters ends the ssh masters hpctl left in ctl (KeepMaster leaves them to
// ControlPersist, minutes): `ssh -O exit` through the socket opens no connection.
func (c *cli) stopMasters(t *testing.T) {
	socks, _ := filepath.Glob(filepath.Join(c.ctl, "cm-*"))
	for _, s := range socks {
		args := []string{"-o", "ControlPath=" + s, "-O", "exit", "hpctl-test"}
		if c.sshConfig != "" {
			args = append([]string{"-F", c.sshConfig}, args...)
		}
		if out, err := exec.Command("ssh", args...).CombinedOutput(); err != nil {
			t.Logf("ending ssh master %s: %v: %s", s, err, out)
		}
	}
}

// ---------------------------------------------------------------- prerequisites

// requirePython returns HPCTL_TEST_PYTHON, or skips (fails with HPCTL_REQUIRE_TF=1)
// when it is unset or not a program.
func requirePython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("HPCTL_TEST_PYTHON")
	msg := ""
	if py == "" {
		msg = "HPCTL_TEST_PYTHON is not set (a python with TensorFlow, numpy and Pillow, e.g. .venv-tfcur/bin/python from scripts/trainer-venv.sh)"
	} else if !filepath.IsAbs(py) {
		msg = fmt.Sprintf("HPCTL_TEST_PYTHON=%s is not an absolute path (the Slurm job runs it from another directory)", py)
	} else if fi, err := os.Stat(py); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		msg = fmt.Sprintf("HPCTL_TEST_PYTHON=%s is not an executable file (%v); create it with scripts/trainer-venv.sh tfcur tensorflow-cpu", py, err)
	}
	if msg != "" {
		if os.Getenv("HPCTL_REQUIRE_TF") == "1" {
			t.Fatalf("%s (HPCTL_REQUIRE_TF=1)", msg)
		}
		t.Skipf("%s; set HPCTL_REQUIRE_TF=1 to make this a failure", msg)
	}
	return py
}

// python runs a repository script with the test's python.
func python(t *testing.T, py string, args ...string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TF_CPP_MIN_LOG_LEVEL=2", "CUDA_VISIBLE_DEVICES=")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", py, strings.Join(args, " "), err, out)
	}
	t.Logf("%s (%.1fs): %s", filepath.Base(args[0]), time.Since(start).Seconds(), strings.TrimSpace(string(out)))
}

// ---------------------------------------------------------------- the pipeline

// pipelineSpec is configs/demo.yaml (the quickstart) on Slurm: the published
// experiment's two stages, a frozen backbone and then all of it fine-tuned from the
// frozen stage's best checkpoint, with the trainer's small CPU backbone (ImageNet
// weights are out of reach offline, and a frozen MobileNetV2 without them learns
// nothing) on 64x64 images.
func pipelineSpec(dir, py string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`name: e2e
workdir: %s
executor: slurm
data:
  train: %s
  val: %s
  image_size: [64, 64]
  batch_size: 16
  cache: true
model:
  backbone: tinycnn
  weights: none
slurm:
  time: "00:15:00"
  gpus: 1             # the test cluster's fake GPUs: tensorflow-cpu finds none, so
  cpus_per_task: 2
  mem: 3000M
training:             # the stages may train on the CPU only because the spec says so
  cpu_fallback: true
container:
  runtime: none
  python: %s
stages:
  - name: frozen
    unfreeze: none
    epochs: %d
    optimizer: {name: adam, learning_rate: 1.0e-2}
  - name: finetune
    depends_on: [frozen]
    init_from: frozen
    unfreeze: all
    epochs: %d
    optimizer: {name: adam, learning_rate: 3.0e-3}
`, q(filepath.Join(dir, "runs")), q(filepath.Join(dir, "data", "train")), q(filepath.Join(dir, "data", "val")),
		q(py), frozenEpochs, finetuneEpochs)
}

func TestPipelineEndToEnd(t *testing.T) {
	testenv.RequireSlurm(t)
	py := requirePython(t)
	c := newCLI(t)
	dir := t.TempDir()
	began := time.Now()

	// The quickstart's deterministic two-class data set (circles vs squares).
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	spec := filepath.Join(dir, "e2e.yaml")
	if err := os.WriteFile(spec, []byte(pipelineSpec(dir, py)), 0o644); err != nil {
		t.Fatal(err)
	}

	// Submit on this machine (the local transport), then follow it with status.
	sub := c.submit(t, spec)
	t.Logf("submitted %s: jobs %+v", sub.RunID, sub.Jobs)
	trained := time.Now()
	st := c.waitEnded(t, sub.RunID, pipelineTimeout)
	t.Logf("pipeline ended after %.0fs", time.Since(trained).Seconds())
	for _, s := range st.Stages {
		if s.State != jobs.StateCompleted {
			t.Fatalf("stage %s is %s (exit %s), want COMPLETED\n%s", s.Name, s.State, s.ExitCode, c.stageLogs(t, sub.RunID, st))
		}
	}
	if st.State != jobs.StateCompleted {
		t.Errorf("run state %s, want COMPLETED", st.State)
	}
	for i, s := range st.Stages {
		if s.JobID != sub.Jobs[i].JobID || s.Epoch != s.Epochs || s.BestValAccuracy == nil {
			t.Errorf("status of stage %s: %+v (submitted as job %s)", s.Name, s, sub.Jobs[i].JobID)
		}
	}

	// The trainer wrote exactly where the layout constants (and so spec.resolved.json's
	// paths, and docs/run-directory.md) say, and nothing else.
	for _, s := range st.Stages {
		checkLayout(t, sub.RunDir, s.Name)
	}

	// Stage two started only after stage one ended (the run directory's markers).
	frozenEnd := marker(t, sub.RunDir, "frozen", "finished")
	fineStart := marker(t, sub.RunDir, "finetune", "started")
	if frozenEnd["state"] != "COMPLETED" || frozenEnd["exit_code"] != "0" || frozenEnd["job_id"] != sub.Jobs[0].JobID {
		t.Errorf("frozen's finished marker: %v", frozenEnd)
	}
	if fineStart["job_id"] != sub.Jobs[1].JobID {
		t.Errorf("finetune's started marker: %v", fineStart)
	}
	end, _ := strconv.ParseInt(frozenEnd["end_time"], 10, 64)
	begin, _ := strconv.ParseInt(fineStart["start_time"], 10, 64)
	if end == 0 || begin < end {
		t.Errorf("finetune started at %d, before frozen ended at %d", begin, end)
	}

	// Fetch the results on this machine; fetching again copies nothing.
	local := fetch(t, c, sub.RunID, filepath.Join(dir, "results-local"))
	checkResults(t, local, sub)
	again := fetch(t, c, sub.RunID, filepath.Join(dir, "results-local"))
	if again.Transfer.Files != 0 || again.Transfer.Bytes != 0 || again.Transfer.Checked == 0 {
		t.Errorf("second local fetch: %+v, want 0 files and 0 bytes copied, some verified", again.Transfer)
	}

	// The same run over ssh (skipped alone when the test sshd is not there) into another
	// folder: the same checks, and the same files byte for byte.
	t.Run("fetch over ssh", func(t *testing.T) {
		cfg, host := testenv.RequireSSH(t)
		c.useSSH(cfg)
		remote := fetch(t, c, sub.RunID, filepath.Join(dir, "results-ssh"), "--host", host)
		checkResults(t, remote, sub)
		sameFiles(t, local.Dir, remote.Dir)
		again := fetch(t, c, sub.RunID, filepath.Join(dir, "results-ssh"), "--host", host)
		if again.Transfer.Files != 0 || again.Transfer.Bytes != 0 || again.Transfer.Checked == 0 {
			t.Errorf("second ssh fetch: %+v, want 0 files and 0 bytes copied, some verified", again.Transfer)
		}
	})
	t.Logf("the whole test took %.0fs", time.Since(began).Seconds())
}

// checkLayout compares a finished trainer stage's files on the cluster with the layout:
// every file is one the layout names (checkpoints with the Keras version's extension,
// resume state under state/), and every file it names for a trained stage is there.
func checkLayout(t *testing.T, runDir, stage string) {
	t.Helper()
	ps := experiment.PathsOf(stage)
	named := map[string]bool{ps.Script: true, ps.Markers + "/" + experiment.StartedMarker: true,
		ps.Markers + "/" + experiment.FinishedMarker: true, ps.History: true, ps.Metrics: true,
		ps.Evaluation: true, ps.ModelInfo: true}
	var best, final bool
	err := filepath.WalkDir(filepath.Join(runDir, filepath.FromSlash(ps.Dir)), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(runDir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case named[rel]:
			delete(named, rel)
		case strings.HasPrefix(rel, ps.BestCheckpoint+"."):
			best = true
		case strings.HasPrefix(rel, ps.FinalCheckpoint+"."):
			final = true
		case strings.HasPrefix(rel, ps.State+"/"):
		default:
			t.Errorf("stage %s: %s is not a file the layout names", stage, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(named) > 0 || !best || !final {
		t.Errorf("stage %s: missing %v (best checkpoint %v, final %v)", stage, named, best, final)
	}
}

// marker reads a stage's .hpctl/<name> key=value file on the cluster (this machine).
func marker(t *testing.T, runDir, stage, name string) map[string]string {
	t.Helper()
	p := filepath.Join(runDir, experiment.StagesDir, stage, ".hpctl", name)
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

// fetch runs `hpctl [global...] fetch-results RUN --results-dir DIR -o json`.
func fetch(t *testing.T, c *cli, run, resultsDir string, global ...string) results.Fetched {
	t.Helper()
	start := time.Now()
	var f []results.Fetched
	c.jsonOut(t, &f, append(global, "fetch-results", run, "--results-dir", resultsDir)...)
	if len(f) != 1 || f[0].RunID != run {
		t.Fatalf("fetch-results %s: unexpected answer %+v", run, f)
	}
	t.Logf("fetch-results %s %s: %+v in %.1fs", strings.Join(global, " "), resultsDir, f[0].Transfer, time.Since(start).Seconds())
	return f[0]
}

// checkResults checks one fetched run folder as a user would read it.
func checkResults(t *testing.T, f results.Fetched, sub submitted) {
	t.Helper()
	epochs := map[string]int{"frozen": frozenEpochs, "finetune": finetuneEpochs}
	best := 0.0
	for _, stage := range []string{"frozen", "finetune"} {
		rows := readHistory(t, filepath.Join(f.Dir, experiment.StagesDir, stage, "history.csv"))
		if len(rows) != epochs[stage] {
			t.Errorf("%s: %s history has %d rows, want %d", f.Dir, stage, len(rows), epochs[stage])
		}
		for i, r := range rows {
			if r[0] != strconv.Itoa(i+1) {
				t.Errorf("%s history row %d has epoch %q", stage, i+1, r[0])
			}
			acc, err := strconv.ParseFloat(r[4], 64)
			if err != nil || acc < 0 || acc > 1 {
				t.Errorf("%s history row %d: val_accuracy %q", stage, i+1, r[4])
			}
			best = max(best, acc)
		}
	}
	if best < minValAccuracy {
		t.Errorf("best validation accuracy %.4f, want at least %.2f", best, minValAccuracy)
	}

	// The fine-tune stage started from the frozen stage's best checkpoint: the trainer
	// records the file it loaded and its SHA-256, which is that of the fetched file.
	var m struct {
		InitFrom       string `json:"init_from"`
		InitCheckpoint *struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"init_checkpoint"`
		EpochsRun int `json:"epochs_run"`
	}
	readJSON(t, filepath.Join(f.Dir, experiment.StagesDir, "finetune", "metrics.json"), &m)
	var frozen struct {
		Checkpoints struct {
			Best string `json:"best"`
		} `json:"checkpoints"`
	}
	readJSON(t, filepath.Join(f.Dir, experiment.StagesDir, "frozen", "metrics.json"), &frozen)
	switch {
	case m.InitFrom != "frozen" || m.InitCheckpoint == nil:
		t.Errorf("finetune's metrics.json: init_from %q, init_checkpoint %+v; want frozen's best checkpoint", m.InitFrom, m.InitCheckpoint)
	case frozen.Checkpoints.Best == "" || m.InitCheckpoint.Path != frozen.Checkpoints.Best:
		t.Errorf("finetune started from %s, frozen's best checkpoint is %q", m.InitCheckpoint.Path, frozen.Checkpoints.Best)
	default:
		if got := sha256File(t, filepath.Join(f.Dir, filepath.FromSlash(frozen.Checkpoints.Best))); got != m.InitCheckpoint.SHA256 {
			t.Errorf("finetune started from a file with sha256 %s; the fetched %s has %s", m.InitCheckpoint.SHA256, frozen.Checkpoints.Best, got)
		}
	}

	// The summary: both stages COMPLETED, with their jobs, epochs and best accuracy.
	var sum results.Fetched
	readJSON(t, filepath.Join(f.Dir, results.SummaryFile), &sum)
	if sum.RunID != sub.RunID || len(sum.Stages) != 2 {
		t.Fatalf("%s: run %q, %d stages", results.SummaryFile, sum.RunID, len(sum.Stages))
	}
	for i, s := range sum.Stages {
		if s.BestValAccuracy != nil {
			t.Logf("%s: best val accuracy %.4f (epoch %d of %d)", s.Name, *s.BestValAccuracy, s.BestEpoch, s.EpochsRun)
		}
		if s.Name != sub.Jobs[i].Stage || s.State != jobs.StateCompleted || s.JobID != sub.Jobs[i].JobID ||
			s.EpochsRun != epochs[s.Name] || s.BestValAccuracy == nil {
			t.Errorf("%s stage %d: %s %s job %s, %d epochs, best %v", results.SummaryFile, i, s.Name, s.State, s.JobID, s.EpochsRun, s.BestValAccuracy)
		}
	}
	if sum.Stages[1].InitFrom != "frozen" {
		t.Errorf("%s: finetune init_from %q", results.SummaryFile, sum.Stages[1].InitFrom)
	}

	// The plot is a PNG image of a sensible size.
	if f.Plot != filepath.Join(f.Dir, results.PlotFile) {
		t.Errorf("plot %q, want %s", f.Plot, filepath.Join(f.Dir, results.PlotFile))
	}
	pf, err := os.Open(filepath.Join(f.Dir, results.PlotFile))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(pf)
	pf.Close()
	if err != nil {
		t.Errorf("%s does not decode as PNG: %v", results.PlotFile, err)
	} else if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 100 {
		t.Errorf("%s is %dx%d pixels", results.PlotFile, b.Dx(), b.Dy())
	}

	// The same figure as SVG, titled with the run and the spec's backbone.
	if f.PlotSVG != filepath.Join(f.Dir, results.PlotSVGFile) {
		t.Errorf("svg plot %q, want %s", f.PlotSVG, filepath.Join(f.Dir, results.PlotSVGFile))
	}
	if svg, err := os.ReadFile(filepath.Join(f.Dir, results.PlotSVGFile)); err != nil {
		t.Error(err)
	} else if err := xml.Unmarshal(svg, new(struct{})); err != nil || !bytes.Contains(svg, []byte("Learning curves: "+sub.RunID)) ||
		!bytes.Contains(svg, []byte("backbone tinycnn")) {
		t.Errorf("%s: %v, or no title with the run id and backbone", results.PlotSVGFile, err)
	}

	// The report covers both stages and embeds the plot.
	rep, err := os.ReadFile(filepath.Join(f.Dir, results.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{sub.RunID, "frozen", "finetune", "COMPLETED", results.PlotFile} {
		if !bytes.Contains(rep, []byte(want)) {
			t.Errorf("%s does not mention %q:\n%s", results.ReportFile, want, rep)
		}
	}
}

// readHistory reads a history.csv, checks its header and returns its rows.
func readHistory(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	if strings.Join(recs[0], ",") != strings.Join(historyHeader, ",") {
		t.Errorf("%s: header %v, want %v", path, recs[0], historyHeader)
	}
	return recs[1:]
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// generated are the files fetch-results writes itself beside the copied ones; they
// name the host and the folder they were written in, so they differ between fetches.
var generated = map[string]bool{results.SummaryFile: true, results.ReportFile: true}

// sameFiles checks that two fetches of one run hold the same files with the same
// contents (SHA-256), apart from the summary and report.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	ha, hb := tree(t, a), tree(t, b)
	var names []string
	for n := range ha {
		names = append(names, n)
	}
	for n := range hb {
		if _, ok := ha[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	same := 0
	for _, n := range names {
		switch {
		case generated[n]:
		case ha[n] == "":
			t.Errorf("%s is in the ssh fetch only", n)
		case hb[n] == "":
			t.Errorf("%s is in the local fetch only", n)
		case ha[n] != hb[n]:
			t.Errorf("%s differs: sha256 %s (local) vs %s (ssh)", n, ha[n], hb[n])
		default:
			same++
		}
	}
	t.Logf("local and ssh fetches: %d identical files", same)
	if same < 10 {
		t.Errorf("only %d files compared", same)
	}
}

// tree maps every regular file under root (relative, slash-separated) to its SHA-256.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		m[filepath.ToSlash(rel)] = sha256File(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ---------------------------------------------------------------- one ssh login

// TestSSHOneLogin: submit, status (polled until the run ends), logs and fetch-results,
// each a separate hpctl process reaching the cluster over ssh, open one TCP connection
// to sshd in all: the first command's master, kept by ControlPersist, carries the rest.
// On a two-factor site that is one prompt.
func TestSSHOneLogin(t *testing.T) {
	testenv.RequireSlurm(t)
	cfg, host := testenv.RequireSSH(t)
	testenv.ExclusiveSSH(t)
	c := newCLI(t)
	c.useSSH(cfg)
	dir := t.TempDir()
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := filepath.Join(dir, "ssh.yaml")
	err := os.WriteFile(spec, []byte(fmt.Sprintf(`name: e2e-ssh
workdir: %[1]s/runs
executor: slurm
data: {train: %[1]s/data/train, val: %[1]s/data/val}
slurm: {time: "00:10:00", gpus: 0, cpus_per_task: 1, mem: 64M}
container: {runtime: none}
stages:
  - name: one
    command: [bash, -c, "echo ok from one"]
  - name: two
    depends_on: [one]
    command: [bash, -c, "echo ok from two"]
`, dir)), 0o644)
	if err != nil {
		t.Fatal(err)
	}

	before, calls := testenv.SSHConnectionCount(t), c.calls
	sub := c.submit(t, spec, "--host", host)
	st := c.waitEnded(t, sub.RunID, 3*time.Minute, "--host", host)
	if st.State != jobs.StateCompleted {
		t.Fatalf("run over ssh: %s\n%s", st.State, c.stageLogs(t, sub.RunID, st, "--host", host))
	}
	if out := c.must(t, "--host", host, "logs", sub.RunID, "--stage", "two"); out != "ok from two\n" {
		t.Errorf("logs over ssh: %q", out)
	}
	f := fetch(t, c, sub.RunID, filepath.Join(dir, "results"), "--host", host)
	logs, _ := filepath.Glob(filepath.Join(f.Dir, "logs", "e2e-ssh-one-*.out"))
	if len(logs) != 1 {
		t.Errorf("fetched logs: %v", logs)
	} else if b, _ := os.ReadFile(logs[0]); string(b) != "ok from one\n" {
		t.Errorf("fetched log %s: %q", logs[0], b)
	}
	n := testenv.SSHConnectionCount(t) - before
	t.Logf("%d hpctl processes over ssh (submit, status until the run ended, logs, fetch-results): %d connection(s) to sshd", c.calls-calls, n)
	if n != 1 {
		t.Errorf("submit, status, logs and fetch-results over ssh opened %d connections, want 1 (sshd log %s)", n, testenv.SSHLogPath())
	}
}
