package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/pipeline"
)

// A submit killed (SIGKILL) at any moment must leave no job that hpctl does not know:
// after one `hpctl status`, every job queued for the test's runs belongs to a recorded
// run, no run is still "submitting", and no half-staged directory or empty job record is
// left. The kills are spread over the whole length of a submission, measured first.
func TestKilledSubmitsLeaveNoOrphans(t *testing.T) {
	t.Run("slurm", func(t *testing.T) {
		testenv.RequireSlurm(t)
		killSubmits(t, "slurm", 50, false)
	})
	t.Run("slurm-slow-sbatch", func(t *testing.T) {
		// sbatch answering 0.3 s after the job is queued, as on a busy controller: the
		// widest window between a job existing and hpctl hearing its id.
		testenv.RequireSlurm(t)
		killSubmits(t, "slurm", 30, true)
	})
	t.Run("local", func(t *testing.T) { killSubmits(t, "local", 50, false) })
}

func killSubmits(t *testing.T, executor string, n int, slowSbatch bool) {
	c := newCLI(t)
	for _, d := range []string{"train/a", "train/b", "val/a", "val/b"} {
		if err := os.MkdirAll(filepath.Join(c.dir, "data", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	workdir := filepath.Join(c.dir, "runs")
	spec := filepath.Join(c.dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf(`name: orphans
workdir: %q
executor: %s
data: {train: data/train, val: data/val}
slurm: {time: "00:10:00", cpus_per_task: 1, mem: 50M}
container: {runtime: none}
stages:
  - name: one
    command: [sleep, "1"]
  - name: two
    depends_on: [one]
    command: ["true"]
`, workdir, executor)), 0o644); err != nil {
		t.Fatal(err)
	}
	env := c.env
	if slowSbatch {
		real, err := exec.LookPath("sbatch")
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(c.dir, "bin")
		os.MkdirAll(bin, 0o755)
		shim := fmt.Sprintf("#!/bin/sh\n%q \"$@\"\nrc=$?\nsleep 0.3\nexit $rc\n", real)
		if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte(shim), 0o755); err != nil {
			t.Fatal(err)
		}
		env = append(append([]string(nil), env...), "PATH="+bin+":"+os.Getenv("PATH"))
	}
	submit := func() *exec.Cmd {
		cmd := exec.Command(c.bin, "submit", spec)
		cmd.Env, cmd.Dir = env, c.dir
		return cmd
	}
	// How long one whole submission takes here, to spread the kills over it.
	start := time.Now()
	if out, err := submit().CombinedOutput(); err != nil {
		t.Fatalf("submit: %v\n%s", err, out)
	}
	whole := time.Since(start)
	t.Logf("one submission takes %s; killing %d submissions at points spread over it", whole, n)
	t.Cleanup(func() { cancelEverything(t, c, workdir, executor) })
	for i := 0; i < n; i++ {
		cmd := submit()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i) * whole / time.Duration(n))
		cmd.Process.Kill()
		cmd.Wait()
	}

	var st []pipeline.RunStatus
	c.jsonOut(t, &st, "status", "--last", "1000")
	known := map[string]string{}
	var failed, done int
	for _, s := range st {
		switch s.Run.Status {
		case registry.RunSubmitting:
			t.Errorf("run %s is still recorded as submitting after status", s.Run.ID)
		case registry.RunFailed:
			failed++
		default:
			done++
		}
		for _, stg := range s.Run.Stages {
			if stg.JobID != "" {
				known[stg.JobID] = s.Run.ID
			}
		}
	}
	t.Logf("%d runs recorded: %d submitted, %d settled as failed", len(st), done, failed)
	for id, dir := range jobsUnder(t, c, workdir, executor) {
		if _, ok := known[id]; !ok {
			rec := "no run records that directory"
			for _, s := range st {
				if s.Run.RunDir == dir {
					rec = fmt.Sprintf("its run is %s %q, stages %+v", s.Run.Status, s.Run.Error, s.Run.Stages)
				}
			}
			t.Errorf("job %s (run directory %s) is known to no run; %s", id, dir, rec)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(workdir, ".*.staging-*")); len(left) > 0 {
		t.Errorf("half-staged directories left: %q", left)
	}
	if executor == "local" {
		recs, _ := filepath.Glob(filepath.Join(c.dir, "state", "hpctl", "local-jobs", "local-*.json"))
		for _, r := range recs {
			if fi, err := os.Stat(r); err == nil && fi.Size() == 0 {
				t.Errorf("empty job record %s", r)
			}
		}
	}
}

// jobsUnder is every job whose run directory is under workdir: from squeue (all states,
// this user's) for Slurm, from the job records for the local executor.
func jobsUnder(t *testing.T, c *cli, workdir, executor string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if executor == "local" {
		recs, _ := filepath.Glob(filepath.Join(c.dir, "state", "hpctl", "local-jobs", "local-*.json"))
		for _, p := range recs {
			var r struct {
				ID     string `json:"id"`
				RunDir string `json:"run_dir"`
			}
			b, err := os.ReadFile(p)
			if err != nil || json.Unmarshal(b, &r) != nil {
				t.Errorf("job record %s unreadable: %v", p, err)
				continue
			}
			if strings.HasPrefix(r.RunDir, workdir+"/") {
				out[r.ID] = r.RunDir
			}
		}
		return out
	}
	b, err := exec.Command("squeue", "--me", "--states=all", "-h", "-o", "%i|%Z").Output()
	if err != nil {
		t.Fatalf("squeue: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		id, dir, ok := strings.Cut(strings.TrimSpace(line), "|")
		if ok && strings.HasPrefix(dir, workdir+"/") {
			out[id] = dir
		}
	}
	return out
}

// cancelEverything leaves nothing of the test queued, known to hpctl or not.
func cancelEverything(t *testing.T, c *cli, workdir, executor string) {
	var ids []string
	for id := range jobsUnder(t, c, workdir, executor) {
		ids = append(ids, id)
	}
	if len(ids) == 0 || executor != "slurm" {
		return // local jobs are a second of sleep
	}
	if out, err := exec.Command("scancel", ids...).CombinedOutput(); err != nil {
		t.Logf("scancel: %v: %s", err, out)
	}
}
