package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A site's settings fill what a spec leaves out, the spec wins where it says something,
// and the dry run says which value came from where.
func TestSiteSettingsFillTheSpec(t *testing.T) {
	dir := isolate(t)
	t.Setenv("HOME", filepath.Join(dir, "home"))
	cfg := filepath.Join(dir, "config", "hpctl", "config.yaml")
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte("partition: gpu-a100\naccount: proj7\nqos: long\ncontainer-image: /shared/tf-22.02.sqsh\n"), 0o644)
	t.Setenv("HPCTL_WORKDIR", filepath.Join(dir, "scratch"))
	// The spec sets the qos itself (the settings' long must lose) and no image.
	spec := filepath.Join(dir, "s.yaml")
	for _, d := range []string{"train/x", "train/y", "val/x", "val/y"} {
		os.MkdirAll(filepath.Join(dir, "data", d), 0o755)
	}
	os.WriteFile(spec, []byte("name: s\ndata: {train: "+dir+"/data/train, val: "+dir+"/data/val}\nslurm:\n  qos: short\ncontainer:\n  runtime: apptainer\nstages: [{name: a, epochs: 1}]\n"), 0o644)

	out := filepath.Join(dir, "out")
	if _, stderr, code := hpctl(t, "render", spec, "--out", out, "--run-id", "s-1"); code != 0 {
		t.Fatalf("render: exit %d: %s", code, stderr)
	}
	script, err := os.ReadFile(filepath.Join(out, "stages/a/job.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#SBATCH --partition=gpu-a100", "#SBATCH --account=proj7", "#SBATCH --qos=short",
		"/shared/tf-22.02.sqsh", "#SBATCH --chdir=\"" + filepath.Join(dir, "scratch", "s-1") + "\""} {
		if !strings.Contains(string(script), want) {
			t.Errorf("job script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(string(script), "--qos=long") {
		t.Error("the settings' qos replaced the spec's")
	}

	stdout, stderr, code := hpctl(t, "submit", spec, "--dry-run", "--executor", "local")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"from your settings", "slurm.partition", "gpu-a100", "settings file " + cfg, "workdir", "environment HPCTL_WORKDIR"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run does not say %q:\n%s", want, stdout)
		}
	}
	stdout, _, code = hpctl(t, "submit", spec, "--dry-run", "--executor", "local", "-o", "json")
	var res submitResult
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil {
		t.Fatalf("dry run json: exit %d: %v", code, err)
	}
	got := map[string]string{}
	for _, sv := range res.Site {
		got[sv.Key] = sv.From
	}
	if got["slurm.partition"] != "settings file "+cfg || got["workdir"] != "environment HPCTL_WORKDIR" || got["slurm.qos"] != "" {
		t.Errorf("site_settings: %+v", res.Site)
	}
}

// A bad value from the settings is the setting's problem: the message names where it was
// set, not a line of the spec that does not mention it.
func TestBadSiteSettingNamesTheSetting(t *testing.T) {
	dir := isolate(t)
	t.Setenv("HPCTL_PARTITION", "gpu;rm -rf ~")
	spec := filepath.Join(dir, "s.yaml")
	os.WriteFile(spec, []byte("name: s\nstages: [{name: a, epochs: 1}]\n"), 0o644)
	_, stderr, code := hpctl(t, "validate", spec)
	if code != exitUsage || !strings.Contains(stderr, "environment HPCTL_PARTITION: slurm.partition:") ||
		!strings.Contains(stderr, "the spec "+spec+" does not set slurm.partition") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The same value written in the spec is reported at its position.
	os.WriteFile(spec, []byte("name: s\nslurm: {partition: \"gpu;x\"}\nstages: [{name: a, epochs: 1}]\n"), 0o644)
	if _, stderr, code := hpctl(t, "validate", spec); code != exitUsage || !strings.Contains(stderr, spec+":2:") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// host: --host wins over the spec; the setting (file or HPCTL_HOST) only fills a spec that
// names no host.
func TestHostSettingFillsButFlagWins(t *testing.T) {
	dir := isolate(t)
	spec := filepath.Join(dir, "s.yaml")
	for _, d := range []string{"train/x", "train/y", "val/x", "val/y"} {
		os.MkdirAll(filepath.Join(dir, "data", d), 0o755)
	}
	data := "data: {train: " + dir + "/data/train, val: " + dir + "/data/val}\n"
	os.WriteFile(spec, []byte("name: s\n"+data+"stages: [{name: a, epochs: 1}]\n"), 0o644)
	t.Setenv("HPCTL_HOST", "no-such-host.invalid")
	if _, stderr, code := hpctl(t, "submit", spec, "--dry-run", "--executor", "slurm"); code != exitUnreachable {
		t.Fatalf("HPCTL_HOST did not fill cluster.host: exit %d: %s", code, stderr)
	}
	os.WriteFile(spec, []byte("name: s\n"+data+"cluster: {host: \"\"}\ncontainer: {runtime: none}\nstages: [{name: a, epochs: 1}]\n"), 0o644)
	if _, stderr, code := hpctl(t, "submit", spec, "--dry-run", "--executor", "local"); code != 0 {
		t.Fatalf("the spec's cluster.host (here: none) did not win over HPCTL_HOST: exit %d: %s", code, stderr)
	}
	if _, _, code := hpctl(t, "--host", "no-such-host.invalid", "submit", spec, "--dry-run", "--executor", "slurm"); code != exitUnreachable {
		t.Fatalf("--host did not win over the spec: exit %d", code)
	}
}

// A duration flag reads as the settings do: with a unit, or a one-line error saying how.
func TestDurationFlagNeedsAUnit(t *testing.T) {
	isolate(t)
	_, stderr, code := hpctl(t, "status", "--interval", "5")
	if code != exitUsage || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, `"5" has no unit; write it as 5s`) {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	_, stderr, code = hpctl(t, "status", "--interval", "500ms")
	if code != exitUsage || !strings.Contains(stderr, "--interval 500ms is below 1s") {
		t.Fatalf("exit %d: %q", code, stderr)
	}
}
