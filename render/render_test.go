package render

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/golden"
	"github.com/hpctl/hpctl/transport"
)

var images = map[string]string{
	"pyxis":       "nvcr.io#nvidia/tensorflow:22.02-tf2-py3",
	"apptainer":   "$HOME/sif/tensorflow-22.02-tf2-py3.sif",
	"singularity": "docker://nvcr.io/nvidia/tensorflow:22.02-tf2-py3",
	"docker":      "nvcr.io/nvidia/tensorflow:22.02-tf2-py3",
	"podman":      "nvcr.io/nvidia/tensorflow:22.02-tf2-py3",
	"none":        "",
}

// TestGolden pins the script of every runtime, and checks each with bash -n and shellcheck.
func TestGolden(t *testing.T) {
	// The built-in runtimes (images' keys), not containers.Names(): newruntime_test.go
	// registers one more, which has no golden script.
	for _, rt := range slices.Sorted(maps.Keys(images)) {
		l := parse(t, "testdata/full.yaml")
		l.Spec.Container.Runtime = rt
		l.Spec.Container.Image = images[rt]
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		p := newPlan(t, l.Spec, "/home/u", "/home/u")
		for _, st := range p.Stages {
			if st.Name == "finetune" && rt != "pyxis" {
				continue
			}
			s, err := Script(p, st)
			if err != nil {
				t.Fatal(err)
			}
			name := rt + "-" + st.Name
			golden.RequireEqual(t, name, s)
			lint(t, name, s)
		}
	}
	l := parse(t, "testdata/minimal.yaml")
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	p := newPlan(t, l.Spec, "/home/u", "/home/u")
	s, err := Script(p, p.Stages[0])
	if err != nil {
		t.Fatal(err)
	}
	golden.RequireEqual(t, "minimal", s)
	lint(t, "minimal", s)
}

func TestRender(t *testing.T) {
	l := parse(t, "../configs/urban.yaml")
	p := planOf(t, l, "/home/u", "/home/u")
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]transport.File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	if !bytes.Equal(byPath["spec.yaml"].Data, l.Source) {
		t.Error("spec.yaml is not the source as given")
	}
	resolved, _ := p.ResolvedJSON()
	if !bytes.Equal(byPath["spec.resolved.json"].Data, resolved) {
		t.Error("spec.resolved.json is not the plan's resolved spec")
	}
	if _, ok := byPath["logs/.keep"]; !ok {
		t.Error("no logs/ directory: Slurm cannot open the job's output without it")
	}
	for _, want := range []string{"trainer/train.py", "trainer/weights.json"} {
		if _, ok := byPath[want]; !ok {
			t.Errorf("no %s among %d files", want, len(files))
		}
	}
	for _, st := range []string{"frozen", "finetune"} {
		f, ok := byPath["stages/"+st+"/job.sh"]
		if !ok || f.Mode != 0o755 || !bytes.HasPrefix(f.Data, []byte("#!/bin/bash\n")) {
			t.Errorf("stages/%s/job.sh: present %v, mode %v", st, ok, f.Mode)
		}
	}
	if !strings.Contains(string(byPath["stages/finetune/job.sh"].Data), "--stage finetune") {
		t.Error("the finetune script does not run the finetune stage")
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "parent", "run")
	files := []transport.File{{Path: "a.txt", Data: []byte("a")}, {Path: "stages/s/job.sh", Mode: 0o755, Data: []byte("#!/bin/bash\n")}}
	if err := WriteDir(files, dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "stages/s/job.sh"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("job.sh: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "a" {
		t.Errorf("a.txt = %q", b)
	}
	// Into an existing directory: files are replaced, other files stay.
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir([]transport.File{{Path: "a.txt", Data: []byte("b")}}, dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "b" {
		t.Errorf("a.txt = %q after rewrite", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the run directory: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Error(err)
	}
	// A bad path fails before anything is written.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := WriteDir([]transport.File{{Path: "ok"}, {Path: "../escape"}}, bad); err == nil {
		t.Error("a path outside the directory was accepted")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a failed write left %s: %v", bad, err)
	}
}

// TestWriteDirInterrupted: a write that fails half-way leaves nothing under the final name.
func TestWriteDirInterrupted(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "run")
	// A file where a directory must go makes the second file fail.
	files := []transport.File{{Path: "x", Data: []byte("1")}, {Path: "x/y", Data: []byte("2")}}
	if err := WriteDir(files, dir); err == nil {
		t.Fatal("expected an error")
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// runStage runs a rendered stage script with bash outside Slurm, with stand-ins first on
// PATH; it returns the exit code.
type stageRun struct {
	t               *testing.T
	runDir, argvDir string
	env             []string
}

func newStageRun(t *testing.T, runtime string, command []string) (*stageRun, *experiment.Plan) {
	t.Helper()
	requireTool(t, "bash")
	tmp := t.TempDir()
	l := parse(t, "testdata/minimal.yaml")
	l.Spec.Workdir = filepath.Join(tmp, "runs")
	l.Spec.Container.Runtime = runtime
	l.Spec.Container.Image = images[runtime]
	l.Spec.Stages[0].Command = command
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(tmp, "home")
	p := planOf(t, l, home, tmp)
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(files, p.RunDir); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "bin")
	standIns(t, bin, launchers...)
	r := &stageRun{t: t, runDir: p.RunDir, argvDir: filepath.Join(tmp, "argv")}
	if err := os.MkdirAll(r.argvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.env = []string{"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + home, "HPCTL_ARGV_DIR=" + r.argvDir,
		"HPCTL_JOB_ID=job-7", "CUDA_VISIBLE_DEVICES=0", "LANG=C.UTF-8"}
	return r, p
}

func (r *stageRun) start(stage string, extraEnv ...string) *exec.Cmd {
	cmd := exec.Command("bash", experiment.ScriptPath(r.runDir, stage))
	cmd.Dir = filepath.Dir(r.runDir)
	cmd.Env = append(append([]string{}, r.env...), extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		if r.t.Failed() {
			r.t.Logf("script output:\n%s", out.String())
		}
	})
	return cmd
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func (r *stageRun) markers(stage string) (started, finished map[string]string) {
	d := filepath.Join(experiment.StageDir(r.runDir, stage), experiment.MarkerDir)
	return readMarker(r.t, filepath.Join(d, experiment.StartedMarker)), readMarker(r.t, filepath.Join(d, experiment.FinishedMarker))
}

func TestScriptOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		standin string
		env     []string
		code    int
		state   string
		attempt string
		jobID   string
	}{
		{"completed", "", nil, 0, "COMPLETED", "1", "job-7"},
		{"failed", "exit 3", nil, 3, "FAILED", "1", "job-7"},
		{"slurm ids", "exit 2", []string{"SLURM_JOB_ID=4242", "SLURM_RESTART_COUNT=2"}, 2, "FAILED", "3", "4242"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := newStageRun(t, "none", []string{"python3", "-c", "pass"})
			cmd := r.start("hello", append(tt.env, "HPCTL_STANDIN="+tt.standin)...)
			if code := exitCode(cmd.Wait()); code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			started, finished := r.markers("hello")
			if started["job_id"] != tt.jobID || started["attempt"] != tt.attempt || started["host"] == "" || started["start_time"] == "" {
				t.Errorf("started = %v", started)
			}
			if finished["state"] != tt.state || finished["exit_code"] != strconv.Itoa(tt.code) || finished["job_id"] != tt.jobID || finished["end_time"] == "" {
				t.Errorf("finished = %v", finished)
			}
		})
	}
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUSR2Requeue: USR2 to the batch shell reaches the child; its exit 99 requeues the job.
func TestUSR2Requeue(t *testing.T) {
	r, _ := newStageRun(t, "none", []string{"python3", "train"})
	cmd := r.start("hello", "HPCTL_STANDIN=usr2", "SLURM_JOB_ID=77")
	waitFor(t, filepath.Join(r.argvDir, "ready"))
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(cmd.Wait()); code != 99 {
		t.Errorf("exit code %d, want 99", code)
	}
	_, finished := r.markers("hello")
	if finished["state"] != "REQUEUED" || finished["exit_code"] != "99" {
		t.Errorf("finished = %v", finished)
	}
	rec := records(t, r.argvDir)
	if got := rec["scontrol"]; len(got) != 1 || strings.Join(got[0], " ") != "scontrol requeue 77" {
		t.Errorf("scontrol calls = %q", got)
	}
}

