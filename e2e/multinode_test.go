package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
)

// accuracyTolerance is how far the two-node run's final validation accuracy may be from
// the one-node run's with the same global batch and seed. The workers see the batches in
// another order (each takes every other batch) and average gradients in another order,
// so the runs are not bit for bit the same; on the demo data both end near 1.0.
const accuracyTolerance = 0.10

// nodesSpec is the two-stage demo pipeline on the two-node test cluster (partition two,
// nodes n1 and n2 on this machine), on the CPU: nodes nodes, batch the per-worker batch.
func nodesSpec(dir, py, name string, nodes, batch, frozenEpochs int) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`name: %s
workdir: %s
executor: slurm
seed: 7
data:
  train: %s
  val: %s
  image_size: [64, 64]
  batch_size: %d
  cache: true
model:
  backbone: tinycnn
  weights: none
slurm:
  partition: %s
  nodes: %d
  time: "00:15:00"
  gpus: 0
  cpus_per_task: 1
  mem: 1500M
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
    epochs: 3
    optimizer: {name: adam, learning_rate: 3.0e-3}
`, name, q(filepath.Join(dir, "runs-"+name)), q(filepath.Join(dir, "data", "train")), q(filepath.Join(dir, "data", "val")),
		batch, testenv.TwoNodePartition, nodes, q(py), frozenEpochs)
}

