package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/slurm"
	"github.com/hpctl/hpctl/transport"
)

// A pipeline whose fine-tune fails on its first attempt (for real: the job's python is a
// wrapper that exits 7 for the fine-tune while a flag file exists, as a job dies of a
// node's trouble) is retried with `hpctl retry`: only the fine-tune is queued again, in
// the same run directory, it starts from the frozen stage's existing best checkpoint
// (the SHA-256 in its metrics.json is that file's), and the run completes. The run
// directory's jobs are counted in the scheduler: three, the frozen stage's once.
func TestRetryAfterFailedFinetune(t *testing.T) {
	testenv.RequireSlurm(t)
	py := requirePython(t)
	c := newCLI(t)
	dir := t.TempDir()
	python(t, py, "scripts/make-demo-data.py", filepath.Join(dir, "data"))
	flag := filepath.Join(dir, "fail-finetune")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "python")
	if err := os.WriteFile(wrapper, []byte(`#!/bin/sh
case " $* " in
*" --stage finetune "*) if [ -e '`+flag+`' ]; then echo "injected failure" >&2; exit 7; fi ;;
esac
exec '`+py+`' "$@"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "e2e.yaml")
	src := strings.Replace(pipelineSpec(dir, wrapper), "cpus_per_task: 2", "cpus_per_task: 1", 1)
	if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := c.submit(t, spec)
	st := c.waitEnded(t, sub.RunID, pipelineTimeout)
	if st.Stages[0].State != jobs.StateCompleted || st.Stages[1].State != jobs.StateFailed || st.Stages[1].ExitCode != "7" {
		t.Fatalf("first attempt: %+v\n%s", st.Stages, c.stageLogs(t, sub.RunID, st))
	}
	frozenEnd := marker(t, sub.RunDir, "frozen", "finished")
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}

	var res struct {
		RunID   string `json:"run_id"`
		Attempt int    `json:"attempt"`
		Jobs    []struct {
			Stage string `json:"stage"`
			JobID string `json:"job_id"`
		} `json:"jobs"`
		Kept []string `json:"kept"`
	}
	c.jsonOut(t, &res, "retry", sub.RunID)
	if res.Attempt != 2 || len(res.Jobs) != 1 || res.Jobs[0].Stage != "finetune" || strings.Join(res.Kept, ",") != "frozen" {
		t.Fatalf("retry: %+v", res)
	}
	st = c.waitEnded(t, sub.RunID, pipelineTimeout)
	if st.State != jobs.StateCompleted || st.Stages[1].JobID != res.Jobs[0].JobID || st.Stages[0].JobID != sub.Jobs[0].JobID {
		t.Fatalf("after the retry: %+v\n%s", st, c.stageLogs(t, sub.RunID, st))
	}
	if st.Stages[1].Attempt != 2 || st.Stages[0].Attempt != 1 {
		t.Errorf("attempts shown: frozen %d, finetune %d", st.Stages[0].Attempt, st.Stages[1].Attempt)
	}
	// The frozen stage did not run again: its finished marker is the first one.
	if again := marker(t, sub.RunDir, "frozen", "finished"); again["end_time"] != frozenEnd["end_time"] || again["job_id"] != sub.Jobs[0].JobID {
		t.Errorf("frozen's finished marker changed: %v, was %v", again, frozenEnd)
	}
	var metrics struct {
		Attempts int `json:"attempts"`
		Init     struct {
			Path   string `json:"path"`
			SHA256 string `json:"sha256"`
		} `json:"init_checkpoint"`
	}
	readJSON(t, filepath.Join(sub.RunDir, "stages", "finetune", "metrics.json"), &metrics)
	best, _ := filepath.Glob(filepath.Join(sub.RunDir, "stages", "frozen", "checkpoints", "best.*"))
	if len(best) != 1 {
		t.Fatalf("frozen's best checkpoints: %v", best)
	}
	if want := sha256File(t, best[0]); metrics.Init.SHA256 != want || metrics.Init.Path != "stages/frozen/checkpoints/"+filepath.Base(best[0]) {
		t.Errorf("finetune started from %s (sha256 %s); frozen's best %s has %s", metrics.Init.Path, metrics.Init.SHA256, best[0], want)
	}
	if metrics.Attempts != 1 {
		t.Errorf("finetune's metrics count %d attempts; a retry starts clean (1)", metrics.Attempts)
	}
	if m := marker(t, filepath.Join(sub.RunDir, "attempts", "1"), "finetune", "finished"); m["state"] != "FAILED" || m["exit_code"] != "7" {
		t.Errorf("the first attempt's finished marker in attempts/1: %v", m)
	}
	// Every job the scheduler ran in the run directory: frozen once, finetune twice.
	found, err := slurm.New(transport.NewLocal(), slurm.Options{}).Find(context.Background(), []string{sub.RunDir})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, f := range found {
		n[f.Name]++
	}
	if len(found) != 3 || n["e2e-frozen"] != 1 || n["e2e-finetune"] != 2 {
		t.Errorf("jobs in the run directory: %v (%d in all); want e2e-frozen once, e2e-finetune twice", n, len(found))
	}
	if out := c.must(t, "status", sub.RunID); !strings.Contains(out, "attempt 2") {
		t.Errorf("status does not show the attempt:\n%s", out)
	}
	if out := c.must(t, "runs"); !strings.Contains(out, "(attempt 2)") {
		t.Errorf("runs does not show the attempt:\n%s", out)
	}
	if _, errs, code := c.run(t, "retry", sub.RunID); code != 2 || !strings.Contains(errs, "nothing to retry") {
		t.Errorf("retry of a completed run: exit %d, %s", code, errs)
	}

	// Another run starts from this one's fine-tune: init_from RUN:STAGE, resolved at
	// submit to that stage's best checkpoint, whose path and SHA-256 the trainer records.
	tuned, _ := filepath.Glob(filepath.Join(sub.RunDir, "stages", "finetune", "checkpoints", "best.*"))
	if len(tuned) != 1 {
		t.Fatalf("finetune's best checkpoints: %v", tuned)
	}
	spec2 := filepath.Join(dir, "from-run.yaml")
	src2 := strings.Replace(src, "  - name: frozen\n", "  - name: frozen\n    init_from: \""+sub.RunID+":finetune\"\n", 1)
	if err := os.WriteFile(spec2, []byte(src2), 0o644); err != nil {
		t.Fatal(err)
	}
	sub2 := c.submit(t, spec2)
	st = c.waitEnded(t, sub2.RunID, pipelineTimeout)
	if st.State != jobs.StateCompleted {
		t.Fatalf("run from %s:finetune: %+v\n%s", sub.RunID, st, c.stageLogs(t, sub2.RunID, st))
	}
	readJSON(t, filepath.Join(sub2.RunDir, "stages", "frozen", "metrics.json"), &metrics)
	if want := sha256File(t, tuned[0]); metrics.Init.Path != tuned[0] || metrics.Init.SHA256 != want {
		t.Errorf("run 2's frozen started from %s (sha256 %s); want %s (%s)", metrics.Init.Path, metrics.Init.SHA256, tuned[0], want)
	}
}

// The same retry with the local executor (no Slurm, no TensorFlow): command stages, the
// second failing while a flag file exists. Only it runs again, in the same run directory.
func TestRetryLocal(t *testing.T) {
	c := newCLI(t)
	for _, d := range []string{"train/a", "train/b", "val/a", "val/b"} {
		if err := os.MkdirAll(filepath.Join(c.dir, "data", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	flag := filepath.Join(c.dir, "fail-two")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(c.dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(`name: local-retry
workdir: `+filepath.Join(c.dir, "runs")+`
executor: local
data: {train: data/train, val: data/val}
slurm: {gpus: 0, cpus_per_task: 1}
container: {runtime: none}
stages:
  - name: one
    command: [sh, -c, "echo ran >> one.runs"]
  - name: two
    depends_on: [one]
    command: [sh, -c, "echo ran >> two.runs; if [ -e '`+flag+`' ]; then exit 6; fi"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := c.submit(t, spec)
	st := c.waitEnded(t, sub.RunID, time.Minute)
	if st.Stages[0].State != jobs.StateCompleted || st.Stages[1].State != jobs.StateFailed {
		t.Fatalf("first attempt: %+v", st.Stages)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	out := c.must(t, "retry", sub.RunID)
	if !strings.Contains(out, "retried run "+sub.RunID+": two (job ") || !strings.Contains(out, "attempt 2)") || !strings.Contains(out, "kept (completed, not rerun): one") {
		t.Fatalf("retry said:\n%s", out)
	}
	st = c.waitEnded(t, sub.RunID, time.Minute)
	if st.State != jobs.StateCompleted || st.Stages[0].JobID != sub.Jobs[0].JobID || st.Stages[1].Attempt != 2 {
		t.Fatalf("after the retry: %+v", st)
	}
	for name, want := range map[string]string{"one.runs": "ran\n", "two.runs": "ran\nran\n"} {
		if b, err := os.ReadFile(filepath.Join(sub.RunDir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if m := marker(t, filepath.Join(sub.RunDir, "attempts", "1"), "two", "finished"); m["exit_code"] != "6" {
		t.Errorf("attempt 1's finished marker: %v", m)
	}
}
