package results_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/results"
	"github.com/hpctl/hpctl/pipeline/stagestate"
	"github.com/hpctl/hpctl/transport"
)

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestFetchBothStages(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "urban-rural-20261129-054012-a3f9")
	run := fixture{frozenEpochs: 5, finetuneEpochs: 3, finetuneStarted: true, finetuneDone: true}.write(t, remote)
	root := filepath.Join(t.TempDir(), "results")
	f, err := results.FetchResults(context.Background(), transport.NewLocal(), run, root, results.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, run.ID)
	for _, rel := range []string{"spec.yaml", "spec.resolved.json", "stages/frozen/history.csv", "stages/finetune/metrics.json",
		"stages/finetune/evaluation.json", "stages/frozen/checkpoints/best.keras", "stages/frozen/checkpoints/model-info.json",
		"logs/urban-rural-finetune-102.out", "stages/frozen/.hpctl/finished", results.PlotFile, results.ReportFile, results.SummaryFile} {
		if !exists(filepath.Join(dir, rel)) {
			t.Errorf("%s not fetched", rel)
		}
	}
	for _, rel := range []string{"trainer", "stages/frozen/state", "stages/frozen/checkpoints/final.keras"} {
		if exists(filepath.Join(dir, rel)) {
			t.Errorf("%s fetched by default", rel)
		}
	}
	if len(f.Stages) != 2 {
		t.Fatalf("stages: %+v", f.Stages)
	}
	fr, ft := f.Stages[0], f.Stages[1]
	if fr.State != "COMPLETED" || fr.EpochsRun != 5 || fr.JobID != "101" || results.Float(fr.BestValAccuracy, 2) != "0.59" ||
		results.Rate(fr.WallTimeSeconds, 1) != "125.5" || results.Rate(fr.ImagesPerSecond, 2) != "88.25" || fr.BestEpoch != 5 {
		t.Errorf("frozen summary: %+v", fr)
	}
	if ft.InitFrom != "frozen" || ft.EpochsRun != 3 || len(ft.History) != 3 || results.Float(ft.EvalAccuracy, 1) != "0.9" {
		t.Errorf("finetune summary: %+v", ft)
	}
	png, err := os.ReadFile(f.Plot)
	if err != nil {
		t.Fatal(err)
	}
	img, format, err := image.Decode(bytes.NewReader(png))
	if err != nil || format != "png" || img.Bounds().Dx() < 400 {
		t.Fatalf("plot does not decode as a PNG: %v %s", err, format)
	}
	report, _ := os.ReadFile(f.Report)
	for _, want := range []string{"| frozen | COMPLETED | 101 | 5/5 |", "| finetune | COMPLETED | 102 | 3/3 |", "](learning-curves.png)", "### finetune", "2m06s"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}

	// Fetching again copies nothing.
	f2, err := results.FetchResults(context.Background(), transport.NewLocal(), run, root, results.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f2.Transfer.Bytes != 0 || f2.Transfer.Files != 0 {
		t.Errorf("second fetch moved %+v", f2.Transfer)
	}
}

func TestFetchCheckpointOptions(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "r-1")
	run := fixture{frozenEpochs: 2, finetuneStarted: true, finetuneEpochs: 1, finetuneDone: true}.write(t, remote)
	all := t.TempDir()
	if _, err := results.FetchResults(context.Background(), transport.NewLocal(), run, all, results.Options{AllCheckpoints: true}); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"stages/frozen/checkpoints/final.keras", "stages/frozen/state/latest.json", "stages/frozen/checkpoints/best.keras"} {
		if !exists(filepath.Join(all, run.ID, rel)) {
			t.Errorf("--all-checkpoints: %s missing", rel)
		}
	}
	if exists(filepath.Join(all, run.ID, "trainer")) {
		t.Error("--all-checkpoints fetched trainer/")
	}
	none := t.TempDir()
	if _, err := results.FetchResults(context.Background(), transport.NewLocal(), run, none, results.Options{NoCheckpoints: true}); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(none, run.ID, "stages/frozen/checkpoints")) || exists(filepath.Join(none, run.ID, "stages/frozen/state")) {
		t.Error("--no-checkpoints fetched checkpoints")
	}
	if !exists(filepath.Join(none, run.ID, "stages/frozen/metrics.json")) {
		t.Error("--no-checkpoints skipped metrics")
	}
	_, err := results.FetchResults(context.Background(), transport.NewLocal(), run, none, results.Options{NoCheckpoints: true, AllCheckpoints: true})
	if !errors.Is(err, errkind.ErrUsage) {
		t.Errorf("both flags: %v", err)
	}
}

