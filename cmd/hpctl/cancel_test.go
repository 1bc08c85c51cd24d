package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/jobs"
)

// localRun submits a one-stage run of command on the local executor (its supervisor is
// this test binary, run as hpctl) and returns its id.
func localRun(t *testing.T, dir, name, command string) string {
	t.Helper()
	t.Setenv("HPCTL_TEST_AS_MAIN", "1") // for the supervisor the local executor starts
	for _, d := range []string{"d/t/a", "d/t/b", "d/v/a", "d/v/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	spec := filepath.Join(dir, name+".yaml")
	os.WriteFile(spec, []byte("name: "+name+"\nworkdir: "+dir+"/runs\nexecutor: local\ndata: {train: "+dir+"/d/t, val: "+dir+"/d/v}\nmodel: {weights: none}\ncontainer: {runtime: none}\nstages: [{name: a, command: "+command+"}]\n"), 0o644)
	out, stderr, code := hpctl(t, "submit", spec, "-o", "json")
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, stderr)
	}
	var sub struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.RunID == "" {
		t.Fatalf("submit said %q: %v", out, err)
	}
	t.Cleanup(func() { hpctl(t, "cancel", sub.RunID) })
	return sub.RunID
}

// cancel says what it did: a run whose jobs had all ended was not cancelled.
func TestCancelSaysARunHadAlreadyEnded(t *testing.T) {
	dir := isolate(t)
	done := localRun(t, dir, "done", `["true"]`)
	if st := waitEnded(t, done); st.State != jobs.StateCompleted {
		t.Fatalf("the run of `true` ended %s", st.State)
	}
	stdout, stderr, code := hpctl(t, "cancel", done)
	if code != 0 || !strings.Contains(stdout, "run "+done+" had already ended") || strings.Contains(stdout, "cancelled") {
		t.Fatalf("cancel of an ended run: exit %d: %s %s", code, stdout, stderr)
	}
	if st := statusJSON(t, done); st.State != jobs.StateCompleted {
		t.Errorf("cancel changed an ended run to %s", st.State)
	}

	// A running run is cancelled, and says so; cancelled again, it had ended.
	slow := localRun(t, dir, "slow", `[sleep, "60"]`)
	deadline := time.Now().Add(time.Minute)
	for statusJSON(t, slow).State != jobs.StateRunning {
		if time.Now().After(deadline) {
			t.Fatal("the sleep never ran")
		}
		time.Sleep(200 * time.Millisecond)
	}
	stdout, stderr, code = hpctl(t, "cancel", slow)
	if code != 0 || !strings.Contains(stdout, "cancelled run "+slow) {
		t.Fatalf("cancel of a running run: exit %d: %s %s", code, stdout, stderr)
	}
	if st := waitEnded(t, slow); st.State != jobs.StateCancelled {
		t.Fatalf("after cancel the run is %s", st.State)
	}
	stdout, _, code = hpctl(t, "cancel", slow)
	if code != 0 || !strings.Contains(stdout, "had already ended") || !strings.Contains(stdout, "CANCELLED") {
		t.Fatalf("second cancel: exit %d: %s", code, stdout)
	}
}
