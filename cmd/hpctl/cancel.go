package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/pipeline/stagestate"
	"github.com/hpctl/hpctl/transport"
	"github.com/urfave/cli/v2"
)

func init() { register(60, cancelCommand) }

type cancelOptions struct {
	runs []string
	// trials, for a sweep: cancel only these trials' jobs.
	trials []int
}

func cancelCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "cancel",
		BashComplete: completeRuns,
		Usage:        "cancel every job of runs",
		ArgsUsage:    "RUN...",
		Description: `Cancels the jobs of each RUN (pending or running) with one scancel per run. Jobs that
already ended are left as they are; a run whose jobs had all ended says so. The run
directory stays.

Examples:
   hpctl cancel latest
   hpctl cancel urban-rural-20261129-054012-a3f9
   hpctl cancel latest --trial 3 --trial 7     # two trials of a sweep; the others go on`,
		Flags: []cli.Flag{
			&cli.IntSliceFlag{Name: "trial", Usage: "for a sweep, cancel only trial K (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError(errorf("cancel needs at least one RUN"))
			}
			if c.IsSet("trial") && c.NArg() != 1 {
				return usageError(errorf("--trial picks trials of one RUN; give exactly one"))
			}
			return runCancel(c.Context, e, cancelOptions{runs: c.Args().Slice(), trials: c.IntSlice("trial")})
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
		err = e.cancelRun(ctx, t, reg, run, o.trials)
		t.Close()
		if err != nil {
			return fmt.Errorf("cancel run %s: %w", run.ID, err)
		}
	}
	return nil
}

// cancelRun cancels run's jobs, after settling a submission that was interrupted (its
// jobs are found even where their ids were never recorded).
func (e *env) cancelRun(ctx context.Context, t transport.Transport, reg registry.Store, run registry.Run, trials []int) error {
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
	what := "run " + run.ID
	if len(trials) > 0 {
		var names []string
		for _, k := range trials {
			tr, err := pipeline.Trial(run, k)
			if err != nil {
				return err
			}
			for _, s := range tr.Stages {
				ids = append(ids, s.JobIDs()...)
			}
			names = append(names, strconv.Itoa(k))
		}
		what = fmt.Sprintf("trial %s of run %s", strings.Join(names, ", "), run.ID)
	} else {
		for _, s := range run.Stages {
			ids = append(ids, s.JobIDs()...)
		}
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
		st, ok := stateOf(states, id)
		switch {
		case !ok:
			ended = append(ended, id+" (no longer known to the "+ex.Name()+" executor)")
		case st.Terminal():
			ended = append(ended, id+" "+string(st))
		default:
			live = append(live, id)
		}
	}
	if len(live) == 0 {
		fmt.Fprintf(e.stdout, "%s had already ended; nothing to cancel (jobs %s)\n", what, strings.Join(ended, ", "))
		return nil
	}
	if err := ex.Cancel(ctx, live); err != nil {
		return err
	}
	msg := fmt.Sprintf("cancelled %s (jobs %s)", what, strings.Join(live, " "))
	if len(ended) > 0 {
		msg += fmt.Sprintf("; already ended: %s", strings.Join(ended, ", "))
	}
	fmt.Fprintln(e.stdout, msg)
	return nil
}

// stateOf is a job's state; an array job (answered as its tasks, id_index) is RUNNING
// while any task is live, else the state of its tasks' (COMPLETED if all completed).
func stateOf(states map[string]jobs.JobState, id string) (jobs.State, bool) {
	if st, ok := states[id]; ok {
		return st.State, true
	}
	var tasks []jobs.State
	for k, st := range states {
		if strings.HasPrefix(k, id+"_") {
			tasks = append(tasks, st.State)
		}
	}
	if len(tasks) == 0 {
		return "", false
	}
	for _, s := range tasks {
		if !s.Terminal() {
			return jobs.StateRunning, true
		}
	}
	return stagestate.Overall(tasks...), true
}