func TestFetchStagesNotStarted(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "r-2")
	run := fixture{frozenEpochs: 0}.write(t, remote)
	f, err := results.FetchResults(context.Background(), transport.NewLocal(), run, t.TempDir(), results.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Plot != "" {
		t.Errorf("plot without any epoch: %s", f.Plot)
	}
	// Started, no finished marker, nobody asked the scheduler: RUNNING. Not started and its
	// dependency not failed: PENDING, the word hpctl status uses for a job not started.
	if f.Stages[0].State != jobs.StateRunning || f.Stages[1].State != jobs.StatePending || f.Stages[1].EpochsRun != 0 {
		t.Errorf("stages: %+v", f.Stages)
	}
	report, _ := os.ReadFile(f.Report)
	if !strings.Contains(string(report), "No stage has finished an epoch yet") || !strings.Contains(string(report), "| finetune | PENDING |") {
		t.Errorf("report:\n%s", report)
	}

	// The first stage running: a plot of its epochs so far, the second stage still waiting.
	remote3 := filepath.Join(t.TempDir(), "r-3")
	run3 := fixture{frozenEpochs: 2}.write(t, remote3)
	f, err = results.FetchResults(context.Background(), transport.NewLocal(), run3, t.TempDir(), results.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Plot == "" || f.Stages[0].EpochsRun != 2 || f.Stages[1].State != jobs.StatePending {
		t.Errorf("running run: plot %q stages %+v", f.Plot, f.Stages)
	}
}

// A stage that never started because its dependency failed is CANCELLED, "dependency
// failed", as hpctl status says (fetch-results said NOT STARTED).
func TestFetchStageAfterFailedDependency(t *testing.T) {
	remote := filepath.Join(t.TempDir(), "r-4")
	run := fixture{frozenEpochs: 1}.write(t, remote)
	fin := filepath.Join(remote, "stages/frozen/.hpctl/finished")
	if err := os.WriteFile(fin, []byte("job_id=101\nexit_code=3\nend_time=1900000000\nstate=FAILED\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := results.Summarize(remote, run)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Stages[0]; s.State != jobs.StateFailed {
		t.Errorf("frozen: %+v", s)
	}
	if s := f.Stages[1]; s.State != jobs.StateCancelled || s.Reason != stagestate.ReasonDependencyFailed {
		t.Errorf("finetune: %s %q, want CANCELLED %q", s.State, s.Reason, stagestate.ReasonDependencyFailed)
	}
}

func TestFetchMissingRunDir(t *testing.T) {
	run := fixture{}.write(t, filepath.Join(t.TempDir(), "r-4"))
	run.RunDir = filepath.Join(t.TempDir(), "gone")
	_, err := results.FetchResults(context.Background(), transport.NewLocal(), run, t.TempDir(), results.Options{})
	if !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("missing run dir: %v", err)
	}
}

// TestFetchOverSSH fetches through the test sshd: same files, same summary, and a second
// fetch moves nothing.
func TestFetchOverSSH(t *testing.T) {
	cfg, host := testenv.RequireSSH(t)
	tr := transport.NewSSH(host, transport.SSHOptions{ConfigFile: cfg, ControlDir: testenv.ControlDir(t)})
	defer tr.Close()
	remote := filepath.Join(t.TempDir(), "urban-rural-20261129-054012-a3f9")
	run := fixture{frozenEpochs: 4, finetuneEpochs: 2, finetuneStarted: true, finetuneDone: true}.write(t, remote)
	run.Host = host
	root := t.TempDir()
	f, err := results.FetchResults(context.Background(), tr, run, root, results.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Stages) != 2 || f.Stages[1].State != "COMPLETED" || f.Plot == "" || !f.Transfer.Rsync {
		t.Fatalf("fetch over ssh: %+v", f)
	}
	report, _ := os.ReadFile(f.Report)
	if !strings.Contains(string(report), "fetched from `"+host+"`") {
		t.Errorf("report does not name the host:\n%s", report)
	}
	f, err = results.FetchResults(context.Background(), tr, run, root, results.Options{})
	if err != nil || f.Transfer.Bytes != 0 {
		t.Fatalf("second fetch over ssh: %+v %v", f.Transfer, err)
	}
}
