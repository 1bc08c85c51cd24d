package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/pipeline"
)

// init_from as a checkpoint path or RUN:STAGE is checked on the cluster at submit (dry
// run too), each problem at its spec position, and RUN:STAGE becomes the absolute path
// of that run's stage's best checkpoint in the resolved spec the trainer reads.
func TestInitFromCheckpointAtSubmit(t *testing.T) {
	f := newFixture(t, "true", "true")
	ctx := context.Background()
	old := filepath.Join(f.dir, "old-run")
	best := filepath.Join(old, "stages", "frozen", "checkpoints", "best.h5")
	if err := os.MkdirAll(filepath.Dir(best), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(best, []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	prev := registry.Run{ID: "prev-20261201-000000-abcd", RunDir: old, Status: registry.RunSubmitted, SubmittedAt: time.Now(),
		Stages: []registry.RunStage{{Name: "frozen", JobID: "1"}, {Name: "unfinished", JobID: "2"}}}
	if err := f.reg.Put(ctx, prev); err != nil {
		t.Fatal(err)
	}
	load := func(one, two string) *experiment.Loaded {
		t.Helper()
		src := strings.Replace(string(f.spec.Source), "  - name: one\n", "  - name: one\n    init_from: "+one+"\n", 1)
		src = strings.Replace(src, "  - name: two\n", "  - name: two\n    init_from: "+two+"\n", 1)
		l, err := experiment.Parse(f.spec.File, []byte(src))
		if err == nil {
			err = l.Validate()
		}
		if err != nil {
			t.Fatalf("spec: %v", err)
		}
		return l
	}
	dry := pipeline.SubmitOptions{DryRun: true}

	_, err := pipeline.Submit(ctx, f.t, f.ex, f.reg, load(filepath.Join(f.dir, "missing.keras"), "nope-20261201-000000-abcd:frozen"), dry)
	var se *experiment.SpecError
	if !errors.As(err, &se) || len(se.Problems) != 2 {
		t.Fatalf("submit with a missing checkpoint and an unknown run: %v", err)
	}
	if got := se.Problems[0].String(); !strings.HasSuffix(got, ":17:16: stages[0].init_from: checkpoint "+filepath.Join(f.dir, "missing.keras")+" does not exist on the cluster (or is not a file)") {
		t.Errorf("problem 1: %s", got)
	}
	if got := se.Problems[1].String(); !strings.HasSuffix(got, `:21:16: stages[1].init_from: no run "nope-20261201-000000-abcd" in the registry (hpctl runs lists them)`) {
		t.Errorf("problem 2: %s", got)
	}
	_, err = pipeline.Submit(ctx, f.t, f.ex, f.reg, load(best, prev.ID+":unfinished"), dry)
	if !errors.As(err, &se) || len(se.Problems) != 1 || !strings.Contains(se.Problems[0].String(),
		":21:16: stages[1].init_from: run "+prev.ID+"'s stage unfinished has no best checkpoint") {
		t.Fatalf("submit from a stage without a checkpoint: %v", err)
	}
	_, err = pipeline.Submit(ctx, f.t, f.ex, f.reg, load(best, prev.ID+":frozn"), dry)
	if !errors.As(err, &se) || len(se.Problems) != 1 || !strings.Contains(se.Problems[0].String(),
		`:21:16: stages[1].init_from: run `+prev.ID+` has no stage "frozn" (stages: frozen, unfinished)`) {
		t.Fatalf("submit from a stage the run lacks: %v", err)
	}

	sub, err := pipeline.Submit(ctx, f.t, f.ex, f.reg, load(best, prev.ID+":frozen"), dry)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	for _, file := range sub.Files {
		if file.Path != experiment.ResolvedSpecFile {
			continue
		}
		var r struct {
			Stages []struct {
				InitFrom string `json:"init_from"`
			} `json:"stages"`
		}
		if err := json.Unmarshal(file.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.Stages[0].InitFrom != best || r.Stages[1].InitFrom != best {
			t.Fatalf("resolved init_from: %+v, want %s for both", r.Stages, best)
		}
		return
	}
	t.Fatal("no resolved spec among the files")
}
