package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
)

// The real container runtimes (scripts/containers-up.sh): each runs the two-stage
// pipeline with the real trainer in the trainer's image on the test cluster; a USR2 to
// the batch shell reaches the trainer in the container, which saves and exits 99, and
// the job is requeued and resumes without repeating an epoch; `hpctl cancel` leaves no
// container behind.

func TestContainerPodmanRootful(t *testing.T) { containerPipeline(t, testenv.PodmanRootful) }
func TestContainerDocker(t *testing.T)        { containerPipeline(t, testenv.Docker) }
func TestContainerPodmanRootless(t *testing.T) {
	containerPipeline(t, testenv.PodmanRootless)
}

// usr2Epochs is the frozen stage's length in the USR2 run: long enough that the signal,
// sent once the first epoch is in history.csv, comes while it still trains.
const usr2Epochs = 12

func containerSpec(dir, runtime, image string, frozen int) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`name: ctr-%s
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
  time: "00:20:00"
  gpus: 0
  cpus_per_task: 2
  mem: 3000M
  signal_before: 120
  requeue: true
container:
  runtime: %s
  image: %s
  python: python3
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
`, runtime, q(filepath.Join(dir, "runs")), q(filepath.Join(dir, "data", "train")), q(filepath.Join(dir, "data", "val")),
		q(runtime), q(image), frozen, finetuneEpochs)
}

// containerNames lists the containers of the run (running or not) under mode.
func containerNames(t *testing.T, mode, runID string) []string {
	t.Helper()
	var argv []string
	switch mode {
	case testenv.Docker:
		argv = []string{"docker"}
	case testenv.PodmanRootful:
		argv = []string{"podman"}
	case testenv.PodmanRootless:
		argv = []string{"runuser", "-u", testenv.RootlessUser(), "--", "podman"}
	}
	argv = append(argv, "ps", "-a", "--format", "{{.Names}}")
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	var names []string
	for _, n := range strings.Fields(string(out)) {
		if strings.HasPrefix(n, "hpctl-"+runID+"-") {
			names = append(names, n)
		}
	}
	return names
}

func containerPipeline(t *testing.T, mode string) {
	testenv.RequireSlurm(t)
	image := testenv.RequireContainer(t, mode)
	py := requirePython(t)
	runtime := "podman"
	if mode == testenv.Docker {
		runtime = "docker"
	}
	c := newCLI(t)
	dir := t.TempDir()
	if mode == testenv.PodmanRootless {
		dir = asUser(t, c)
	}
	began := time.Now()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	if mode == testenv.PodmanRootless {
		chown(t, dir)
	}
	spec := filepath.Join(dir, "ctr.yaml")
	if err := os.WriteFile(spec, []byte(containerSpec(dir, runtime, image, usr2Epochs)), 0o644); err != nil {
		t.Fatal(err)
	}

	// The pipeline, with a USR2 in the middle of the frozen stage.
	sub := c.submit(t, spec)
	frozenJob := sub.Jobs[0].JobID
	history := filepath.Join(sub.RunDir, experiment.StagesDir, "frozen", "history.csv")
	waitFor(t, "the frozen stage's first epoch", 6*time.Minute, func() bool {
		b, _ := os.ReadFile(history)
		return strings.Count(string(b), "\n") >= 2
	})
	t.Logf("%.0fs: first epoch done; containers %v", time.Since(began).Seconds(), containerNames(t, mode, sub.RunID))
	if out, err := exec.Command("scancel", "--batch", "--signal=USR2", frozenJob).CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	fin := filepath.Join(sub.RunDir, experiment.StagesDir, "frozen", ".hpctl", "finished")
	waitFor(t, "the frozen stage marked REQUEUED with exit 99", 3*time.Minute, func() bool {
		b, _ := os.ReadFile(fin)
		m := experiment.ParseMarker(b)
		return m["state"] == "REQUEUED" && m["exit_code"] == "99"
	})
	t.Logf("%.0fs: USR2 reached the trainer, exit 99, requeued", time.Since(began).Seconds())
	st := c.waitEnded(t, sub.RunID, pipelineTimeout)
	for _, s := range st.Stages {
		if s.State != jobs.StateCompleted {
			t.Fatalf("stage %s is %s (exit %s), want COMPLETED\n%s", s.Name, s.State, s.ExitCode, c.stageLogs(t, sub.RunID, st))
		}
	}
	t.Logf("%.0fs: pipeline COMPLETED", time.Since(began).Seconds())
	if m := marker(t, sub.RunDir, "frozen", "started"); m["attempt"] != "2" || m["job_id"] != frozenJob {
		t.Errorf("frozen's started marker %v: want attempt 2 of job %s", m, frozenJob)
	}
	logs, _ := filepath.Glob(filepath.Join(sub.RunDir, "logs", "*"+frozenJob+"*"))
	var text strings.Builder
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		text.Write(b)
	}
	if !strings.Contains(text.String(), "trainer: SIGUSR2") {
		t.Errorf("the frozen job's logs do not show the trainer's SIGUSR2 line:\n%s", tail(text.String(), 40))
	}
	for stage, n := range map[string]int{"frozen": usr2Epochs, "finetune": finetuneEpochs} {
		rows := readHistory(t, filepath.Join(sub.RunDir, experiment.StagesDir, stage, "history.csv"))
		var epochs []string
		for _, r := range rows {
			epochs = append(epochs, r[0])
		}
		want := make([]string, n)
		for i := range want {
			want[i] = strconv.Itoa(i + 1)
		}
		if strings.Join(epochs, ",") != strings.Join(want, ",") {
			t.Errorf("%s's history epochs %v, want %v (each once)", stage, epochs, want)
		}
	}
	if names := containerNames(t, mode, sub.RunID); len(names) > 0 {
		t.Errorf("containers left after the run: %v", names)
	}

	// Cancel while the trainer runs: no container is left.
	sub2 := c.submit(t, spec)
	waitFor(t, "the container of the second run", 4*time.Minute, func() bool {
		return len(containerNames(t, mode, sub2.RunID)) > 0
	})
	t.Logf("%.0fs: second run's container %v; cancelling", time.Since(began).Seconds(), containerNames(t, mode, sub2.RunID))
	c.must(t, "cancel", sub2.RunID)
	waitFor(t, "no container of the cancelled run", time.Minute, func() bool {
		return len(containerNames(t, mode, sub2.RunID)) == 0
	})
	// Slurm ends the cancelled job a moment after its container is gone.
	if st := c.waitEnded(t, sub2.RunID, 2*time.Minute); st.State != jobs.StateCancelled {
		t.Errorf("cancelled run is %s", st.State)
	}
	t.Logf("%s: the whole test took %.0fs", mode, time.Since(began).Seconds())
}

