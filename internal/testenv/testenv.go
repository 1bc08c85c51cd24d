// Package testenv connects Go integration tests to the real test infrastructure that
// scripts/slurm-up.sh and scripts/sshd-up.sh start (see docs/test-cluster.md): a
// single-node Slurm cluster and an OpenSSH server on 127.0.0.1.
//
// Tests skip with a clear message when a service is not there, unless
// HPCTL_REQUIRE_SLURM=1 or HPCTL_REQUIRE_SSH=1 (set by CI after starting them), in
// which case they fail.
//
// Go runs the test binaries of different packages at the same time. So that a test
// that stops slurmctld does not break a pipeline test running in another package,
// RequireSlurm holds a shared lock for the rest of the test and StopController takes
// it exclusively (waiting for the other packages' Slurm tests to end, and holding off
// new ones until StartController). ExclusiveSSH does the same for tests that count SSH
// connections. Within one package, do not mark tests that stop the controller or count
// connections with t.Parallel.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Environment variables understood by this package and by the scripts.
const (
	EnvRequireSlurm = "HPCTL_REQUIRE_SLURM" // "1": a missing cluster fails the test
	EnvRequireSSH   = "HPCTL_REQUIRE_SSH"   // "1": a missing sshd fails the test
	EnvSSHDState    = "HPCTL_SSHD_STATE"    // sshd-up.sh state dir, default /var/lib/hpctl-sshd
	EnvSSHConfig    = "HPCTL_SSH_CONFIG"    // ssh client config, default <state>/ssh_config
	EnvSSHHost      = "HPCTL_SSH_HOST"      // host alias in it, default hpctl-test
)

// SSHConnectionLine is the text sshd (LogLevel VERBOSE) logs once per new TCP connection.
const SSHConnectionLine = "Connection from "

const (
	defaultSSHDState = "/var/lib/hpctl-sshd"
	defaultSSHHost   = "hpctl-test"
	// Slurm client commands take about 9 s to fail when slurmctld is down.
	probeTimeout  = 30 * time.Second
	scriptTimeout = 3 * time.Minute
)

// RepoRoot returns the repository root: the nearest directory above the working
// directory (a test's package directory) that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// RequireSlurm skips the test when the Slurm test cluster does not answer (sinfo and
// squeue), or fails it when HPCTL_REQUIRE_SLURM=1. It holds a shared lock on the
// cluster until the test ends, so that StopController in another package waits.
func RequireSlurm(t testing.TB) {
	t.Helper()
	slurmLock.share(t)
	for _, args := range [][]string{{"sinfo", "-h", "-o", "%a"}, {"squeue", "-h", "-o", "%i"}} {
		if out, err := run(probeTimeout, args...); err != nil {
			unavailable(t, EnvRequireSlurm, fmt.Sprintf(
				"Slurm test cluster not reachable (%s: %v: %s); start it with `make slurm-up`",
				strings.Join(args, " "), err, firstLine(out)))
			return
		}
	}
}

