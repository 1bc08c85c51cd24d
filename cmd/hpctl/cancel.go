package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
	"github.com/urfave/cli/v2"
)

func init() { register(60, cancelCommand) }

type cancelOptions struct {
	runs []string
}

func cancelCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel every job of runs",
		ArgsUsage: "RUN...",
		Description: `Cancels the jobs of each RUN (pending or running) with one scancel per run. Jobs that
already ended are left as they are; a run whose jobs had all ended says so. The run
directory stays.

Examples:
   hpctl cancel latest
   hpctl cancel urban-rural-20261129-054012-a3f9`,
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError(errorf("cancel needs at least one RUN"))
			}
			return runCancel(c.Context, e, cancelOptions{runs: c.Args().Slice()})
		},
	}
}

func runCancel(ctx context.Context, e *env, o cancelOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	for _, id := range o.runs {
		run, err := reg.Find(ctx, id)
		if err != nil {
			return err
		}
		t := e.newTransport(run.Host)
		err = e.cancelRun(ctx, t, reg, run)
		t.Close()
		if err != nil {
			return fmt.Errorf("cancel run %s: %w", run.ID, err)
		}
	}
	return nil
}

// cancelRun cancels run's jobs, after settling a submission that was interrupted (its
// jobs are found even where their ids were never recorded).
func (e *env) cancelRun(ctx context.Context, t transport.Transport, reg registry.Store, run registry.Run) error {
	ex, err := e.newExecutor(ctx, run.Executor, t)
	if err != nil {
		return err
	}
	if run.Status == registry.RunSubmitting {
		settled, err := pipeline.Reconcile(ctx, t, ex, reg, []registry.Run{run})
		if err != nil {
			return err
		}
		if run = settled[0]; run.Status == registry.RunFailed {
			fmt.Fprintf(e.stdout, "run %s: %s\n", run.ID, run.Error)
			return nil
		}
	}
	var ids []string
	for _, s := range run.Stages {
		ids = append(ids, s.JobIDs()...)
	}
	if len(ids) == 0 {
		fmt.Fprintf(e.stdout, "run %s has no jobs to cancel\n", run.ID)
		return nil
	}
	// Ask first, so the message says what cancel did: a run whose jobs all ended was not
	// cancelled. A job the executor no longer knows is not pending or running either
	// (squeue lists every live job; Slurm forgets ended ones without accounting).
	states, err := ex.Query(ctx, ids)
	if err != nil {
		return err
	}
	var live, ended []string
	for _, id := range ids {
		st, ok := states[id]
		switch {
		case !ok:
			ended = append(ended, id+" (no longer known to the "+ex.Name()+" executor)")
		case st.State.Terminal():
			ended = append(ended, id+" "+string(st.State))
		default:
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		fmt.Fprintf(e.stdout, "run %s had already ended; nothing to cancel (jobs %s)\n", run.ID, strings.Join(ended, ", "))
		return nil
	}
	if err := ex.Cancel(ctx, live); err != nil {
		return err
	}
	msg := fmt.Sprintf("cancelled run %s (jobs %s)", run.ID, strings.Join(live, " "))
	if len(ended) > 0 {
		msg += fmt.Sprintf("; already ended: %s", strings.Join(ended, ", "))
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}
