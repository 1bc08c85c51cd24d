package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/config"
)

// hpctl runs the real command line in-process, as main would, with a private state and
// config directory so tests never touch the user's.
func hpctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return hpctlWith(t, &env{}, args...)
}

// hpctlWith is hpctl with the dependencies set in e (its writers are the test's).
func hpctlWith(t *testing.T, e *env, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	e.stdout, e.stderr = &out, &errb
	code = runEnv(e, append([]string{"hpctl"}, args...))
	return out.String(), errb.String(), code
}

func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	// Every setting's variable, so that the machine's own (HPCTL_PARTITION=...) cannot
	// leak into a test.
	for _, k := range append([]string{"HPCTL_CONFIG"}, mapEnv(config.Keys)...) {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return dir
}

func mapEnv(keys []string) []string {
	var out []string
	for _, k := range keys {
		out = append(out, config.EnvName(k))
	}
	return out
}

func TestValidateReportsEveryProblemWithPosition(t *testing.T) {
	dir := isolate(t)
	spec := filepath.Join(dir, "bad.yaml")
	os.WriteFile(spec, []byte("name: x\nslurm:\n  time: soon\n  gpu: 1\nstages: [{name: a}]\n"), 0o644)
	_, stderr, code := hpctl(t, "validate", spec)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
	}
	for _, want := range []string{
		spec + ":3:9: slurm.time: \"soon\" is not a Slurm time",
		spec + ":4:3: slurm.gpu: unknown key; did you mean \"gpus\"?",
		"the spec has 2 problems",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestValidateGoodSpec(t *testing.T) {
	isolate(t)
	stdout, stderr, code := hpctl(t, "validate", "../../configs/urban.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "ok (urban-rural, 2 stages)") {
		t.Errorf("stdout: %q", stdout)
	}
}

func TestValidateMissingFile(t *testing.T) {
	isolate(t)
	_, stderr, code := hpctl(t, "validate", "no-such.yaml")
	if code != exitUsage || !strings.Contains(stderr, "no-such.yaml: cannot read the spec: no such file or directory") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestInitWritesAValidStarterAndRefusesToOverwrite(t *testing.T) {
	dir := isolate(t)
	file := filepath.Join(dir, "flowers.yaml")
	if _, stderr, code := hpctl(t, "init", "flowers", "--file", file); code != 0 {
		t.Fatalf("init: exit %d: %s", code, stderr)
	}
	if _, stderr, code := hpctl(t, "validate", file); code != 0 {
		t.Fatalf("the starter does not validate: %s", stderr)
	}
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), "name: flowers\n") {
		t.Errorf("starter does not carry the name:\n%s", b)
	}
	_, stderr, code := hpctl(t, "init", "flowers", "--file", file)
	if code != exitUsage || !strings.Contains(stderr, "already exists") {
		t.Errorf("second init: exit %d, %s", code, stderr)
	}
	_, stderr, code = hpctl(t, "init", "bad name; rm -rf", "--file", filepath.Join(dir, "x.yaml"))
	if code != exitUsage {
		t.Errorf("bad name: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.yaml")); err == nil {
		t.Error("a starter with a bad name was written")
	}
}

