package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
)

// clean on the real Slurm test cluster, over the real sshd and on this machine: it
// removes exactly the chosen runs' directories, fetched results and records, and what
// was planted beside and inside them (sibling folders, a symlink out of a run directory,
// records whose directory is "/", "..", another run's, a plain folder, a symlink) stays.
func TestCLICleanRemovesOnlyTheChosenRuns(t *testing.T) {
	testenv.RequireSlurm(t)
	config, host := testenv.RequireSSH(t)
	dir := isolate(t)
	t.Setenv("HPCTL_SSH_CONFIG", config)
	t.Setenv("HPCTL_CONTROL_DIR", testenv.ControlDir(t))
	results := filepath.Join(dir, "results")
	t.Setenv("HPCTL_RESULTS_DIR", results)
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }

	done := slurmSpec(t, dir, "echo one", "echo two")
	viaSSH := func(spec string) submitted {
		t.Helper()
		out, errs, code := hpctl(t, "--host", host, "submit", spec, "-o", "json")
		if code != 0 {
			t.Fatalf("submit over ssh: exit %d: %s", code, errs)
		}
		s := decodeSubmitted(t, out)
		t.Cleanup(func() { hpctl(t, "cancel", s.RunID) })
		return s
	}
	a := viaSSH(done) // removed by id, with --remote
	c := viaSSH(done) // kept
	os.MkdirAll(filepath.Join(dir, "b"), 0o755)
	b := submitJSON(t, slurmSpec(t, filepath.Join(dir, "b"), "exit 3", "echo never")) // removed by --state failed
	dSpec := filepath.Join(dir, "d")
	os.MkdirAll(dSpec, 0o755)
	d := submitJSON(t, slurmSpec(t, dSpec, "sleep 300", "echo two")) // running: kept
	for _, r := range []string{a.RunID, c.RunID, b.RunID} {
		waitEnded(t, r)
	}
	for _, r := range []string{a.RunID, c.RunID} {
		if _, errs, code := hpctl(t, "fetch-results", r, "--no-checkpoints"); code != 0 {
			t.Fatalf("fetch-results %s: exit %d: %s", r, code, errs)
		}
	}

	ctx := context.Background()
	reg, err := registry.Open(ctx, filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	runDir := func(id string) string {
		r, err := reg.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r.RunDir
	}
	aDir, bDir, cDir := runDir(a.RunID), runDir(b.RunID), runDir(c.RunID)

	// Planted: a sibling of a's run directory named like it, a file beside it, a
	// symlink inside it to a folder outside, and one inside its fetched results.
	outside := filepath.Join(dir, "outside")
	os.MkdirAll(outside, 0o755)
	precious := filepath.Join(outside, "precious")
	os.WriteFile(precious, []byte("keep"), 0o644)
	sibling := aDir + "-sibling"
	os.MkdirAll(sibling, 0o755)
	os.WriteFile(filepath.Join(sibling, "keep"), nil, 0o644)
	beside := filepath.Join(filepath.Dir(aDir), "keep.txt")
	os.WriteFile(beside, nil, 0o644)
	if err := os.Symlink(outside, filepath.Join(aDir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(results, a.RunID, "link")); err != nil {
		t.Fatal(err)
	}
	// Hostile records: "/" and ".." as directories, c's directory under another id, a
	// plain folder named like a run (no spec.yaml), and a symlink to a run directory.
	plain := filepath.Join(dir, "plain", "x-20260101-000000-0001")
	os.MkdirAll(plain, 0o755)
	os.WriteFile(filepath.Join(plain, "keep"), nil, 0o644)
	linked := filepath.Join(dir, "plain", "x-20260101-000000-0002")
	os.Symlink(cDir, linked)
	hostile := []registry.Run{
		{ID: "x-20260101-000000-000a", RunDir: "/"},
		{ID: "..", RunDir: ".."},
		{ID: "x-20260101-000000-000b", RunDir: "/tmp/../x-20260101-000000-000b"},
		{ID: "x-20260101-000000-000c", RunDir: cDir},
		{ID: "x-20260101-000000-0001", RunDir: plain},
		{ID: "x-20260101-000000-0002", RunDir: linked},
	}
	for _, h := range hostile {
		h.Executor, h.Status, h.SubmittedAt = "slurm", registry.RunFailed, time.Now().Add(-time.Hour)
		if err := reg.Put(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	reg.Close()

	// Each hostile record: refused, nothing removed.
	for _, h := range hostile[:4] {
		_, errs, code := hpctl(t, "clean", h.ID, "--remote", "--yes")
		if code != exitUsage || !strings.Contains(errs, "cannot be cleaned") {
			t.Errorf("clean %s (run dir %q): exit %d, want %d: %s", h.ID, h.RunDir, code, exitUsage, errs)
		}
	}
	for _, h := range hostile[4:] {
		_, errs, code := hpctl(t, "clean", h.ID, "--remote", "--yes")
		if code == 0 || !strings.Contains(errs, "keep their record") {
			t.Errorf("clean %s (run dir %q): exit %d, want a refusal: %s", h.ID, h.RunDir, code, errs)
		}
	}
	if !exists(filepath.Join(plain, "keep")) || !exists(linked) || !exists(filepath.Join(cDir, "spec.yaml")) {
		t.Fatalf("a refused clean removed something: plain %v, link %v, c %v", exists(plain), exists(linked), exists(cDir))
	}

	// A running run named on the command line stops clean before it removes anything.
	_, errs, code := hpctl(t, "clean", a.RunID, d.RunID, "--yes")
	if code != exitUsage || !strings.Contains(errs, "cancel it first") || !exists(filepath.Join(results, a.RunID)) {
		t.Fatalf("clean of a running run: exit %d: %s", code, errs)
	}
	// Without --yes and without a terminal: the list, a refusal, nothing removed.
	out, errs, code := hpctlWith(t, &env{stdin: bytes.NewReader([]byte("y\n"))}, "clean", a.RunID, "--remote")
	if code != exitUsage || !strings.Contains(errs, "--yes") || !strings.Contains(out, aDir) || !exists(aDir) {
		t.Fatalf("clean without --yes off a terminal: exit %d\n%s\n%s", code, out, errs)
	}
	out, _, code = hpctl(t, "clean", a.RunID, "--remote", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run") || !strings.Contains(out, filepath.Join(results, a.RunID)) || !exists(aDir) {
		t.Fatalf("clean --dry-run: exit %d\n%s", code, out)
	}

	// The real thing: a by id over ssh, b by state on this machine.
	if out, errs, code := hpctl(t, "clean", a.RunID, "--remote", "--yes"); code != 0 {
		t.Fatalf("clean %s: exit %d\n%s\n%s", a.RunID, code, out, errs)
	}
	out, errs, code = hpctl(t, "clean", "--state", "failed", "--older-than", "1s", "--remote", "--yes")
	if code == 0 || !strings.Contains(out, "removed "+b.RunID) {
		// The plain folder and the symlink records are failed too and refused again.
		t.Fatalf("clean --state failed: exit %d\n%s\n%s", code, out, errs)
	}
	for _, gone := range []string{aDir, bDir, filepath.Join(results, a.RunID)} {
		if exists(gone) {
			t.Errorf("%s is still there", gone)
		}
	}
	for _, kept := range []string{cDir, filepath.Join(cDir, "spec.yaml"), filepath.Join(results, c.RunID, "spec.yaml"), sibling,
		filepath.Join(sibling, "keep"), beside, precious, filepath.Join(plain, "keep"), linked} {
		if !exists(kept) {
			t.Errorf("%s was removed", kept)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(aDir))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".hpctl-removing") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	reg, err = registry.Open(ctx, filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, id := range []string{a.RunID, b.RunID} {
		if _, err := reg.Get(ctx, id); !isNotFound(err) {
			t.Errorf("run %s's record: %v, want it gone", id, err)
		}
	}
	for _, id := range []string{c.RunID, d.RunID, "..", hostile[0].ID, hostile[4].ID, hostile[5].ID} {
		if _, err := reg.Get(ctx, id); err != nil {
			t.Errorf("run %s's record is gone: %v", id, err)
		}
	}
}

func isNotFound(err error) bool { return errors.Is(err, errkind.ErrNotFound) }

func decodeSubmitted(t *testing.T, out string) submitted {
	t.Helper()
	var s submitted
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.RunID == "" {
		t.Fatalf("submit output %q: %v", out, err)
	}
	return s
}

// clean's own refusals, before it asks anything of the cluster.
func TestCleanUsage(t *testing.T) {
	isolate(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "never removes every run by default"},
		{[]string{"--state", "running"}, "active runs are never removed"},
		{[]string{"--state", "completed,pending"}, `"pending" is not a state a run ends in`},
		{[]string{"--older-than", "30"}, "no unit"},
		{[]string{"--older-than", "-2d"}, "not a number of days"},
		{[]string{"--older-than", "30d", "--yes", "--dry-run"}, "contradict"},
	} {
		_, errs, code := hpctl(t, append([]string{"clean"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("clean %v: exit %d, want %d with %q: %s", c.args, code, exitUsage, c.want, errs)
		}
	}
	// Days are days; an empty registry has nothing to remove.
	v := &ageValue{}
	if err := v.Set("30d"); err != nil || v.d != 30*24*time.Hour {
		t.Errorf("30d: %v %v", v.d, err)
	}
	if out, errs, code := hpctl(t, "clean", "--older-than", "30d"); code != 0 || !strings.Contains(out, "no runs match") {
		t.Errorf("clean of an empty registry: exit %d: %s%s", code, out, errs)
	}
}
