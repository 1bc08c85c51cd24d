package render

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/testenv"
)

// allowedExtras pass validation and carry the characters that sbatch keeps on an #SBATCH
// line ('%', '$', ',', ':', '@', '=' in the value).
var allowedExtras = []string{"--comment=50%_done,$HOME:x@y=z", "--mail-type=END,FAIL"}

// extraScript renders minimal.yaml's stage with allowedExtras, validated.
func extraScript(t *testing.T, workdir string) (*experiment.Plan, []byte) {
	t.Helper()
	l := parse(t, "testdata/minimal.yaml")
	l.Spec.Slurm.Extra = allowedExtras
	if workdir != "" {
		l.Spec.Workdir = workdir
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	p := planOf(t, l, "/home/u", "/home/u")
	s, err := Script(p, p.Stages[0])
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

// TestExtraIsOneDirectiveLine: each allowed slurm.extra entry is one #SBATCH line of one
// word, exactly as written.
func TestExtraIsOneDirectiveLine(t *testing.T) {
	_, s := extraScript(t, "")
	for _, e := range allowedExtras {
		var lines []string
		for _, line := range strings.Split(string(s), "\n") {
			if strings.Contains(line, e) {
				lines = append(lines, line)
			}
		}
		if len(lines) != 1 || lines[0] != "#SBATCH "+e || len(strings.Fields(lines[0])) != 2 {
			t.Errorf("lines with %q: %q", e, lines)
		}
	}
}

// TestSlurmReadsExtraAsWritten submits (held) the script to the test cluster: sbatch
// takes the extra's value as written and the job keeps hpctl's name.
func TestSlurmReadsExtraAsWritten(t *testing.T) {
	testenv.RequireSlurm(t)
	p, _ := extraScript(t, filepath.Join(t.TempDir(), "runs"))
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(files, p.RunDir); err != nil {
		t.Fatal(err)
	}
	st := p.Stages[0]
	out, err := exec.Command("sbatch", "--hold", "--parsable", experiment.ScriptPath(p.RunDir, st.Name)).CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, out)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	t.Cleanup(func() { _ = exec.Command("scancel", id).Run() })
	show, err := exec.Command("scontrol", "show", "job", "--oneliner", id).CombinedOutput()
	if err != nil {
		t.Fatalf("scontrol: %v: %s", err, show)
	}
	fields := strings.Fields(string(show))
	for _, want := range []string{"JobName=" + st.JobName, "Comment=50%_done,$HOME:x@y=z"} {
		if !slices.Contains(fields, want) {
			t.Errorf("job %s lacks %q: %s", id, want, show)
		}
	}
}