// RequireSSH skips the test when `ssh -F <config> <host> true` fails against the test
// sshd, or fails it when HPCTL_REQUIRE_SSH=1. It returns the client config path and
// host alias to pass to ssh. The check itself opens one SSH connection: read
// SSHConnectionCount after it.
func RequireSSH(t testing.TB) (configPath, host string) {
	t.Helper()
	sshLock.share(t)
	configPath = os.Getenv(EnvSSHConfig)
	if configPath == "" {
		configPath = filepath.Join(sshdState(), "ssh_config")
	}
	host = os.Getenv(EnvSSHHost)
	if host == "" {
		host = defaultSSHHost
	}
	if _, err := os.Stat(configPath); err != nil {
		unavailable(t, EnvRequireSSH, fmt.Sprintf("test sshd not set up (%v); start it with `make sshd-up`", err))
		return "", ""
	}
	out, err := run(probeTimeout, "ssh", "-F", configPath, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", host, "true")
	if err != nil {
		unavailable(t, EnvRequireSSH, fmt.Sprintf(
			"test sshd not reachable (ssh -F %s %s true: %v: %s); start it with `make sshd-up`",
			configPath, host, err, firstLine(out)))
		return "", ""
	}
	return configPath, host
}

// ExclusiveSSH makes the test the only one, across all test processes using this
// package, that talks to the test sshd until it ends, so that differences of
// SSHConnectionCount are exact. Call it after RequireSSH.
func ExclusiveSSH(t testing.TB) {
	t.Helper()
	sshLock.exclusive(t)
	t.Cleanup(sshLock.release)
}

// SSHLogPath is the test sshd's log file.
func SSHLogPath() string { return filepath.Join(sshdState(), "sshd.log") }

// SSHConnectionCount returns how many TCP connections the test sshd has accepted since
// its log was created: the lines containing SSHConnectionLine. Take the difference
// of two calls; see ExclusiveSSH for exact counts.
func SSHConnectionCount(t testing.TB) int {
	t.Helper()
	f, err := os.Open(SSHLogPath())
	if err != nil {
		t.Fatalf("testenv: reading sshd log: %v", err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), SSHConnectionLine) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testenv: reading sshd log: %v", err)
	}
	return n
}

// AccountingEnabled reports whether the cluster stores accounting (sacct works):
// AccountingStorageType from `scontrol show config`, or from slurm.conf when the
// controller does not answer.
func AccountingEnabled() bool {
	var text string
	if out, err := run(probeTimeout, "scontrol", "show", "config"); err == nil {
		text = string(out)
	} else {
		conf := os.Getenv("SLURM_CONF")
		if conf == "" {
			conf = "/etc/slurm/slurm.conf"
		}
		b, err := os.ReadFile(conf)
		if err != nil {
			return false
		}
		text = string(b)
	}
	for _, line := range strings.Split(text, "\n") {
		key, val, ok := strings.Cut(line, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "AccountingStorageType") {
			continue
		}
		val = strings.TrimSpace(val)
		return val != "" && val != "accounting_storage/none"
	}
	return false
}

// StopController stops slurmctld (scripts/slurmctld-stop.sh); slurmd and slurmdbd
// keep running. It first waits until no Slurm test of another package runs, and keeps
// new ones waiting until StartController. If the test ends with the controller still
// stopped, the controller is started again.
func StopController(t testing.TB) {
	t.Helper()
	slurmLock.exclusive(t)
	t.Cleanup(func() {
		if slurmLock.isExclusive() {
			if err := runScript("slurmctld-start.sh"); err != nil {
				t.Errorf("testenv: restarting slurmctld after the test: %v", err)
			}
			slurmLock.release()
		}
	})
	if err := runScript("slurmctld-stop.sh"); err != nil {
		t.Fatalf("testenv: stopping slurmctld: %v", err)
	}
}

// StartController starts slurmctld again (scripts/slurmctld-start.sh) and returns when
// it answers and the node is usable.
func StartController(t testing.TB) {
	t.Helper()
	if err := runScript("slurmctld-start.sh"); err != nil {
		t.Fatalf("testenv: starting slurmctld: %v", err)
	}
	if slurmLock.isExclusive() {
		slurmLock.release()
	}
}

func sshdState() string {
	if s := os.Getenv(EnvSSHDState); s != "" {
		return s
	}
	return defaultSSHDState
}

func unavailable(t testing.TB, env, msg string) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatalf("%s (%s=1)", msg, env)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, env)
}

func runScript(name string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	out, err := run(scriptTimeout, "bash", filepath.Join(root, "scripts", name))
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, out)
	}
	return nil
}

// run executes a command with a timeout and returns its combined output.
func run(timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	return buf.Bytes(), err
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// ControlDir is a short private directory for ssh ControlMaster sockets, removed when the
// test ends: t.TempDir's paths can exceed the ~104-byte socket path limit.
func ControlDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "hpctl-cm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
