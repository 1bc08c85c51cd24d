package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/pipeline"
)

// newSweepFixture is newFixture's two command stages swept over n trials (seeds).
func newSweepFixture(t testing.TB, n int, one, two string) *fixture {
	t.Helper()
	f := newFixture(t, one, two)
	seeds := make([]string, n)
	for i := range seeds {
		seeds[i] = fmt.Sprint(i)
	}
	src := string(f.spec.Source) + "sweep:\n  grid:\n    seed: [" + strings.Join(seeds, ", ") + "]\n"
	file := filepath.Join(f.dir, "sweep.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := experiment.Load(file)
	if err != nil {
		t.Fatalf("sweep spec: %v", err)
	}
	f.spec = l
	return f
}

// A 256-trial sweep of two stages is two sbatch calls, one array job per stage.
func TestSweepIsOneSbatchPerStage(t *testing.T) {
	testenv.RequireSlurm(t)
	f := newSweepFixture(t, 256, "true", "true")
	before := f.t.Count("sbatch")
	run := f.submit(t)
	if n := f.t.Count("sbatch") - before; n != 2 {
		t.Fatalf("%d sbatch calls for a 256-trial sweep of two stages; want 2", n)
	}
	if run.Trials != 256 {
		t.Fatalf("run records %d trials", run.Trials)
	}
	for _, s := range run.Stages {
		if len(s.Arrays) != 1 || s.Arrays[0].Count != 256 || s.Arrays[0].First != 0 {
			t.Errorf("stage %s: arrays %+v; want one of 256", s.Name, s.Arrays)
		}
	}
	states, err := f.ex.Query(context.Background(), run.Stages[1].JobIDs())
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 256 {
		t.Errorf("the second stage's array has %d tasks in squeue/sacct; want 256", len(states))
	}
	_ = pipeline.Status
}
