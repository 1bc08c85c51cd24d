package experiment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sweepBase = "name: x\nstages:\n  - name: frozen\n  - name: finetune\n    depends_on: [frozen]\n    init_from: frozen\n"

// Sweep problems, each at the exact file position of the offending key or swept value,
// naming the trial for a value that is wrong in it.
var badSweeps = []struct {
	name string
	src  string
	want []string
}{
	{"value wrong in some trials", sweepBase + "sweep:\n  grid:\n    stages.finetune.optimizer.learning_rate: [1.0e-5, -1]\n    seed: [1, 2]\n",
		[]string{`9:55: sweep trial 2 (stages.finetune.optimizer.learning_rate=-1, seed=1): stages[1].optimizer.learning_rate: -1 is not a learning rate in (0, 10] (and 1 more trial(s) with this value)`}},
	{"value of the wrong type", sweepBase + "sweep:\n  grid:\n    stages.finetune.unfreeze: [all, lots]\n",
		[]string{`9:37: sweep trial 1 (stages.finetune.unfreeze=lots): stages[1].unfreeze: expected none, all, or a number of layers, found the string "lots"`}},
	{"unknown key, did you mean", sweepBase + "sweep:\n  grid:\n    model.backbon: [resnet50]\n",
		[]string{`9:5: sweep: model.backbon: unknown key "backbon"; did you mean "model.backbone"?`}},
	{"unknown stage, did you mean", sweepBase + "sweep:\n  grid:\n    stages.finetun.epochs: [1]\n",
		[]string{`9:5: sweep: stages.finetun.epochs: the spec has no stage "finetun"; did you mean "stages.finetune"?`}},
	{"empty list", sweepBase + "sweep:\n  grid:\n    seed: []\n",
		[]string{`9:11: sweep.grid.seed: expected a list of at least one value to try, found an empty list`}},
	{"not a list", sweepBase + "sweep:\n  grid:\n    seed: 3\n",
		[]string{`9:11: sweep.grid.seed: expected a list of at least one value to try, found an integer`}},
	{"fixed key: workdir", sweepBase + "sweep:\n  grid:\n    workdir: [/a, /b]\n",
		[]string{`9:5: sweep: workdir cannot vary: the trials are one run in one run directory`}},
	{"fixed key: slurm", sweepBase + "sweep:\n  grid:\n    slurm.gpus: [1, 2]\n",
		[]string{`9:5: sweep: slurm.gpus cannot vary: each stage is one Slurm array job, which asks the same resources for every trial`}},
	{"fixed key: the stage list", sweepBase + "sweep:\n  grid:\n    stages: [[], []]\n",
		[]string{`9:5: sweep: stages cannot vary: the stages are the same in every trial; sweep a key inside one, such as stages.frozen.epochs`}},
	{"fixed key: a stage's dependencies", sweepBase + "sweep:\n  trials:\n    - {stages.finetune.depends_on: []}\n",
		[]string{`9:8: sweep: stages.finetune.depends_on cannot vary: the stages' order is the same in every trial`}},
	{"no trials at all", sweepBase + "sweep:\n  max_parallel: 2\n",
		[]string{`7:1: sweep: give a grid of values to try or a list of trials`}},
	{"too many trials", sweepBase + "sweep:\n  grid:\n    seed: [" + strings.Repeat("1, ", 200) + "1]\n    stages.frozen.epochs: [" + strings.Repeat("1, ", 60) + "1]\n",
		[]string{fmt.Sprintf(`7:1: sweep: more than %d trials; sweep fewer values, or split the sweep into several specs`, MaxTrials)}},
	{"bad max_parallel", sweepBase + "sweep:\n  grid: {seed: [1]}\n  max_parallel: -2\n",
		[]string{fmt.Sprintf(`9:17: sweep.max_parallel: -2 is not between 0 (no limit) and %d`, MaxTrials)}},
	{"unknown sweep key", sweepBase + "sweep:\n  gird: {seed: [1]}\n",
		[]string{`8:3: sweep.gird: unknown key; did you mean "grid"?`}},
	{"the spec's own problem once, not per trial", sweepBase + "sede: 1\nsweep:\n  grid: {seed: [1, 2]}\n",
		[]string{`7:1: sede: unknown key; did you mean "seed"?`}},
	{"an aliased value is swept like any", sweepBase + "lr: &lr 0.5\nsweep:\n  grid: {stages.frozen.optimizer.learning_rate: [*lr, -1]}\n",
		[]string{`7:1: lr: unknown key (known here: augment, cluster, container, data, description, executor, model, name, seed, slurm, stages, sweep, training, workdir)`,
			`9:55: sweep trial 1 (stages.frozen.optimizer.learning_rate=-1): stages[0].optimizer.learning_rate: -1 is not a learning rate in (0, 10]`}},
	{"explicit trial with a bad value", sweepBase + "sweep:\n  trials:\n    - {seed: 1}\n    - {stages.frozen.epochs: 0}\n",
		[]string{`10:30: sweep trial 1 (stages.frozen.epochs=0): stages[0].epochs: 0 is outside [1, 100000]`}},
}

