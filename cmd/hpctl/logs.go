package main

import (
	"context"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/pipeline"
)

func init() { register(50, logsCommand) }

type logsOptions struct {
	run    string
	stage  string
	follow bool
	err    bool
	// trial of a sweep (-1: not given).
	trial int
	// tail: only the last lines of each log (0: all).
	tail int
	// task of a stage on several nodes (-1: the job's log).
	task int
	// interval between two reads of a followed log; the job's state is checked at most
	// every poll-interval.
	interval time.Duration
}

func logsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "logs",
		BashComplete: completeRuns,
		Usage:        "print a stage's job log",
		ArgsUsage:    "RUN",
		Description: `Prints <run-dir>/logs/<job-name>-<job-id>.out (or .err with --err) of one stage: --stage,
else the latest stage that has started. --tail N prints only its last N lines.

--follow keeps printing as the job writes, until the job ends. Without --stage it
follows the whole pipeline: each stage in turn under a header line
("== finetune (job 81) =="), waiting while a stage is pending (a note on stderr says
why, in plain words), until the run ends. Ctrl-C stops following; the jobs go on.

A stage on several nodes (slurm.nodes > 1) also has one log per node's trainer: --task K
prints task K's (0 is the chief).

Examples:
   hpctl logs latest
   hpctl logs latest --follow                     # every stage in turn, until the run ends
   hpctl logs latest --tail 20
   hpctl logs urban-rural-20261129-054012-a3f9 --stage finetune --follow
   hpctl logs latest --stage frozen --err
   hpctl logs latest --trial 3 --stage finetune   # a sweep's trial`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stage", Aliases: []string{"s"}, Usage: "the stage (default: the latest that started)"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing until the job ends"},
			&cli.BoolFlag{Name: "err", Usage: "stderr (.err) instead of stdout (.out)"},
			&cli.IntFlag{Name: "tail", Aliases: []string{"n"}, Usage: "only the last N lines of each log (0: all)"},
			&cli.IntFlag{Name: "trial", Value: -1, DefaultText: "none", Usage: "for a sweep, the trial whose log to print"},
			&cli.IntFlag{Name: "task", Value: -1, DefaultText: "none", Usage: "for a stage on several nodes, the task (node) whose log to print; 0 is the chief"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(errorf("logs needs exactly one RUN"))
			}
			if c.Int("tail") < 0 {
				return usageError(errorf("--tail %d: give a number of lines, 0 or more", c.Int("tail")))
			}
			return runLogs(c.Context, e, logsOptions{run: c.Args().First(), stage: c.String("stage"), follow: c.Bool("follow"), err: c.Bool("err"), interval: time.Second,
				trial: c.Int("trial"), tail: c.Int("tail"), task: c.Int("task")})
		},
	}
}

func runLogs(ctx context.Context, e *env, o logsOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	run, err := reg.Find(ctx, o.run)
	reg.Close()
	if err != nil {
		return err
	}
	if o.trial >= 0 {
		if run, err = pipeline.Trial(run, o.trial); err != nil {
			return err
		}
	}
	t := e.newTransport(run.Host)
	defer t.Close()
	ex, err := e.newExecutor(ctx, run.Executor, t)
	if err != nil {
		return err
	}
	var task *int
	if o.task >= 0 {
		task = &o.task
	}
	return pipeline.Logs(ctx, t, ex, run, e.stdout, pipeline.LogOptions{
		Stage: o.stage, Err: o.err, Task: task, Follow: o.follow, Interval: o.interval,
		PollInterval: e.settings.PollInterval, Notice: e.stderr, Tail: o.tail,
	})
}
