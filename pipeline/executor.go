package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/local"
	"github.com/hpctl/hpctl/jobs/slurm"
	"github.com/hpctl/hpctl/transport"
)

// ExecutorOptions configure the executors NewExecutor builds.
type ExecutorOptions struct {
	Slurm slurm.Options
	Local local.Options
	// Picked, when set, is told which executor "auto" chose (hpctl logs it).
	Picked func(name string)
}

// NewExecutor returns the executor name (one of jobs.ExecutorNames; "" is auto) running
// jobs through t. Auto picks Slurm when sbatch answers through t, else the local
// executor. The local executor runs jobs on this machine only, so it is refused for a
// remote transport. Errors for names and combinations wrap errkind.ErrUsage.
func NewExecutor(ctx context.Context, name string, t transport.Transport, o ExecutorOptions) (jobs.Executor, error) {
	if name == "" || name == jobs.ExecutorAuto {
		name = jobs.ExecutorLocal
		if slurm.Available(ctx, t) {
			name = jobs.ExecutorSlurm
		}
		if o.Picked != nil {
			o.Picked(name)
		}
	}
	switch name {
	case jobs.ExecutorSlurm:
		return slurm.New(t, o.Slurm), nil
	case jobs.ExecutorLocal:
		if t.Name() != "local" {
			return nil, fmt.Errorf("%w: the local executor runs jobs on this machine; it cannot run them through %s (use --executor slurm)", errkind.ErrUsage, t.Name())
		}
		return local.New(o.Local)
	}
	return nil, fmt.Errorf("%w: executor %q is not one of %s", errkind.ErrUsage, name, strings.Join(jobs.ExecutorNames, ", "))
}
