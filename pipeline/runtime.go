package pipeline

import (
	"fmt"
	"strings"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
)

// CheckExecutor refuses a spec whose container runtime cannot run on ex, before anything
// is rendered or staged: a runtime that needs srun (pyxis is srun --container-image) would
// fail every stage at once outside a Slurm job. A nil ex (a dry run may have none) and an
// unknown runtime (validation reports it) pass.
func CheckExecutor(l *experiment.Loaded, ex jobs.Executor) error {
	if ex == nil || ex.Name() == "slurm" {
		return nil
	}
	// Several nodes need Slurm to allocate them and srun to start one trainer on each.
	if key, n := multiNode(l.Spec); n > 1 {
		return fmt.Errorf("%w: %s: %s is %d, but the jobs would run on this machine without Slurm (no sbatch answered), which has one node; reach the cluster with --host or cluster.host, or set it to 1",
			errkind.ErrUsage, l.File, key, n)
	}
	runtime := l.Spec.Container.Runtime
	rt, err := containers.Lookup(runtime)
	if err != nil || !rt.Capabilities().NeedsSrun {
		return nil
	}
	return fmt.Errorf("%w: %s: container.runtime %s runs through srun, but the jobs would run on this machine without Slurm (no sbatch answered); reach the cluster with --host or cluster.host, or use runtime %s here",
		errkind.ErrUsage, l.File, runtime, withoutSrun())
}

// withoutSrun lists the runtimes that run without Slurm: "apptainer, docker or none".
func withoutSrun() string {
	var names []string
	for _, n := range containers.Names() {
		if rt, err := containers.Lookup(n); err == nil && !rt.Capabilities().NeedsSrun {
			names = append(names, n)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// multiNode returns the first key asking for more than one node, and its value.
func multiNode(s experiment.Spec) (string, int) {
	if s.Slurm.Nodes > 1 {
		return "slurm.nodes", s.Slurm.Nodes
	}
	for i, st := range s.Stages {
		if st.Slurm.Nodes != nil && *st.Slurm.Nodes > 1 {
			return fmt.Sprintf("stages[%d].slurm.nodes", i), *st.Slurm.Nodes
		}
	}
	return "", 1
}