// TestTermCancelled: scancel's TERM reaches the child and the stage ends CANCELLED.
func TestTermCancelled(t *testing.T) {
	r, _ := newStageRun(t, "none", []string{"python3", "train"})
	cmd := r.start("hello", "HPCTL_STANDIN=usr2")
	waitFor(t, filepath.Join(r.argvDir, "ready"))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(cmd.Wait()); code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	_, finished := r.markers("hello")
	if finished["state"] != "CANCELLED" {
		t.Errorf("finished = %v", finished)
	}
	if rec := records(t, r.argvDir); len(rec["scontrol"]) != 0 {
		t.Errorf("a cancelled job was requeued: %q", rec["scontrol"])
	}
}

// TestUSR2BeforeTheCommandStarts: a job whose time limit is near as it starts gets USR2
// at once. Without a trap installed first, bash died of it (exit 140, no marker, no log).
// A mkdir stand-in, the script's first command, sends USR2 to the batch shell, so the
// signal comes deterministically before the launch line.
func TestUSR2BeforeTheCommandStarts(t *testing.T) {
	r, _ := newStageRun(t, "none", []string{"python3", "train"})
	bin := filepath.Join(filepath.Dir(r.argvDir), "bin")
	early := "#!/bin/bash\nkill -USR2 \"$PPID\"\nexec /bin/mkdir \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "mkdir"), []byte(early), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := r.start("hello", "HPCTL_STANDIN=usr2", "SLURM_JOB_ID=78")
	if code := exitCode(cmd.Wait()); code != 99 {
		t.Errorf("exit code %d, want 99", code)
	}
	_, finished := r.markers("hello")
	if finished["state"] != "REQUEUED" || finished["exit_code"] != "99" {
		t.Errorf("finished = %v", finished)
	}
	rec := records(t, r.argvDir)
	if len(rec["python3"]) != 0 {
		t.Errorf("the command started after USR2: %q", rec["python3"])
	}
	if got := rec["scontrol"]; len(got) != 1 || strings.Join(got[0], " ") != "scontrol requeue 78" {
		t.Errorf("scontrol calls = %q", got)
	}
}

// TestGoldenMultiNode pins the script of a stage on two nodes for each runtime that may
// run on several (docker and podman are refused by validation): one task per node, the
// workers' addresses and ports, and the srun step with per-task logs.
func TestGoldenMultiNode(t *testing.T) {
	for _, rt := range []string{"pyxis", "apptainer", "none"} {
		l := parse(t, "testdata/full.yaml")
		l.Spec.Container.Runtime = rt
		l.Spec.Container.Image = images[rt]
		l.Spec.Slurm.Nodes = 2
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		p := newPlan(t, l.Spec, "/home/u", "/home/u")
		s, err := Script(p, p.Stages[0])
		if err != nil {
			t.Fatal(err)
		}
		name := "nodes2-" + rt + "-" + p.Stages[0].Name
		golden.RequireEqual(t, name, s)
		lint(t, name, s)
	}
}
