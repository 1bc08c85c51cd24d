package main

import (
	"bufio"
	"encoding/json"
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
)

// The test binary doubles as hpctl (HPCTL_TEST_AS_MAIN=1): as a separate process it can be
// interrupted with a real SIGINT, and the local executor re-executes it as the supervisor
// of its jobs (`__local-job`), exactly as it does the hpctl binary.
func TestMain(m *testing.M) {
	if os.Getenv("HPCTL_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// documentedCodes reads the table of docs/exit-codes.md.
func documentedCodes(t *testing.T) []int {
	t.Helper()
	b, err := os.ReadFile("../../docs/exit-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	return codes
}

// The table users read and the codes hpctl has are the same list.
func TestExitCodeTableMatchesTheCode(t *testing.T) {
	got := documentedCodes(t)
	want := []int{exitOK, exitFailure, exitUsage, exitUnreachable, exitNotFound, exitRunFailed, exitRefused, exitInterrupted}
	if !slices.Equal(got, want) {
		t.Fatalf("docs/exit-codes.md lists %v; the code has %v", got, want)
	}
	for c := -1; c < 256; c++ {
		if documented(c) != slices.Contains(want, c) {
			t.Errorf("documented(%d) = %v", c, documented(c))
		}
	}
}

// Every command's failure paths end with the documented code that says what happened,
// and never with another.
func TestEveryCommandsFailuresUseTheTable(t *testing.T) {
	dir := isolate(t)
	table := documentedCodes(t)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", "name: x\nstages: [{name: a, epochs: 0}]\n")
	nodata := write("nodata.yaml", "name: nodata\nworkdir: "+dir+"/runs\nexecutor: local\ndata: {train: "+dir+"/none, val: "+dir+"/none}\ncontainer: {runtime: none}\nstages: [{name: a, command: [\"true\"]}]\n")
	good := write("good.yaml", "name: good\nworkdir: "+dir+"/runs\nexecutor: local\ndata: {train: d/t, val: d/v}\nmodel: {weights: none}\ncontainer: {runtime: none}\nstages: [{name: a, command: [\"true\"]}]\n")
	os.MkdirAll(filepath.Join(dir, "exists"), 0o755)
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"bogus"}, exitUsage},
		{[]string{"status", "--wacth"}, exitUsage},
		{[]string{"--log-level", "loud", "runs"}, exitUsage},
		{[]string{"init"}, exitUsage},
		{[]string{"validate"}, exitUsage},
		{[]string{"validate", filepath.Join(dir, "missing.yaml")}, exitUsage},
		{[]string{"validate", bad}, exitUsage},
		{[]string{"render"}, exitUsage},
		{[]string{"render", bad}, exitUsage},
		{[]string{"render", good, "--run-id", "../x"}, exitUsage},
		{[]string{"render", good, "--out", filepath.Join(dir, "exists")}, exitUsage},
		{[]string{"submit"}, exitUsage},
		{[]string{"submit", bad}, exitUsage},
		{[]string{"submit", nodata}, exitUsage},
		{[]string{"submit", good, "-o", "yaml"}, exitUsage},
		{[]string{"submit", good, "--executor", "kubernetes"}, exitUsage},
		{[]string{"--host", "no-such-host.invalid", "submit", good, "--executor", "slurm"}, exitUnreachable},
		{[]string{"status", "no-such-run"}, exitNotFound},
		{[]string{"status", " "}, exitUsage},
		{[]string{"logs"}, exitUsage},
		{[]string{"logs", "no-such-run"}, exitNotFound},
		{[]string{"cancel"}, exitUsage},
		{[]string{"cancel", "no-such-run"}, exitNotFound},
		{[]string{"runs", "-o", "xml"}, exitUsage},
		{[]string{"fetch-results", "no-such-run"}, exitNotFound},
		{[]string{"fetch-results", "--all-checkpoints", "--no-checkpoints", "no-such-run"}, exitUsage},
		{[]string{"weights", "fetch"}, exitUsage},
		{[]string{"weights", "fetch", bad}, exitUsage},
		{[]string{"version", "-o", "toml"}, exitUsage},
	}
	for _, c := range cases {
		_, stderr, code := hpctl(t, c.args...)
		if !slices.Contains(table, code) {
			t.Errorf("hpctl %s: exit %d is not in docs/exit-codes.md\n%s", strings.Join(c.args, " "), code, stderr)
		} else if code != c.want {
			t.Errorf("hpctl %s: exit %d, want %d\n%s", strings.Join(c.args, " "), code, c.want, stderr)
		}
		if code != exitOK && strings.TrimSpace(stderr) == "" {
			t.Errorf("hpctl %s: exit %d with nothing on stderr", strings.Join(c.args, " "), code)
		}
	}
}

// Ctrl-C (a real SIGINT) while `status --watch` waits on a running run exits 130, and
// the run goes on.
func TestInterruptedWatchExits130(t *testing.T) {
	dir := isolate(t)
	for _, d := range []string{"d/t/a", "d/t/b", "d/v/a", "d/v/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	spec := filepath.Join(dir, "slow.yaml")
	os.WriteFile(spec, []byte("name: slow\nworkdir: "+dir+"/runs\nexecutor: local\ndata: {train: "+dir+"/d/t, val: "+dir+"/d/v}\nmodel: {weights: none}\ncontainer: {runtime: none}\nstages: [{name: a, command: [sleep, \"60\"]}]\n"), 0o644)
	hp := func(args ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "HPCTL_TEST_AS_MAIN=1")
		cmd.Dir = dir
		return cmd
	}
	out, err := hp("submit", spec, "-o", "json").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("submit: %v\n%s", err, stderr)
	}
	var sub struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal(out, &sub); err != nil || sub.RunID == "" {
		t.Fatalf("submit said %q: %v", out, err)
	}
	defer hp("cancel", sub.RunID).Run()

	watch := hp("status", sub.RunID, "--watch", "--interval", "1s")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	// The first table is printed: the watch is waiting for the next refresh.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.Contains(sc.Text(), sub.RunID) {
	}
	time.Sleep(200 * time.Millisecond)
	if err := watch.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = watch.Wait()
	if code := watch.ProcessState.ExitCode(); code != exitInterrupted {
		t.Fatalf("status --watch after SIGINT: exit %d (%v), want %d", code, err, exitInterrupted)
	}
	st, err := hp("status", sub.RunID, "-o", "json").Output()
	if err != nil || !strings.Contains(string(st), `"RUNNING"`) {
		t.Errorf("the run did not go on after the watch was interrupted: %v\n%s", err, st)
	}
}
