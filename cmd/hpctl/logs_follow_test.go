package main

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
)

// TestLogsFollowThePipelineOnSlurm: `hpctl logs RUN -f` on the test cluster waits for a
// held first stage with a note that says why in plain words, then prints both stages'
// logs under their headers and ends when the run does; --tail then gives the last line.
func TestLogsFollowThePipelineOnSlurm(t *testing.T) {
	testenv.RequireSlurm(t)
	dir := isolate(t)
	t.Setenv("HPCTL_POLL_INTERVAL", "1s")
	spec := slurmSpec(t, dir, `echo one-a; sleep 2; echo one-b`, `echo two`)
	s := submitJSON(t, spec)
	one, two := s.Jobs[0].JobID, s.Jobs[1].JobID
	// Held, the first stage waits whatever else the shared cluster runs.
	if out, err := exec.Command("scontrol", "hold", one).CombinedOutput(); err != nil {
		t.Fatalf("scontrol hold %s: %v\n%s", one, err, out)
	}
	released := false
	// Should the note never come, the job is released all the same so the test ends.
	safety := time.AfterFunc(90*time.Second, func() { exec.Command("scontrol", "release", one).Run() })
	defer safety.Stop()

	pr, pw := io.Pipe()
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		e := &env{stdout: &out, stderr: pw}
		code := runEnv(e, []string{"hpctl", "logs", s.RunID, "-f"})
		pw.Close()
		done <- code
	}()
	var notes []string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		notes = append(notes, sc.Text())
		// "held by you", or by an administrator where the test runs as root.
		if !released && strings.Contains(sc.Text(), "waiting for one (job "+one+") to start: held by ") {
			if out, err := exec.Command("scontrol", "release", one).CombinedOutput(); err != nil {
				t.Fatalf("scontrol release %s: %v\n%s", one, err, out)
			}
			released = true
		}
	}
	var code int
	select {
	case code = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("logs -f did not end with the run; notes so far: %q", notes)
	}
	if !released {
		t.Errorf("no note that the held stage waits: %q", notes)
	}
	want := "== one (job " + one + ") ==\none-a\none-b\n== two (job " + two + ") ==\ntwo\n"
	if code != 0 || out.String() != want {
		t.Fatalf("logs -f: exit %d\n got %q\nwant %q\nnotes %q", code, out.String(), want, notes)
	}
	t.Logf("notes on stderr: %q", notes)

	got, errs, code := hpctl(t, "logs", s.RunID, "--stage", "one", "--tail", "1")
	if code != 0 || got != "one-b\n" {
		t.Fatalf("logs --tail 1: exit %d, %q %s", code, got, errs)
	}
	if _, errs, code := hpctl(t, "logs", s.RunID, "--tail", "-1"); code != exitUsage {
		t.Errorf("--tail -1: exit %d, %s", code, errs)
	}
}