func TestVersionJSON(t *testing.T) {
	isolate(t)
	stdout, _, code := hpctl(t, "version", "-o", "json")
	if code != 0 {
		t.Fatal(code)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	if !strings.HasPrefix(v.GoVersion, "go1.") || v.Version == "" || v.Commit == "" {
		t.Errorf("version info %+v", v)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{
		{"no-such-command"},
		{"validate"},
		{"validate", "--no-such-flag", "x.yaml"},
		{"version", "-o", "xml"},
		{"--log-level", "loud", "version"},
	} {
		if _, stderr, code := hpctl(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %q", args, code, exitUsage, stderr)
		}
	}
}

func TestSettingsPrecedence(t *testing.T) {
	dir := isolate(t)
	cfg := filepath.Join(dir, "config", "hpctl", "config.yaml")
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte("log-level: loud\n"), 0o644)
	// The file's bad value is used (and refused) when nothing overrides it...
	if _, stderr, code := hpctl(t, "version"); code != exitUsage || !strings.Contains(stderr, "loud") {
		t.Fatalf("file setting not read: exit %d %s", code, stderr)
	}
	// ...the environment overrides the file...
	t.Setenv("HPCTL_LOG_LEVEL", "warn")
	if _, stderr, code := hpctl(t, "version"); code != 0 {
		t.Fatalf("env did not override file: %s", stderr)
	}
	// ...and a flag overrides the environment.
	t.Setenv("HPCTL_LOG_LEVEL", "loud")
	if _, stderr, code := hpctl(t, "--log-level", "error", "version"); code != 0 {
		t.Fatalf("flag did not override env: %s", stderr)
	}
	os.WriteFile(cfg, []byte("colour: blue\n"), 0o644)
	os.Unsetenv("HPCTL_LOG_LEVEL")
	if _, stderr, code := hpctl(t, "version"); code != exitUsage || !strings.Contains(stderr, `unknown setting "colour"`) {
		t.Fatalf("unknown setting accepted: exit %d %s", code, stderr)
	}
}

func TestInterspersedFlags(t *testing.T) {
	app := newApp(&env{})
	for _, tc := range []struct{ in, want string }{
		{"hpctl init NAME --file f.yaml --force", "hpctl init --file f.yaml --force -- NAME"},
		{"hpctl --log-level debug init NAME --file=f.yaml", "hpctl --log-level debug init --file=f.yaml -- NAME"},
		{"hpctl validate a.yaml b.yaml", "hpctl validate a.yaml b.yaml"},
		{"hpctl init --file f.yaml NAME", "hpctl init --file f.yaml -- NAME"},
		{"hpctl init NAME -- --file", "hpctl init NAME -- --file"},
		{"hpctl weights fetch s.yaml --mirror http://m -o json", "hpctl weights fetch --mirror http://m -o json -- s.yaml"},
		// Global flags after the command move before it (hpctl#14).
		{"hpctl weights fetch --host login s.yaml", "hpctl --host login weights fetch s.yaml"},
		{"hpctl weights --host=login fetch s.yaml -o json", "hpctl --host=login weights fetch -o json -- s.yaml"},
		{"hpctl --log-level debug status latest --state-dir /s -w", "hpctl --log-level debug --state-dir /s status -w -- latest"},
		{"hpctl init NAME --file f.yaml -- -x", "hpctl init --file f.yaml -- NAME -x"},
		{"hpctl status -- --host h", "hpctl status -- --host h"},
		{"hpctl stauts --host h", "hpctl stauts --host h"},
		{"hpctl status --wacth latest", "hpctl status --wacth -- latest"},
		{"hpctl submit s.yaml --generate-bash-completion", "hpctl submit s.yaml --generate-bash-completion"},
	} {
		got := strings.Join(interspersed(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("interspersed(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRenderWritesTheRunDirectory(t *testing.T) {
	dir := isolate(t)
	t.Setenv("HOME", filepath.Join(dir, "home"))
	out := filepath.Join(dir, "out")
	stdout, stderr, code := hpctl(t, "render", "../../configs/urban.yaml", "--out", out, "--run-id", "urban-t")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"spec.yaml", "spec.resolved.json", "trainer/train.py", "stages/frozen/job.sh", "stages/finetune/job.sh"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("render did not write %s: %v", f, err)
		}
	}
	script, _ := os.ReadFile(filepath.Join(out, "stages/finetune/job.sh"))
	runDir := filepath.Join(dir, "home", "hpctl-runs", "urban-t")
	if !strings.Contains(string(script), "#SBATCH --chdir=\""+runDir+"\"") {
		t.Errorf("finetune script does not run in %s:\n%s", runDir, script)
	}
	if !strings.Contains(stdout, "rendered run urban-t") {
		t.Errorf("stdout %q", stdout)
	}
	// A second render into the same place is refused rather than mixed in.
	if _, _, code := hpctl(t, "render", "../../configs/urban.yaml", "--out", out); code != exitUsage {
		t.Errorf("render over an existing dir: exit %d", code)
	}
}

func TestRenderWritesNothingForAnInvalidSpec(t *testing.T) {
	dir := isolate(t)
	spec := filepath.Join(dir, "bad.yaml")
	os.WriteFile(spec, []byte("name: x\nstages: [{name: a, epochs: 0}]\n"), 0o644)
	out := filepath.Join(dir, "out")
	_, stderr, code := hpctl(t, "render", spec, "--out", out)
	if code != exitUsage || !strings.Contains(stderr, spec+":2:") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an invalid spec was rendered")
	}
}

func TestSubmitRefusesPyxisWithoutSlurm(t *testing.T) {
	isolate(t)
	_, stderr, code := hpctl(t, "submit", "--executor", "local", "../../configs/urban.yaml")
	if code != exitUsage || !strings.Contains(stderr, "container.runtime pyxis runs through srun") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if out, _, _ := hpctl(t, "runs"); !strings.Contains(out, "no runs yet") {
		t.Errorf("a refused submission left a run in the registry: %s", out)
	}
}