func TestSweepProblems(t *testing.T) {
	for _, tc := range badSweeps {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "spec.yaml")
			if err := os.WriteFile(file, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(file)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Load returned %v, want a *SpecError", err)
			}
			var got []string
			for _, p := range se.Problems {
				got = append(got, strings.TrimPrefix(p.String(), file+":"))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

// The grid's product in written order (the last key varies fastest), then the explicit
// trials; each trial's spec holds its values and nothing else changes.
func TestSweepExpands(t *testing.T) {
	src := sweepBase + "seed: 7\nsweep:\n  grid:\n    stages.finetune.optimizer.learning_rate: [0.1, 0.2, 0.3]\n    stages.finetune.unfreeze: [all, 30]\n  trials:\n    - {seed: 9, model.dropout: 0.5}\n  max_parallel: 3\n"
	l, err := Parse("s.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	sw := l.Sweep
	if sw == nil || len(sw.Trials) != 7 || sw.MaxParallel != 3 {
		t.Fatalf("sweep: %+v", sw)
	}
	if got := strings.Join(sw.Keys, ","); got != "stages.finetune.optimizer.learning_rate,stages.finetune.unfreeze,seed,model.dropout" {
		t.Errorf("keys %s", got)
	}
	for k := 0; k < 6; k++ {
		st := sw.Trials[k].Spec
		lr := []float64{0.1, 0.2, 0.3}[k/2]
		if st.Stages[1].Optimizer.LearningRate != lr || st.Stages[1].Unfreeze.All != (k%2 == 0) || st.Seed != 7 {
			t.Errorf("trial %d: lr %g unfreeze %+v seed %d", k, st.Stages[1].Optimizer.LearningRate, st.Stages[1].Unfreeze, st.Seed)
		}
		if st.Stages[0].Optimizer != l.Spec.Stages[0].Optimizer || st.Name != "x" {
			t.Errorf("trial %d changed what it does not sweep", k)
		}
	}
	last := sw.Trials[6]
	if last.Spec.Seed != 9 || last.Spec.Model.Dropout != 0.5 || last.Label() != "trial 6 (seed=9, model.dropout=0.5)" {
		t.Errorf("explicit trial: %s, seed %d dropout %g", last.Label(), last.Spec.Seed, last.Spec.Model.Dropout)
	}
	if l.Spec.Stages[1].Optimizer.LearningRate == 0.1 || l.Spec.Seed != 7 {
		t.Error("expanding the sweep changed the spec itself")
	}
	p, err := l.Plan("/home/u", "/home/u", "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Trials) != 7 || p.Trials[3].Dir != "trials/3" || p.MaxParallel != 3 {
		t.Fatalf("plan trials: %d, %+v", len(p.Trials), p.Trials[3])
	}
}

// Validation of a large sweep is linear in its trials: a benchmark, not a timed test.
func BenchmarkValidateSweep1000(b *testing.B) {
	var seeds []string
	for i := 0; i < 500; i++ {
		seeds = append(seeds, fmt.Sprint(i))
	}
	src := []byte(sweepBase + "sweep:\n  grid:\n    seed: [" + strings.Join(seeds, ", ") + "]\n    stages.finetune.unfreeze: [all, 30]\n")
	for i := 0; i < b.N; i++ {
		l, err := Parse("s.yaml", src)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
