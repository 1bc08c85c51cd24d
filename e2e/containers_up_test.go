package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
)

// TestContainersUpRecoversStaleRootless injects what a restart or a killed test run leaves
// for rootless podman (a container it believes runs, its processes gone) and runs
// scripts/containers-up.sh, which CI runs first: the script must leave rootless podman
// working, not stop the whole suite (CI failed exactly so once).
func TestContainersUpRecoversStaleRootless(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	image := testenv.RequireContainer(t, testenv.PodmanRootless)
	user := testenv.RootlessUser()
	podman := func(args ...string) ([]byte, error) {
		argv := append([]string{"-u", user, "--", "podman"}, args...)
		return exec.Command("runuser", argv...).CombinedOutput()
	}
	name := "hpctl-stale-" + time.Now().Format("150405")
	if out, err := podman("run", "-d", "--name", name, image, "sleep", "600"); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	// Every process of the user, the pause process and conmon included, as a restart would.
	if out, err := exec.Command("pkill", "-KILL", "-u", user).CombinedOutput(); err != nil {
		t.Fatalf("pkill -u %s: %v\n%s", user, err, out)
	}
	waitFor(t, "the user's processes to end", 10*time.Second, func() bool {
		out, _ := exec.Command("pgrep", "-u", user, "-r", "R,S,D").Output()
		return strings.TrimSpace(string(out)) == ""
	})
	if out, err := podman("info"); err == nil {
		t.Fatalf("the fault was not injected: podman info works after the kill\n%s", out)
	} else if !strings.Contains(string(out), "podman system migrate") {
		t.Logf("podman info after the kill (not the message seen in CI): %s", out)
	}

	up := exec.Command("scripts/containers-up.sh", "--no-docker")
	up.Dir = root
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("scripts/containers-up.sh --no-docker after the kill: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "podman system migrate") {
		t.Errorf("containers-up did not say what it repaired:\n%s", out)
	}
	if out, err := podman("info"); err != nil {
		t.Fatalf("podman info after containers-up: %v\n%s", err, out)
	}
	if out, err := podman("container", "exists", name); err == nil {
		t.Errorf("the stale container %s is still there", name)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("podman container exists %s: %v\n%s", name, err, out)
	}
	if out, err := podman("run", "--rm", image, "true"); err != nil {
		t.Fatalf("a container after the repair: %v\n%s", err, out)
	}
}

// The pid files of the dockerd scripts/containers-up.sh starts and of its containerd.
const (
	dockerPidFile     = "/run/hpctl-docker/dockerd.pid"
	containerdPidFile = "/run/hpctl-docker/containerd/containerd.pid"
)

// TestContainersUpRestartsDockerdOverStalePidFiles: a killed dockerd leaves its pid file
// and its containerd's, and after a restart those pids may be any live process; dockerd
// then refuses to start ("pid file found, ensure docker is not running") or waits for a
// containerd that is not there. The script must start it anyway.
func TestContainersUpRestartsDockerdOverStalePidFiles(t *testing.T) {
	testenv.RequireContainer(t, testenv.Docker)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// A restart: both daemons die at once.
	for _, f := range []string{dockerPidFile, containerdPidFile} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("dockerd was not started by scripts/containers-up.sh here (%v)", err)
		}
		if out, err := exec.Command("kill", "-KILL", strings.TrimSpace(string(raw))).CombinedOutput(); err != nil {
			t.Fatalf("kill -KILL the pid in %s: %v\n%s", f, err, out)
		}
	}
	waitFor(t, "dockerd to end", 30*time.Second, func() bool {
		return exec.Command("docker", "version").Run() != nil
	})
	// Live processes that are neither: this test's own.
	for _, f := range []string{dockerPidFile, containerdPidFile} {
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up := exec.Command("scripts/containers-up.sh")
	up.Dir = root
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("scripts/containers-up.sh over stale pid files: %v\n%s", err, out)
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("docker version after containers-up: %v\n%s", err, out)
	}
	for f, want := range map[string]string{dockerPidFile: "dockerd", containerdPidFile: "containerd"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		comm, err := os.ReadFile("/proc/" + strings.TrimSpace(string(raw)) + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != want {
			t.Errorf("%s names %q, a %q (%v), not the new %s", f, raw, comm, err, want)
		}
	}
}