// TestTwoNodePipeline runs the two-stage pipeline with slurm.nodes: 2 on the two-node
// cluster (scripts/slurm-up-2nodes.sh) beside the same pipeline on one node with the same
// global batch (8 per worker x 2 = 16) and seed: both complete, the two trainers of each
// stage ran on different nodes (their own logs say which), only the chief wrote the
// history (one row per epoch), and the final validation accuracies agree within
// accuracyTolerance. It also reports the training throughput of two nodes over one.
func TestTwoNodePipeline(t *testing.T) {
	testenv.RequireTwoNodes(t)
	py := requirePython(t)
	c := newCLI(t)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))

	specs := map[string]string{}
	for name, nb := range map[string][2]int{"two": {2, 8}, "one": {1, 16}} {
		specs[name] = filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(specs[name], []byte(nodesSpec(dir, py, "nodes-"+name, nb[0], nb[1], 2)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	two := c.submit(t, specs["two"])
	one := c.submit(t, specs["one"])
	t.Logf("submitted %s (2 nodes) and %s (1 node)", two.RunID, one.RunID)
	for _, sub := range []submitted{two, one} {
		st := c.waitEnded(t, sub.RunID, pipelineTimeout)
		for _, s := range st.Stages {
			if s.State != jobs.StateCompleted {
				t.Fatalf("run %s: stage %s is %s (exit %s)\n%s\n%s", sub.RunID, s.Name, s.State, s.ExitCode,
					c.stageLogs(t, sub.RunID, st), taskLogs(t, sub.RunDir))
			}
			if s.Epoch != s.Epochs {
				t.Errorf("run %s: stage %s at epoch %d of %d", sub.RunID, s.Name, s.Epoch, s.Epochs)
			}
			// status names the nodes the stage ran on: both for the two-node run.
			if want := map[string]string{two.RunID: "n[1-2]"}[sub.RunID]; want != "" && s.Node != want {
				t.Errorf("run %s: status says stage %s ran on %q, want %q", sub.RunID, s.Name, s.Node, want)
			}
		}
	}

	var ratio []string
	for i, stage := range []string{"frozen", "finetune"} {
		// One trainer per node: each task's own log names its node.
		nodes := map[string]bool{}
		for task := 0; task < 2; task++ {
			log := experiment.TaskLogPath(two.RunDir, jobName(t, two.RunDir, stage), two.Jobs[i].JobID, task, "err")
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatalf("stage %s, task %d: %v\n%s", stage, task, err, taskLogs(t, two.RunDir))
			}
			m := regexp.MustCompile(fmt.Sprintf(`worker %d of 2 \(\S+\), \d+ replicas in sync; node (\S+)`, task)).FindSubmatch(b)
			if m == nil {
				t.Fatalf("stage %s, task %d: its log does not say where it ran:\n%s", stage, task, tail(string(b), 20))
			}
			nodes[string(m[1])] = true
		}
		if len(nodes) != 2 {
			t.Errorf("stage %s: both tasks ran on %v, want two different nodes", stage, nodes)
		}
		// hpctl logs --task K prints that task's own log.
		if out := c.must(t, "logs", two.RunID, "--stage", stage, "--task", "1", "--err"); !strings.Contains(out, "worker 1 of 2") {
			t.Errorf("hpctl logs --stage %s --task 1 --err:\n%s", stage, tail(out, 10))
		}

		// The chief alone wrote the history: one row per epoch.
		rows := readHistory(t, filepath.Join(two.RunDir, "stages", stage, "history.csv"))
		epochs := map[string]int{"frozen": 2, "finetune": 3}[stage]
		if len(rows) != epochs {
			t.Errorf("stage %s: history has %d rows, want %d epochs:\n%v", stage, len(rows), epochs, rows)
		}
		for e, r := range rows {
			if r[0] != fmt.Sprint(e+1) {
				t.Errorf("stage %s: history row %d is epoch %s", stage, e+1, r[0])
			}
		}

		var m2, m1 struct {
			Nodes           int      `json:"nodes"`
			GlobalBatch     int      `json:"global_batch_size"`
			FinalValAcc     *float64 `json:"final_val_accuracy"`
			ImagesPerSecond *float64 `json:"train_images_per_second"`
		}
		readJSON(t, filepath.Join(two.RunDir, "stages", stage, "metrics.json"), &m2)
		readJSON(t, filepath.Join(one.RunDir, "stages", stage, "metrics.json"), &m1)
		if m2.Nodes != 2 || m2.GlobalBatch != 16 || m1.Nodes != 1 || m1.GlobalBatch != 16 {
			t.Errorf("stage %s: nodes %d and %d, global batch %d and %d; want 2 and 1, 16 and 16",
				stage, m2.Nodes, m1.Nodes, m2.GlobalBatch, m1.GlobalBatch)
		}
		if m2.FinalValAcc == nil || m1.FinalValAcc == nil || m2.ImagesPerSecond == nil || m1.ImagesPerSecond == nil {
			t.Fatalf("stage %s: metrics lack accuracy or throughput: %+v %+v", stage, m2, m1)
		}
		t.Logf("stage %s: final val accuracy %.3f on two nodes, %.3f on one", stage, *m2.FinalValAcc, *m1.FinalValAcc)
		if stage == "finetune" && math.Abs(*m2.FinalValAcc-*m1.FinalValAcc) > accuracyTolerance {
			t.Errorf("stage %s: final val accuracy %.3f on two nodes, %.3f on one: more than %.2f apart",
				stage, *m2.FinalValAcc, *m1.FinalValAcc, accuracyTolerance)
		}
		ratio = append(ratio, fmt.Sprintf("%s %.2f (%.0f/%.0f images/s)", stage, *m2.ImagesPerSecond / *m1.ImagesPerSecond, *m2.ImagesPerSecond, *m1.ImagesPerSecond))
	}
	// A figure, not an assertion: both "nodes" share this machine's cores.
	t.Logf("training throughput, two nodes over one: %s", strings.Join(ratio, ", "))
}

// jobName is the Slurm job name of a stage, from its job script.
func jobName(t *testing.T, runDir, stage string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, experiment.PathsOf(stage).Script))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^#SBATCH --job-name=(\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no job name in %s's job script", stage)
	}
	return string(m[1])
}

// taskLogs is the tail of every log of a run (the job's and each task's), for failure
// messages.
func taskLogs(t *testing.T, runDir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(runDir, experiment.LogsDir, "*-*.*"))
	var b strings.Builder
	for _, f := range files {
		data, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "--- %s:\n%s", filepath.Base(f), tail(string(data), 20))
	}
	return b.String()
}

