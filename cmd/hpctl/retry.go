package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/pipeline"
)

func init() { register(55, retryCommand) }

type retryOptions struct {
	run   string
	stage string
	json  bool
}

func retryCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "retry",
		BashComplete: completeRuns,
		Usage:        "resubmit a run's failed, cancelled or timed-out stages in the same run directory",
		ArgsUsage:    "RUN",
		Description: `Resubmits the stages of RUN that failed, were cancelled or timed out (or, with --stage,
the stage named) together with every stage that depends on them, in RUN's own run
directory. Completed stages are not rerun: a retried fine-tune starts from the frozen
stage's existing best checkpoint. Each retried stage starts clean; what its earlier attempt
left is moved to attempts/<n>/stages/<stage>/ in the run directory (docs/run-directory.md).
status shows a retried stage's "attempt N". Refused (exit 2, nothing changed) when nothing
needs retrying, when a stage is still queued or running, and for sweeps.

Examples:
   hpctl retry latest
   hpctl retry urban-rural-20261129-054012-a3f9 --stage finetune`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stage", Usage: "retry this stage (and its dependents), whatever its state"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageError(errorf("retry needs exactly one RUN"))
			}
			return runRetry(c.Context, e, retryOptions{run: c.Args().First(), stage: c.String("stage"), json: asJSON})
		},
	}
}

// retryResult is retry's JSON output.
type retryResult struct {
	RunID   string           `json:"run_id"`
	RunDir  string           `json:"run_dir"`
	Attempt int              `json:"attempt"`
	Jobs    []submitResultJb `json:"jobs"`
	Kept    []string         `json:"kept"`
}

func runRetry(ctx context.Context, e *env, o retryOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	run, err := reg.Find(ctx, o.run)
	if err != nil {
		return err
	}
	t := e.newTransport(run.Host)
	defer t.Close()
	ex, err := e.newExecutor(ctx, run.Executor, t)
	if err != nil {
		return err
	}
	res, err := pipeline.Retry(ctx, t, ex, reg, run.ID, pipeline.RetryOptions{Stage: o.stage})
	if err != nil {
		return err
	}
	out := retryResult{RunID: res.Run.ID, RunDir: res.Run.RunDir, Attempt: res.Run.Attempts(), Kept: res.Kept}
	if out.Kept == nil {
		out.Kept = []string{}
	}
	var parts []string
	for _, s := range res.Run.Stages {
		for _, name := range res.Stages {
			if name == s.Name {
				out.Jobs = append(out.Jobs, submitResultJb{Stage: s.Name, JobID: s.JobID, DependsOn: s.DependsOn})
				parts = append(parts, fmt.Sprintf("%s (job %s, attempt %d)", s.Name, s.JobID, s.Attempts()))
			}
		}
	}
	if o.json {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "retried run %s: %s\n", res.Run.ID, strings.Join(parts, ", "))
	if len(res.Kept) > 0 {
		fmt.Fprintf(e.stdout, "kept (completed, not rerun): %s\n", strings.Join(res.Kept, ", "))
	}
	fmt.Fprintf(e.stdout, "earlier attempts' files: %s/attempts/\n", res.Run.RunDir)
	return nil
}
