package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
)

// named is an executor that is only a name: CheckExecutor must decide before anything
// is submitted, so none of the other methods may be called.
type named struct {
	jobs.Executor
	name string
}

func (n named) Name() string { return n.name }

func TestCheckExecutor(t *testing.T) {
	for _, tt := range []struct {
		runtime string
		ex      jobs.Executor
		refused bool
	}{
		{"pyxis", named{name: "local"}, true},
		{"pyxis", named{name: "slurm"}, false},
		{"pyxis", nil, false}, // a dry run without an executor runs nothing
		{"apptainer", named{name: "local"}, false},
		{"docker", named{name: "local"}, false},
		{"none", named{name: "local"}, false},
		{"no-such-runtime", named{name: "local"}, false}, // validation's to report
	} {
		l := &experiment.Loaded{File: "spec.yaml", Spec: experiment.Default()}
		l.Spec.Container.Runtime = tt.runtime
		err := CheckExecutor(l, tt.ex)
		if (err != nil) != tt.refused {
			t.Errorf("%s on %v: %v", tt.runtime, tt.ex, err)
			continue
		}
		if err == nil {
			continue
		}
		want := "usage error: spec.yaml: container.runtime pyxis runs through srun, but the jobs would run on this machine without Slurm (no sbatch answered); " +
			"reach the cluster with --host or cluster.host, or use runtime apptainer, docker, none, podman or singularity here"
		if !errors.Is(err, errkind.ErrUsage) || err.Error() != want {
			t.Errorf("%s on %v:\n got %v\nwant %s", tt.runtime, tt.ex, err, want)
		}
	}
}

// A stage on several nodes needs Slurm: the local executor refuses it before anything runs.
func TestCheckExecutorRefusesNodesLocally(t *testing.T) {
	l := &experiment.Loaded{File: "spec.yaml", Spec: experiment.Default()}
	l.Spec.Container.Runtime = "none"
	two := 2
	l.Spec.Stages = []experiment.Stage{{Name: "a"}, {Name: "b", Slurm: experiment.StageSlurm{Nodes: &two}}}
	if err := CheckExecutor(l, named{name: "slurm"}); err != nil {
		t.Fatalf("on Slurm: %v", err)
	}
	err := CheckExecutor(l, named{name: "local"})
	want := "usage error: spec.yaml: stages[1].slurm.nodes is 2, but the jobs would run on this machine without Slurm (no sbatch answered), which has one node; reach the cluster with --host or cluster.host, or set it to 1"
	if !errors.Is(err, errkind.ErrUsage) || err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestSubmitChecksExecutorFirst: Submit refuses before it asks the transport anything (a
// nil transport would panic at its first use).
func TestSubmitChecksExecutorFirst(t *testing.T) {
	l := &experiment.Loaded{File: "spec.yaml", Spec: experiment.Default()}
	l.Spec.Container.Runtime = "pyxis"
	_, err := Submit(context.Background(), nil, named{name: "local"}, nil, l, SubmitOptions{})
	if !errors.Is(err, errkind.ErrUsage) || !strings.Contains(err.Error(), "runs through srun") {
		t.Fatalf("Submit: %v", err)
	}
}