// twoNodeRun submits the two-node pipeline with a long first stage and waits until that
// stage has finished epochs epochs (status reads the chief's history).
func twoNodeRun(t *testing.T, name string, epochs int) (*cli, submitted) {
	t.Helper()
	testenv.RequireTwoNodes(t)
	py := requirePython(t)
	c := newCLI(t)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	spec := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(spec, []byte(nodesSpec(dir, py, name, 2, 8, 8)), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := c.submit(t, spec)
	for start := time.Now(); ; time.Sleep(pollEvery) {
		st := c.status(t, sub.RunID)
		if s := st.Stages[0]; s.State == jobs.StateRunning && s.Epoch >= epochs {
			break
		} else if s.State.Terminal() || time.Since(start) > pipelineTimeout {
			t.Fatalf("stage frozen is %s at epoch %d\n%s", s.State, s.Epoch, taskLogs(t, sub.RunDir))
		}
	}
	return c, sub
}

// TestTwoNodePreemption: USR2 to the batch shell of a two-node stage (what
// --signal=B:USR2 sends before the time limit) reaches both trainers; they agree to stop
// at the same step, exit 99, and the job is requeued; the next attempt resumes both from
// the chief's last saved epoch, and the history has every epoch once.
func TestTwoNodePreemption(t *testing.T) {
	c, sub := twoNodeRun(t, "nodes-usr2", 2)
	job := sub.Jobs[0].JobID
	if out, err := exec.Command("scancel", "--batch", "--signal=USR2", job).CombinedOutput(); err != nil {
		t.Fatalf("scancel: %v %s", err, out)
	}
	fin := filepath.Join(sub.RunDir, experiment.PathsOf("frozen").Markers, experiment.FinishedMarker)
	for start := time.Now(); ; time.Sleep(500 * time.Millisecond) {
		b, _ := os.ReadFile(fin)
		if m := experiment.ParseMarker(b); m["state"] == "REQUEUED" && m["exit_code"] == "99" {
			break
		} else if time.Since(start) > 2*time.Minute {
			t.Fatalf("stage frozen was not requeued; finished marker %q\n%s", b, taskLogs(t, sub.RunDir))
		}
	}
	// Both workers stopped at the same step, by a common decision.
	name := jobName(t, sub.RunDir, "frozen")
	stops := map[string]bool{}
	for task := 0; task < 2; task++ {
		b, err := os.ReadFile(experiment.TaskLogPath(sub.RunDir, name, job, task, "err"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`all workers stop at (epoch \d+, batch \S+)`).FindSubmatch(b)
		if m == nil || !strings.Contains(string(b), "preempted (SIGUSR2)") {
			t.Fatalf("task %d did not stop on USR2:\n%s", task, tail(string(b), 20))
		}
		stops[string(m[1])] = true
	}
	if len(stops) != 1 {
		t.Errorf("the workers stopped at different steps: %v", stops)
	}
	// A requeued job waits about two minutes before it may start again (BeginTime, as
	// long as Slurm keeps the old allocation's credential revoked): starting it sooner
	// with scontrol update StartTime=now fails it ("Job credential revoked"), so wait.
	st := c.waitEnded(t, sub.RunID, pipelineTimeout)
	for _, s := range st.Stages {
		if s.State != jobs.StateCompleted {
			t.Fatalf("stage %s is %s after the requeue\n%s", s.Name, s.State, taskLogs(t, sub.RunDir))
		}
	}
	rows := readHistory(t, filepath.Join(sub.RunDir, "stages", "frozen", "history.csv"))
	var epochs []string
	for _, r := range rows {
		epochs = append(epochs, r[0])
	}
	if strings.Join(epochs, ",") != "1,2,3,4,5,6,7,8" {
		t.Errorf("frozen's history epochs %v, want 1 to 8 once each", epochs)
	}
	var m struct {
		Attempts int `json:"attempts"`
	}
	readJSON(t, filepath.Join(sub.RunDir, "stages", "frozen", "metrics.json"), &m)
	if m.Attempts != 2 {
		t.Errorf("frozen ran %d attempts, want 2", m.Attempts)
	}
	// Both workers of the second attempt resumed from the same epoch.
	resumed := map[string]bool{}
	for task := 0; task < 2; task++ {
		b, _ := os.ReadFile(experiment.TaskLogPath(sub.RunDir, name, job, task, "err"))
		if m := regexp.MustCompile(`resuming after epoch (\d+)`).FindSubmatch(b); m != nil {
			resumed[string(m[1])] = true
		} else {
			t.Errorf("task %d's log does not say it resumed:\n%s", task, tail(string(b), 20))
		}
	}
	if len(resumed) != 1 {
		t.Errorf("the workers resumed from different epochs: %v", resumed)
	}
}

// TestTwoNodeWorkerKilled: a worker SIGKILLed mid-epoch fails the stage within a bounded
// time (srun --kill-on-bad-exit ends the chief), never a hang, and status shows which
// task died (the stage's log tail holds srun's line for it).
func TestTwoNodeWorkerKilled(t *testing.T) {
	c, sub := twoNodeRun(t, "nodes-kill", 1)
	pid := trainerPid(t, sub.RunDir, "1")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	const bound = 90 * time.Second
	for ; ; time.Sleep(pollEvery) {
		st := c.status(t, sub.RunID)
		s := st.Stages[0]
		if s.State == jobs.StateFailed {
			t.Logf("stage failed %.1fs after the kill; log tail:\n%s", time.Since(killed).Seconds(), s.LogTail)
			if !regexp.MustCompile(`task 1: Killed`).MatchString(s.LogTail) {
				t.Errorf("status does not say which task died; log tail of %s:\n%s", s.Log, s.LogTail)
			}
			break
		}
		if s.State.Terminal() || time.Since(killed) > bound {
			t.Fatalf("stage frozen is %s %s after a worker was killed; want FAILED within %s\n%s",
				s.State, time.Since(killed).Round(time.Second), bound, taskLogs(t, sub.RunDir))
		}
	}
}

// trainerPid finds the trainer of task task of a run on this machine: the process whose
// environment has the run's HPCTL_RUN_DIR and that SLURM_PROCID, running train.py.
func trainerPid(t *testing.T, runDir, task string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if !strings.Contains(string(cmd), "train.py") {
			continue
		}
		env, _ := os.ReadFile(filepath.Join(p, "environ"))
		vars := strings.Split(string(env), "\x00")
		if slices.Contains(vars, "HPCTL_RUN_DIR="+runDir) && slices.Contains(vars, "SLURM_PROCID="+task) {
			pid, err := strconv.Atoi(filepath.Base(p))
			if err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no trainer of task %s of %s on this machine", task, runDir)
	return 0
}

// TestTwoNodePreflight: the pre-flight checks slurm.nodes against the partition's nodes on
// the real two-node cluster: 2 pass, 3 are refused with the spec position, before
// anything is staged or queued.
func TestTwoNodePreflight(t *testing.T) {
	testenv.RequireTwoNodes(t)
	c := newCLI(t)
	dir := t.TempDir()
	for _, d := range []string{"train/a", "train/b", "val/a", "val/b"} {
		if err := os.MkdirAll(filepath.Join(dir, "data", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{2, 3} {
		spec := filepath.Join(dir, fmt.Sprintf("n%d.yaml", n))
		if err := os.WriteFile(spec, []byte(nodesSpec(dir, "python3", fmt.Sprintf("pre%d", n), n, 8, 2)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errs, code := c.run(t, "submit", "--dry-run", spec)
		switch {
		case n == 2 && code != 0:
			t.Errorf("2 nodes: exit %d\n%s%s", code, out, errs)
		case n == 3 && (code == 0 || !regexp.MustCompile(`ask for 3 nodes .*partition two has 2 such \(slurm\.nodes at \S+n3\.yaml:\d+:\d+\)`).MatchString(errs)):
			t.Errorf("3 nodes on a two-node partition: exit %d, want a refusal at slurm.nodes:\n%s%s", code, out, errs)
		}
	}
	if runs, _ := filepath.Glob(filepath.Join(dir, "runs-*", "*")); len(runs) != 0 {
		t.Errorf("a dry run staged %v", runs)
	}
}
