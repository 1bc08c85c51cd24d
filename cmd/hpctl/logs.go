package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

func init() { register(50, logsCommand) }

type logsOptions struct {
	run    string
	stage  string
	follow bool
	err    bool
	// interval between two reads of a followed log; the job's state is checked at most
	// every poll-interval.
	interval time.Duration
}

func logsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a stage's job log",
		ArgsUsage: "RUN",
		Description: `Prints <run-dir>/logs/<job-name>-<job-id>.out (or .err with --err) of one stage: --stage,
else the latest stage that has started. --follow keeps printing as the job writes, until
the job ends.

Examples:
   hpctl logs latest
   hpctl logs urban-rural-20261129-054012-a3f9 --stage finetune --follow
   hpctl logs latest --stage frozen --err`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stage", Aliases: []string{"s"}, Usage: "the stage (default: the latest that started)"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing until the job ends"},
			&cli.BoolFlag{Name: "err", Usage: "stderr (.err) instead of stdout (.out)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(errorf("logs needs exactly one RUN"))
			}
			return runLogs(c.Context, e, logsOptions{run: c.Args().First(), stage: c.String("stage"), follow: c.Bool("follow"), err: c.Bool("err"), interval: time.Second})
		},
	}
}

func runLogs(ctx context.Context, e *env, o logsOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	run, err := findRun(ctx, reg, o.run)
	reg.Close()
	if err != nil {
		return err
	}
	t := e.newTransport(run.Host)
	defer t.Close()
	ex, err := e.newExecutor(ctx, run.Executor, t)
	if err != nil {
		return err
	}
	var ids []string
	for _, s := range run.Stages {
		ids = append(ids, s.JobID)
	}
	states, err := ex.Query(ctx, ids)
	if err != nil {
		return err
	}
	stage, err := pipeline.StageLog(run, o.stage, states)
	if err != nil {
		return usageError(err)
	}
	if stage.JobID == "" {
		return fmt.Errorf("stage %s of run %s was never submitted: %w", stage.Name, run.ID, errkind.ErrNotFound)
	}
	ext := "out"
	if o.err {
		ext = "err"
	}
	path := pipeline.LogFile(run, stage, ext)
	var offset int64
	lastCheck := time.Now()
	for {
		// tail -c +N reads only what is new, over ssh too.
		res, err := t.Run(ctx, []string{"tail", "-c", "+" + strconv.FormatInt(offset+1, 10), path}, nil)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("read %s: %w", path, err)
		}
		if res.ExitCode != 0 {
			st := states[stage.JobID]
			if st.State == jobs.StatePending || (o.follow && !jobs.Terminal(st.State)) {
				// Not started yet: Slurm creates the log when the job starts.
				if !o.follow {
					fmt.Fprintf(e.stderr, "hpctl: %s has not started yet (%s %s); no log yet\n", stage.Name, st.State, st.Reason)
					return nil
				}
			} else if st.State == jobs.StateCancelled && st.Node == "" {
				return fmt.Errorf("stage %s of run %s never ran (CANCELLED %s), so it has no log; `hpctl status %s` shows which stage failed: %w",
					stage.Name, run.ID, st.Reason, run.ID, errkind.ErrNotFound)
			} else {
				return fmt.Errorf("log %s of stage %s: %w", path, stage.Name, errkind.ErrNotFound)
			}
		}
		e.stdout.Write(res.Stdout)
		offset += int64(len(res.Stdout))
		if !o.follow {
			return nil
		}
		if time.Since(lastCheck) >= e.settings.PollInterval || len(res.Stdout) == 0 {
			if time.Since(lastCheck) >= e.settings.PollInterval {
				lastCheck = time.Now()
				states, err = ex.Query(ctx, []string{stage.JobID})
				if err != nil {
					return err
				}
			}
			if jobs.Terminal(states[stage.JobID].State) && len(res.Stdout) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
	}
}
