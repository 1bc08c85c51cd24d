package render

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
)

const testRunID = "urban-rural-20260101-000000-abcd"

func parse(t *testing.T, file string) *experiment.Loaded {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	l, err := experiment.Parse(file, src)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newPlan(t *testing.T, s experiment.Spec, home, base string) *experiment.Plan {
	t.Helper()
	p, err := experiment.NewPlan(s.Resolve(home, base), testRunID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requireTool finds a program the tests need. A missing one skips the test, unless
// HPCTL_REQUIRE_TOOLS=1 (CI), where it fails.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("HPCTL_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (HPCTL_REQUIRE_TOOLS=1) but not found: %v", name, err)
		}
		t.Skipf("%s not found; install it (Debian: apt-get install %s) or set HPCTL_REQUIRE_TOOLS=1 to make this a failure", name, name)
	}
	return p
}

// lint runs bash -n and shellcheck on a rendered script.
func lint(t *testing.T, name string, script []byte) {
	t.Helper()
	bash := requireTool(t, "bash")
	f := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(f, script, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
		t.Errorf("%s: bash -n: %v\n%s", name, err, out)
	}
	sc := requireTool(t, "shellcheck")
	if out, err := exec.Command(sc, "--shell=bash", "--severity=style", f).CombinedOutput(); err != nil {
		t.Errorf("%s: shellcheck: %v\n%s", name, err, out)
	}
}

// recorder is a stand-in for srun, apptainer, docker, python3...: it writes its argv,
// each word NUL-terminated, to a file of its own, then behaves as HPCTL_STANDIN says:
// exit 0 (unset), exit N ("exit N"), or wait for USR2 and exit 99 ("usr2"). scontrol
// always succeeds.
const recorder = `#!/bin/bash
printf '%s\0' "$0" "$@" >"$HPCTL_ARGV_DIR/argv.$$"
[[ ${0##*/} != scontrol ]] || exit 0
case ${HPCTL_STANDIN:-} in
"exit "*) exit "${HPCTL_STANDIN#exit }" ;;
usr2)
	trap 'exit 99' USR2
	: >"$HPCTL_ARGV_DIR/ready"
	while :; do sleep 0.05; done
	;;
esac
exit 0
`

// standIns makes a directory of recorders named names, for the front of PATH.
func standIns(t *testing.T, dir string, names ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(recorder), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

var launchers = []string{"srun", "apptainer", "singularity", "docker", "podman", "scontrol", "python3"}

// records reads every argv the stand-ins wrote, by the program's base name.
func records(t *testing.T, dir string) map[string][][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "argv.*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		words[0] = filepath.Base(words[0])
		out[words[0]] = append(out[words[0]], words)
	}
	return out
}

// evalWords is what the launch words become on the node, worked out in Go for literal and
// home parts; Expansion parts (constants of package containers) are asked of bash.
func evalWords(t *testing.T, ws []containers.Word, env []string, home string) []string {
	t.Helper()
	out := make([]string, len(ws))
	for i, w := range ws {
		var b strings.Builder
		for _, p := range w.Parts() {
			switch p.Kind {
			case containers.Literal:
				b.WriteString(p.Text)
			case containers.HomePath:
				b.WriteString(home + p.Text)
			case containers.Expansion:
				cmd := exec.Command("bash", "-c", "printf %s "+p.Text)
				cmd.Env = env
				v, err := cmd.Output()
				if err != nil {
					t.Fatalf("expand %s: %v", p.Text, err)
				}
				b.Write(v)
			}
		}
		out[i] = b.String()
	}
	out[0] = filepath.Base(out[0])
	return out
}

// readMarker parses a key=value marker file.
func readMarker(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	m := map[string]string{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		k, v, ok := strings.Cut(string(line), "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		m[k] = v
	}
	return m
}

// planOf plans a loaded spec as submit does (its source, epoch counts and positions).
func planOf(t *testing.T, l *experiment.Loaded, home, base string) *experiment.Plan {
	t.Helper()
	p, err := l.Plan(home, base, testRunID)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
