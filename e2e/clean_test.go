package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
)

// TestCleanAsksOnATerminal runs clean on a real terminal (a pseudo-terminal from
// util-linux's script(1)): answering no removes nothing, yes removes the run's directory
// and record.
func TestCleanAsksOnATerminal(t *testing.T) {
	testenv.RequireSlurm(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) for a pseudo-terminal")
	}
	c := newCLI(t)
	dir := t.TempDir()
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	spec := filepath.Join(dir, "s.yaml")
	os.WriteFile(spec, []byte(fmt.Sprintf(`name: asked
workdir: %s/runs
executor: slurm
data: {train: %s/data/train, val: %s/data/val}
slurm: {time: "00:05:00", gpus: 0, cpus_per_task: 1, mem: 64M, signal_before: 0}
container: {runtime: none}
stages:
  - name: one
    command: ["true"]
  - name: two
    depends_on: [one]
    command: ["true"]
`, dir, dir, dir)), 0o644)
	sub := c.submit(t, spec)
	c.waitEnded(t, sub.RunID, 2*time.Minute)

	onTerminal := func(answer string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "script", "-qec", c.bin+" clean "+sub.RunID+" --remote", "/dev/null")
		cmd.Env, cmd.Dir = c.env, c.dir
		cmd.Stdin = strings.NewReader(answer + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("clean on a terminal, answering %q: %v\n%s", answer, err, out)
		}
		return string(out)
	}
	out := onTerminal("n")
	if !strings.Contains(out, "remove these 1 run(s)? [y/N]") || !strings.Contains(out, "nothing was removed") {
		t.Fatalf("answering no:\n%s", out)
	}
	if _, err := os.Stat(sub.RunDir); err != nil || !strings.Contains(c.must(t, "runs"), sub.RunID) {
		t.Fatalf("answering no removed the run: %v", err)
	}
	out = onTerminal("y")
	if !strings.Contains(out, "removed "+sub.RunID) {
		t.Fatalf("answering yes:\n%s", out)
	}
	if _, err := os.Stat(sub.RunDir); !os.IsNotExist(err) || strings.Contains(c.must(t, "runs"), sub.RunID) {
		t.Fatalf("answering yes left the run: %v", err)
	}
}
