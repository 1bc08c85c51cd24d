package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "scripts/slurm-up.sh", "scripts/slurmctld-stop.sh", "scripts/sshd-up.sh"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("repo root %s: %v", root, err)
		}
	}
}

// TestSlurmRoundTrip submits a real job and waits until Slurm reports it COMPLETED:
// through sacct when accounting is on, through scontrol otherwise.
func TestSlurmRoundTrip(t *testing.T) {
	RequireSlurm(t)
	out, err := exec.Command("sbatch", "--parsable", "--job-name=hpctl-testenv",
		"--output=/dev/null", "--wrap", "true").CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, out)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	t.Cleanup(func() { _ = exec.Command("scancel", id).Run() })

	acct := AccountingEnabled()
	t.Logf("job %s submitted; accounting enabled: %v", id, acct)
	deadline := time.Now().Add(90 * time.Second)
	var state string
	for time.Now().Before(deadline) {
		state = jobState(t, id, acct)
		switch state {
		case "COMPLETED":
			return
		case "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE":
			t.Fatalf("job %s ended %s", id, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("job %s not COMPLETED after 90s (last state %q)", id, state)
}

func jobState(t *testing.T, id string, acct bool) string {
	t.Helper()
	if acct {
		out, err := exec.Command("sacct", "-X", "-n", "-P", "-j", id, "-o", "State").Output()
		if err != nil {
			t.Fatalf("sacct: %v", err)
		}
		// A job may not be in the database for a moment after submission.
		state, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
		return state
	}
	out, err := exec.Command("scontrol", "show", "job", "-o", id).Output()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v", id, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "JobState="); ok {
			return v
		}
	}
	return ""
}

// TestSSHConnectionCount checks the connection count that SSH tests rely on: a plain
// ssh command is one connection, and several commands through one ControlMaster are
// one connection in all.
func TestSSHConnectionCount(t *testing.T) {
	cfg, host := RequireSSH(t)
	ExclusiveSSH(t)
	ssh := func(extra ...string) {
		t.Helper()
		args := append([]string{"-F", cfg}, extra...)
		args = append(args, host, "true")
		if out, err := exec.Command("ssh", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh %v: %v: %s", args, err, out)
		}
	}
	before := SSHConnectionCount(t)
	ssh()
	if got := SSHConnectionCount(t) - before; got != 1 {
		t.Fatalf("one ssh command: %d new connections, want 1", got)
	}

	// /tmp rather than t.TempDir(): a control socket path must stay short.
	dir, err := os.MkdirTemp("", "cm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mux := []string{"-o", "ControlMaster=auto", "-o", "ControlPath=" + filepath.Join(dir, "%C"), "-o", "ControlPersist=30"}
	t.Cleanup(func() {
		_ = exec.Command("ssh", append(append([]string{"-F", cfg}, mux...), "-O", "exit", host)...).Run()
	})
	before = SSHConnectionCount(t)
	for range 3 {
		ssh(mux...)
	}
	if got := SSHConnectionCount(t) - before; got != 1 {
		t.Fatalf("three multiplexed ssh commands: %d new connections, want 1", got)
	}
}

// TestControllerRestart stops and restarts slurmctld. It disturbs every Slurm test on
// the machine (they wait for it), so it runs only with HPCTL_TEST_CONTROLLER_RESTART=1.
func TestControllerRestart(t *testing.T) {
	if os.Getenv("HPCTL_TEST_CONTROLLER_RESTART") != "1" {
		t.Skip("set HPCTL_TEST_CONTROLLER_RESTART=1 to stop and restart slurmctld")
	}
	RequireSlurm(t)
	StopController(t)
	if out, err := exec.Command("squeue", "-h").CombinedOutput(); err == nil {
		t.Fatalf("squeue succeeded with slurmctld stopped: %s", out)
	}
	StartController(t)
	if out, err := exec.Command("squeue", "-h").CombinedOutput(); err != nil {
		t.Fatalf("squeue after restart: %v: %s", err, out)
	}
}

// The two-node cluster runs one task on each node of a -N2 step: the ground the
// multi-node trainer stands on.
func TestTwoNodeStepOneTaskPerNode(t *testing.T) {
	RequireTwoNodes(t)
	out, err := run(2*time.Minute, "srun", "-N2", "--ntasks-per-node=1", "-p", TwoNodePartition,
		"bash", "-c", `echo "task $SLURM_PROCID of $SLURM_NTASKS on $SLURMD_NODENAME"`)
	if err != nil {
		t.Fatalf("srun: %v\n%s", err, out)
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got[line] = true
	}
	for _, want := range []string{"task 0 of 2 on n1", "task 1 of 2 on n2"} {
		if !got[want] {
			t.Errorf("srun output lacks %q:\n%s", want, out)
		}
	}
}
