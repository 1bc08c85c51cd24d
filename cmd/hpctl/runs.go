package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

func init() { register(45, runsCommand) }

type runsOptions struct {
	state string
	json  bool
}

func runsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "runs",
		Usage:     "list recorded runs, newest first",
		ArgsUsage: " ",
		Description: `Lists the runs this machine submitted, newest first, with their state (resolved with
one squeue and at most one sacct call per cluster). If the cluster does not answer, the
list is still printed, with state UNKNOWN.

Examples:
   hpctl runs
   hpctl runs --state FAILED
   hpctl runs --state running -o json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "only runs in this state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...)"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			if c.NArg() != 0 {
				return usageError(errorf("runs takes no arguments; see hpctl status RUN"))
			}
			return runRuns(c.Context, e, runsOptions{state: strings.ToUpper(c.String("state")), json: asJSON})
		},
	}
}

// runsRow is one line of runs' JSON output.
type runsRow struct {
	ID          string    `json:"id"`
	State       string    `json:"state"`
	SubmittedAt time.Time `json:"submitted_at"`
	Spec        string    `json:"spec"`
	Executor    string    `json:"executor"`
	Host        string    `json:"host,omitempty"`
	RunDir      string    `json:"run_dir"`
	Jobs        []string  `json:"jobs"`
	// Trials is a sweep's number of trials.
	Trials int `json:"trials,omitempty"`
	// Attempt is the run's submission count: 1, one more with each hpctl retry.
	Attempt int `json:"attempt"`
}

func runRuns(ctx context.Context, e *env, o runsOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	runs, err := reg.List(ctx)
	reg.Close()
	if err != nil {
		return err
	}
	states := map[string]string{}
	if len(runs) > 0 {
		st, err := e.statusOf(ctx, runs, pipeline.StatusOptions{KeepStuck: true})
		switch {
		case err != nil && o.state != "":
			return fmt.Errorf("runs --state needs the cluster: %w", err)
		case err != nil:
			fmt.Fprintf(e.stderr, "hpctl: states unknown: %v\n", err)
		default:
			for _, s := range st {
				states[s.Run.ID] = string(s.State)
			}
		}
	}
	var rows []runsRow
	for _, r := range runs {
		state := states[r.ID]
		if state == "" {
			state = string(jobs.StateUnknown)
		}
		if o.state != "" && state != o.state {
			continue
		}
		row := runsRow{ID: r.ID, State: state, SubmittedAt: r.SubmittedAt, Spec: r.SpecFile, Executor: r.Executor, Host: r.Host, RunDir: r.RunDir, Jobs: []string{},
			Trials: r.Trials, Attempt: r.Attempts()}
		for _, s := range r.Stages {
			row.Jobs = append(row.Jobs, s.JobIDs()...)
		}
		rows = append(rows, row)
	}
	if o.json {
		if rows == nil {
			rows = []runsRow{}
		}
		return writeJSON(e.stdout, rows)
	}
	if len(rows) == 0 {
		if o.state != "" {
			fmt.Fprintf(e.stdout, "no runs in state %s\n", o.state)
		} else {
			fmt.Fprintln(e.stdout, "no runs yet; submit one with: hpctl submit SPEC")
		}
		return nil
	}
	tw := newTable("run", "state", "submitted", "executor", "jobs", "run dir")
	for _, r := range rows {
		jobs := strings.Join(r.Jobs, ",")
		if r.Trials > 0 {
			jobs += fmt.Sprintf(" (sweep of %d trials)", r.Trials)
		}
		if r.Attempt > 1 {
			jobs += fmt.Sprintf(" (attempt %d)", r.Attempt)
		}
		tw.AppendRow([]any{r.ID, r.State, r.SubmittedAt.Local().Format("2006-01-02 15:04"), executorName(r), jobs, r.RunDir})
	}
	renderTable(e.stdout, tw)
	return nil
}

func executorName(r runsRow) string {
	if r.Host != "" {
		return r.Executor + "@" + r.Host
	}
	return r.Executor
}