// waitFor polls cond every half second until it holds, failing the test after limit.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(500 * time.Millisecond) {
		if time.Since(start) > limit {
			t.Fatalf("%s: not after %s", what, limit)
		}
	}
}

// asUser makes c run hpctl as the rootless user, with a state and a working directory
// that user owns, and returns a directory for the test's files that it owns too.
func asUser(t *testing.T, c *cli) string {
	t.Helper()
	name := testenv.RootlessUser()
	base, err := os.MkdirTemp("/tmp", "hpctl-e2e-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"state", "config", "files"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	chown(t, base)
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	// The test binary's directory is the test's own (mode 0700): a copy the user can run.
	bin, err := os.ReadFile(c.bin)
	if err != nil {
		t.Fatal(err)
	}
	c.bin = filepath.Join(base, "hpctl")
	if err := os.WriteFile(c.bin, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	c.dir = filepath.Join(base, "files")
	c.env = append(c.env, "XDG_STATE_HOME="+filepath.Join(base, "state"), "XDG_CONFIG_HOME="+filepath.Join(base, "config"),
		"HOME="+u.HomeDir, "USER="+name, "LOGNAME="+name)
	c.asUser = name
	return c.dir
}

// chown gives the rootless user everything under dir.
func chown(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("chown", "-R", testenv.RootlessUser()+":", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
}

// TestContainerLocalExecutor: the same image under rootful podman and docker with the
// local executor (no Slurm): the pipeline completes, and `hpctl cancel` of a running stage
// leaves no container.
func TestContainerLocalExecutor(t *testing.T) {
	py := requirePython(t)
	for _, mode := range []string{testenv.PodmanRootful, testenv.Docker} {
		t.Run(mode, func(t *testing.T) {
			image := testenv.RequireContainer(t, mode)
			c := newCLI(t)
			dir := t.TempDir()
			began := time.Now()
			python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
			src := containerSpec(dir, mode, image, frozenEpochs)
			src = strings.Replace(src, "executor: slurm", "executor: local", 1)
			spec := filepath.Join(dir, "ctr.yaml")
			if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			sub := c.submit(t, spec)
			st := c.waitEnded(t, sub.RunID, pipelineTimeout)
			for _, s := range st.Stages {
				if s.State != jobs.StateCompleted {
					t.Fatalf("stage %s is %s (exit %s), want COMPLETED\n%s", s.Name, s.State, s.ExitCode, c.stageLogs(t, sub.RunID, st))
				}
			}
			t.Logf("%.0fs: pipeline COMPLETED on the local executor", time.Since(began).Seconds())
			if names := containerNames(t, mode, sub.RunID); len(names) > 0 {
				t.Errorf("containers left after the run: %v", names)
			}
			sub2 := c.submit(t, spec)
			waitFor(t, "the container of the second run", 4*time.Minute, func() bool {
				return len(containerNames(t, mode, sub2.RunID)) > 0
			})
			c.must(t, "cancel", sub2.RunID)
			waitFor(t, "no container of the cancelled run", time.Minute, func() bool {
				return len(containerNames(t, mode, sub2.RunID)) == 0
			})
			t.Logf("%s on the local executor: the whole test took %.0fs", mode, time.Since(began).Seconds())
		})
	}
}
