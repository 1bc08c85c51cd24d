package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/testenv"
)

// TestSubmitNoRuntimeCheck: the runtime checks run where hpctl submits, which on a real
// cluster is a login node that may lack the compute nodes' runtime. Refused without the
// flag (exit 2, pointing at it), submitted with it (warnings saying what was not found,
// the job in Slurm), and the data checks still refuse with it.
func TestSubmitNoRuntimeCheck(t *testing.T) {
	testenv.RequireSlurm(t)
	if out, _ := exec.Command("srun", "--help").CombinedOutput(); strings.Contains(string(out), "--container-image") {
		t.Skip("pyxis is installed here: its check would pass")
	}
	c := newCLI(t)
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := filepath.Join(c.dir, "pyxis.yaml")
	text := fmt.Sprintf(`name: nocheck
workdir: %[1]s/runs
data:
  train: %[1]s/data/train
  val: %[1]s/data/val
slurm:
  time: "00:10:00"
  gpus: 0
  cpus_per_task: 1
  mem: 64M
container:
  runtime: pyxis
  image: /nonexistent/tf.sqsh
stages:
  - name: one
    command: ["true"]
`, c.dir)
	if err := os.WriteFile(spec, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	_, errs, code := c.run(t, "submit", spec)
	if code != 2 || !strings.Contains(errs, spec+":12:12: container.runtime:") || !strings.Contains(errs, "--no-runtime-check") {
		t.Fatalf("submit without the flag: exit %d, want 2 at %s:12:12 naming --no-runtime-check:\n%s", code, spec, errs)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "runs")); err == nil {
		t.Fatal("a refused submission staged a run directory")
	}

	// A dry run with the flag says what the submission would go on despite.
	_, errs, code = c.run(t, "submit", spec, "--dry-run", "--no-runtime-check")
	if code != 0 || !strings.Contains(errs, "hpctl: warning: submit --no-runtime-check would go on although: "+spec+":12:12: container.runtime:") {
		t.Errorf("dry run with the flag: exit %d, want 0 with the runtime's problem as a warning:\n%s", code, errs)
	}

	out, errs, code := c.run(t, "submit", spec, "--no-runtime-check", "-o", "json")
	if code != 0 {
		t.Fatalf("submit --no-runtime-check: exit %d\n%s", code, errs)
	}
	if !strings.Contains(errs, "hpctl: warning: --no-runtime-check: submitted although: "+spec+":13:10: container.image:") {
		t.Errorf("no warning on stderr for the missing image:\n%s", errs)
	}
	var sub struct {
		RunID    string   `json:"run_id"`
		Warnings []string `json:"warnings"`
		Jobs     []struct {
			JobID string `json:"job_id"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &sub); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { c.run(t, "cancel", sub.RunID) })
	if len(sub.Jobs) != 1 || sub.Jobs[0].JobID == "" {
		t.Fatalf("submit --no-runtime-check: jobs %+v", sub.Jobs)
	}
	joined := strings.Join(sub.Warnings, "\n")
	for _, want := range []string{
		"--no-runtime-check: submitted although: " + spec + ":12:12: container.runtime: runtime pyxis",
		"--no-runtime-check: submitted although: " + spec + ":13:10: container.image: /nonexistent/tf.sqsh does not exist",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("warnings lack %q:\n%s", want, joined)
		}
	}
	if got, err := exec.Command("sacct", "-n", "-X", "-j", sub.Jobs[0].JobID, "-o", "JobName%60").Output(); err != nil || !strings.Contains(string(got), "nocheck") {
		// sacct may lag a moment behind sbatch: squeue knows the job at once.
		if q, _ := exec.Command("squeue", "-h", "-j", sub.Jobs[0].JobID, "-o", "%j").Output(); !strings.Contains(string(q), "nocheck") {
			t.Errorf("Slurm does not know job %s: sacct %q (%v), squeue %q", sub.Jobs[0].JobID, got, err, q)
		}
	}

	// The data are judged as before.
	if err := os.RemoveAll(filepath.Join(c.dir, "data/val/b")); err != nil {
		t.Fatal(err)
	}
	_, errs, code = c.run(t, "submit", spec, "--no-runtime-check")
	if code != 2 || !strings.Contains(errs, spec+":5:8: data.val:") {
		t.Errorf("missing class folder with --no-runtime-check: exit %d, want 2 at %s:5:8:\n%s", code, spec, errs)
	}
}
