package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs/slurm"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
)

// BenchmarkSubmit compares hpctl's submission of the two-stage pipeline (runtime none,
// trivial commands) with the raw shell baseline, two chained `sbatch --parsable` calls
// in a bash script, on the same cluster in the same run. Submitted jobs are cancelled
// outside the timed part, so the queue never fills. docs/performance.md has the numbers.
//
//	go test -run '^$' -bench BenchmarkSubmit -benchtime 50x ./pipeline
func BenchmarkSubmit(b *testing.B) {
	testenv.RequireSlurm(b)
	ctx := context.Background()
	tr := transport.NewLocal()
	ex := slurm.New(tr, slurm.Options{})

	b.Run("raw-sbatch", func(b *testing.B) {
		dir := rawScripts(b, "")
		chain := `set -e
a=$(sbatch --parsable "$1/one.sh")
b=$(sbatch --parsable --dependency=afterok:$a --kill-on-invalid-dep=yes "$1/two.sh")
echo $a $b`
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			out, err := exec.Command("bash", "-c", chain, "bash", dir).Output()
			if err != nil {
				b.Fatalf("raw chain: %v", err)
			}
			b.StopTimer()
			if err := ex.Cancel(ctx, strings.Fields(string(out))); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	b.Run("hpctl", func(b *testing.B) {
		f := newFixture(b, "true", "true")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sub, err := pipeline.Submit(ctx, tr, ex, f.reg, f.spec, pipeline.SubmitOptions{Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := ex.Cancel(ctx, []string{sub.Run.Stages[0].JobID, sub.Run.Stages[1].JobID}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	// The binary as a user runs it: process start, settings, spec parsing, registry open,
	// everything. Built once, outside the timing.
	b.Run("hpctl-binary", func(b *testing.B) {
		f := newFixture(b, "true", "true")
		bin := filepath.Join(b.TempDir(), "hpctl")
		build := exec.Command("go", "build", "-o", bin, "github.com/hpctl/hpctl/cmd/hpctl")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build hpctl: %v\n%s", err, out)
		}
		env := append(os.Environ(), "XDG_STATE_HOME="+filepath.Join(f.dir, "state-bin"), "XDG_CONFIG_HOME="+filepath.Join(f.dir, "config"))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cmd := exec.Command(bin, "submit", "--executor", "slurm", "-o", "json", f.spec.File)
			cmd.Env = env
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("hpctl submit: %v\n%s", err, out)
			}
			b.StopTimer()
			var res struct {
				Jobs []struct {
					JobID string `json:"job_id"`
				} `json:"jobs"`
			}
			if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) != 2 {
				b.Fatalf("submit output %q: %v", out, err)
			}
			if err := ex.Cancel(ctx, []string{res.Jobs[0].JobID, res.Jobs[1].JobID}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// BenchmarkSubmitSweep compares submitting a 256-trial sweep of two stages (two array
// jobs, aftercorr) with its baseline, the same 512 jobs as 256 chained pairs of plain
// `sbatch --parsable` calls in one bash script, in the same run on the same cluster.
// Jobs are cancelled outside the timed part.
//
//	go test -run '^$' -bench BenchmarkSubmitSweep -benchtime 3x ./pipeline
func BenchmarkSubmitSweep(b *testing.B) {
	testenv.RequireSlurm(b)
	ctx := context.Background()
	tr := transport.NewLocal()
	ex := slurm.New(tr, slurm.Options{})

	b.Run("raw-sbatch-512", func(b *testing.B) {
		dir := b.TempDir()
		for _, n := range []string{"one", "two"} {
			script := "#!/bin/bash\n#SBATCH --job-name=bench-" + n + "\n#SBATCH --output=" + dir + "/%x-%j.out\n" +
				"#SBATCH --mem=64M\n#SBATCH --cpus-per-task=1\n#SBATCH --time=5\n#SBATCH --hold\ntrue\n"
			if err := os.WriteFile(filepath.Join(dir, n+".sh"), []byte(script), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		chain := `set -e
for i in $(seq 256); do
	a=$(sbatch --parsable "$1/one.sh")
	b=$(sbatch --parsable --dependency=afterok:$a --kill-on-invalid-dep=yes "$1/two.sh")
	echo $a $b
done`
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			out, err := exec.Command("bash", "-c", chain, "bash", dir).Output()
			if err != nil {
				b.Fatalf("raw chain: %v", err)
			}
			b.StopTimer()
			if err := ex.Cancel(ctx, strings.Fields(string(out))); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})

	b.Run("hpctl-sweep-256", func(b *testing.B) {
		f := newSweepFixture(b, 256, "true", "true")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sub, err := pipeline.Submit(ctx, tr, ex, f.reg, f.spec, pipeline.SubmitOptions{Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := ex.Cancel(ctx, []string{sub.Run.Stages[0].JobID, sub.Run.Stages[1].JobID}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
}

// BenchmarkStatusSweep compares `status` of a 1,000-trial sweep of two stages (2,000
// array tasks; every task's markers and a 10-epoch history.csv in its trial directory)
// with its baseline, a bare squeue and sacct for the same two array jobs, in the same run
// on the same cluster. The arrays are submitted held and cancelled, so the cluster never
// runs 2,000 tasks; the files a finished sweep leaves are written by the benchmark.
//
//	go test -run '^$' -bench BenchmarkStatusSweep -benchtime 5x ./pipeline
func BenchmarkStatusSweep(b *testing.B) {
	testenv.RequireSlurm(b)
	ctx := context.Background()
	const n = 1000
	f := newSweepFixture(b, n, "true", "true", "--hold")
	run := f.submit(b)
	ids := []string{run.Stages[0].JobID, run.Stages[1].JobID}
	if err := f.ex.Cancel(ctx, ids); err != nil {
		b.Fatal(err)
	}
	history := "epoch,loss,accuracy,val_loss,val_accuracy,lr\n"
	for e := 1; e <= 10; e++ {
		history += fmt.Sprintf("%d,0.5,0.8,0.6,0.%d,0.001\n", e, 70+e)
	}
	for k := 0; k < n; k++ {
		for _, s := range run.Stages {
			d := filepath.Join(run.RunDir, "trials", fmt.Sprint(k), "stages", s.Name)
			os.MkdirAll(filepath.Join(d, ".hpctl"), 0o755)
			job := s.TaskOf(k)
			os.WriteFile(filepath.Join(d, ".hpctl", "started"), []byte("job_id="+job+"\nhost=vm\nstart_time=1764395000\nattempt=1\n"), 0o644)
			os.WriteFile(filepath.Join(d, ".hpctl", "finished"), []byte("job_id="+job+"\nexit_code=0\nend_time=1764395600\nstate=COMPLETED\n"), 0o644)
			os.WriteFile(filepath.Join(d, "history.csv"), []byte(history), 0o644)
		}
	}
	tr := transport.NewLocal()
	ex := slurm.New(tr, slurm.Options{})
	b.Run("squeue+sacct", func(b *testing.B) {
		jobs := strings.Join(ids, ",")
		for i := 0; i < b.N; i++ {
			if out, err := exec.Command("squeue", "--states=all", "-r", "--jobs="+jobs, "-h", "-o", "%i|%T|%r|%N|%M").Output(); err != nil || len(out) == 0 {
				b.Fatalf("squeue: %v", err)
			}
			if _, err := exec.Command("sacct", "-X", "-n", "-P", "-j", jobs, "--format=JobID,State,Reason,NodeList,ElapsedRaw,ExitCode,Start,End").Output(); err != nil {
				b.Fatalf("sacct: %v", err)
			}
		}
	})
	b.Run("hpctl-status", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st, err := pipeline.Status(ctx, tr, ex, []registry.Run{run}, pipeline.StatusOptions{})
			if err != nil || len(st[0].Trials) != n {
				b.Fatalf("status: %v", err)
			}
		}
	})
}

// rawScripts writes the baselines' one.sh and two.sh, trivial jobs with extra #SBATCH
// lines, and returns their directory.
func rawScripts(b *testing.B, extra string) string {
	dir := b.TempDir()
	for _, n := range []string{"one", "two"} {
		script := "#!/bin/bash\n#SBATCH --job-name=bench-" + n + "\n#SBATCH --output=" + dir + "/%x-%j.out\n" +
			"#SBATCH --mem=64M\n#SBATCH --cpus-per-task=1\n#SBATCH --time=5\n" + extra + "true\n"
		if err := os.WriteFile(filepath.Join(dir, n+".sh"), []byte(script), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}
