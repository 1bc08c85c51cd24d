package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hpctl/hpctl/internal/testenv"
)

// A pid file outlives a restart or a kill -9 of its daemon, and by the next
// scripts/*-up.sh its pid may be any other process's. These tests put a live process that
// is not the daemon (a sleep) behind such a pid file: the scripts must neither take it for
// the daemon nor kill it as the daemon.

// bystander starts a process that must survive the scripts and returns its pid.
func bystander(t *testing.T) int {
	t.Helper()
	sleep := exec.Command("sleep", "300")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	return sleep.Process.Pid
}

// alive: running and not a zombie (the test is the sleep's parent and reaps it only at
// cleanup, so a killed sleep still answers kill -0).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces, the state follows the last ')'.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

func TestScriptHelpersIgnoreAReusedPid(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pid := bystander(t)
	pidfile := filepath.Join(t.TempDir(), "slurmd.pid")
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -euo pipefail
. scripts/lib/common.sh
if pid_alive "$1" slurmd; then echo "pid_alive took a sleep for slurmd"; exit 1; fi
pid_alive "$1" sleep || { echo "pid_alive missed the sleep itself"; exit 1; }
stop_pidfile "slurmd n1" "$1" 2`
	cmd := exec.Command("bash", "-c", script, "test", pidfile)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !alive(pid) {
		t.Fatalf("stop_pidfile killed pid %d, a sleep, as slurmd", pid)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("the stale pid file is still there (%v)", err)
	}
}

// TestSSHDUpOverAReusedPid: the real sshd of the tests, killed, its pid file naming a
// live sleep. scripts/sshd-up.sh must start sshd again (it once saw "a running sshd" and
// then timed out waiting for ssh) and leave the sleep alone.
func TestSSHDUpOverAReusedPid(t *testing.T) {
	sshConfig, host := testenv.RequireSSH(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(filepath.Dir(sshConfig), "sshd.pid")
	raw, err := os.ReadFile(pidfile)
	if err != nil {
		t.Skipf("sshd was not started by scripts/sshd-up.sh here (%v)", err)
	}
	sshd, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s: %v", pidfile, err)
	}
	if err := syscall.Kill(sshd, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -KILL sshd %d: %v", sshd, err)
	}
	// Whatever happens below, the suite's later tests need sshd.
	t.Cleanup(func() {
		up := exec.Command("scripts/sshd-up.sh")
		up.Dir = root
		_ = up.Run()
	})
	pid := bystander(t)
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := exec.Command("scripts/sshd-up.sh")
	up.Dir = root
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("scripts/sshd-up.sh over a pid file naming a sleep: %v\n%s", err, out)
	}
	if out, err := exec.Command("ssh", "-F", sshConfig, host, "true").CombinedOutput(); err != nil {
		t.Fatalf("ssh after sshd-up: %v\n%s", err, out)
	}
	if !alive(pid) {
		t.Errorf("sshd-up killed pid %d, a sleep", pid)
	}
}
