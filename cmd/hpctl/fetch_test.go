package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

// fetchFixture writes a run directory whose first stage finished three epochs and whose
// second has not started, and records the run in the isolated registry.
func fetchFixture(t *testing.T, dir, id string) registry.Run {
	t.Helper()
	rd := filepath.Join(dir, "cluster", id)
	files := map[string]string{
		"spec.yaml":                                 "name: demo\n",
		"spec.resolved.json":                        "{}\n",
		"trainer/train.py":                          "\n",
		"stages/frozen/.hpctl/started":              "job_id=11\nstart_time=1764395000\nattempt=1\n",
		"stages/frozen/.hpctl/finished":             "job_id=11\nexit_code=0\nend_time=1764395090\nstate=COMPLETED\n",
		"stages/frozen/history.csv":                 "epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,0.7,0.5,0.69,0.55,0.001\n2,0.6,0.6,0.62,0.65,0.001\n3,0.5,0.7,0.58,0.6,0.001\n",
		"stages/frozen/checkpoints/best.keras":      "best",
		"stages/frozen/checkpoints/final.keras":     "final",
		"stages/frozen/state/latest.json":           "{}",
		"logs/demo-frozen-11.out":                   "out\n",
		"stages/finetune/job.sh":                    "#!/bin/sh\n",
		"stages/frozen/checkpoints/model-info.json": "{}",
	}
	for rel, data := range files {
		p := filepath.Join(rd, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := registry.Run{ID: id, SpecName: "demo", RunDir: rd, Executor: "local", Status: registry.RunSubmitted, SubmittedAt: time.Now(),
		Stages: []registry.RunStage{{Name: "frozen", JobID: "11", Epochs: 3}, {Name: "finetune", JobID: "12", Epochs: 2, DependsOn: []string{"frozen"}}}}
	reg, err := registry.Open(context.Background(), filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := reg.Put(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	return run
}

func TestFetchResultsCommand(t *testing.T) {
	dir := isolate(t)
	fetchFixture(t, dir, "demo-20261129-054012-a3f9")
	res := filepath.Join(dir, "res")
	stdout, stderr, code := hpctl(t, "fetch-results", "--results-dir", res)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"demo-20261129-054012-a3f9", "frozen", "COMPLETED", "3/3", "0.6500 (ep 2)", "1m30s", "finetune", "PENDING",
		"plot:    " + filepath.Join(res, "demo-20261129-054012-a3f9", "learning-curves.png") + "\n         " +
			filepath.Join(res, "demo-20261129-054012-a3f9", "learning-curves.svg") + "\n", "report:  "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(res, "demo-20261129-054012-a3f9", "stages/frozen/checkpoints/final.keras")); err == nil {
		t.Error("final checkpoint fetched by default")
	}

	// Again, as JSON, by id prefix: nothing new to copy.
	stdout, stderr, code = hpctl(t, "fetch-results", "--results-dir", res, "-o", "json", "demo-2026")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out []struct {
		RunID    string `json:"run_id"`
		Transfer struct {
			Bytes   int64 `json:"bytes"`
			Checked int   `json:"checked"`
		} `json:"transfer"`
		Stages []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"stages"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("json: %v\n%s", err, stdout)
	}
	if len(out) != 1 || out[0].Transfer.Bytes != 0 || out[0].Transfer.Checked == 0 || len(out[0].Stages) != 2 {
		t.Errorf("json: %+v", out)
	}
}

func TestFetchResultsErrors(t *testing.T) {
	dir := isolate(t)
	_, stderr, code := hpctl(t, "fetch-results", "--results-dir", filepath.Join(dir, "r"), "nope")
	if code != exitNotFound {
		t.Errorf("unknown run: exit %d, want %d: %s", code, exitNotFound, stderr)
	}
	_, stderr, code = hpctl(t, "fetch-results", "--all-checkpoints", "--no-checkpoints")
	if code != exitUsage {
		t.Errorf("contradicting flags: exit %d: %s", code, stderr)
	}
	run := fetchFixture(t, dir, "gone-1")
	os.RemoveAll(run.RunDir)
	_, stderr, code = hpctl(t, "fetch-results", "--results-dir", filepath.Join(dir, "r"), "gone-1")
	if code != exitNotFound || !strings.Contains(stderr, "not on the cluster") {
		t.Errorf("missing run dir: exit %d: %s", code, stderr)
	}
}

// An empty or blank run id is a prefix of every id; it must be refused before any command
// acts on a run, even when only one run is recorded.
func TestEmptyRunIDIsAUsageError(t *testing.T) {
	dir := isolate(t)
	want := fetchFixture(t, dir, "demo-20261129-054012-a3f9")
	res := filepath.Join(dir, "res")
	for _, args := range [][]string{
		{"cancel", ""}, {"cancel", "  "}, {"logs", ""}, {"status", " "}, {"fetch-results", "--results-dir", res, ""},
	} {
		_, stderr, code := hpctl(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "empty run id") {
			t.Errorf("hpctl %q: exit %d, stderr %q; want exit %d and \"empty run id\"", args, code, stderr, exitUsage)
		}
	}
	if _, err := os.Stat(res); err == nil {
		t.Error("fetch-results with an empty id wrote a results folder")
	}
	reg, err := registry.Open(context.Background(), filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	got, err := reg.Get(context.Background(), want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != want.Status || got.Error != "" {
		t.Errorf("run changed by refused commands: status %q error %q", got.Status, got.Error)
	}
}

// status and fetch-results read a stage through the same interpreter: a stage that never
// started because its dependency failed or was cancelled is CANCELLED in both (fetch-results
// said NOT STARTED). The local executor has never heard of the fixture's jobs, as Slurm
// has forgotten purged ones, so status, like fetch-results, has only the markers to go by.
func TestStatusAndFetchResultsSayTheSameWord(t *testing.T) {
	for _, first := range []string{"job_id=11\nexit_code=3\nend_time=1764395090\nstate=FAILED\n", "job_id=11\nexit_code=143\nend_time=1764395090\nstate=CANCELLED\n"} {
		dir := isolate(t)
		run := fetchFixture(t, dir, "demo-20261129-054012-a3f9")
		if err := os.WriteFile(filepath.Join(run.RunDir, "stages/frozen/.hpctl/finished"), []byte(first), 0o644); err != nil {
			t.Fatal(err)
		}
		st := statusJSON(t, run.ID)
		stdout, stderr, code := hpctl(t, "fetch-results", "--results-dir", filepath.Join(dir, "res"), "-o", "json", run.ID)
		if code != 0 {
			t.Fatalf("fetch-results: exit %d: %s", code, stderr)
		}
		var fetched []struct {
			Stages []struct {
				Name   string `json:"name"`
				State  string `json:"state"`
				Reason string `json:"reason"`
			} `json:"stages"`
		}
		if err := json.Unmarshal([]byte(stdout), &fetched); err != nil || len(fetched) != 1 || len(fetched[0].Stages) != len(st.Stages) {
			t.Fatalf("fetch-results json (%v):\n%s", err, stdout)
		}
		for i, s := range st.Stages {
			f := fetched[0].Stages[i]
			if f.Name != s.Name || f.State != string(s.State) || f.Reason != s.Reason {
				t.Errorf("stage %s: status says %s %q, fetch-results %s %q", s.Name, s.State, s.Reason, f.State, f.Reason)
			}
		}
		if s := st.Stages[1]; s.State != jobs.StateCancelled || s.Reason != pipeline.ReasonDependencyFailed {
			t.Errorf("finetune after %q: %s %q", first, s.State, s.Reason)
		}
	}
}
