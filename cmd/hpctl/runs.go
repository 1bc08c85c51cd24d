package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/pipeline/results"
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
one squeue and at most one sacct call per cluster), backbone and the last stage's best
validation accuracy so far (read from the run directory with the states, in one command
per cluster; a sweep shows its best trial's). If the cluster does not answer, the list is
still printed, with state UNKNOWN and the accuracy of fetched results.

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
	// Backbone is the spec's model.backbone (a sweep's, comma-separated when swept).
	Backbone string `json:"backbone,omitempty"`
	// BestValAccuracy is the final stage's best validation accuracy so far (a sweep's:
	// its best trial's).
	BestValAccuracy *num.Float `json:"best_val_accuracy,omitempty"`
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
	best := map[string]*num.Float{}
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
				if n := len(s.Stages); n > 0 {
					best[s.Run.ID] = s.Stages[n-1].BestValAccuracy
				}
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
			Trials: r.Trials, Attempt: r.Attempts(), Backbone: r.Backbone, BestValAccuracy: best[r.ID]}
		if row.Backbone == "" || row.BestValAccuracy == nil {
			// Records older than the backbone field, and states the cluster could not
			// give: what fetch-results left in results/<run-id>/ says.
			local := results.Local(e.settings.ResultsDir, r)
			if row.Backbone == "" {
				row.Backbone = local.Backbone
			}
			if row.BestValAccuracy == nil {
				row.BestValAccuracy = local.BestValAccuracy
			}
		}
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
	tw := newTable("run", "state", "submitted", "backbone", "best val acc", "executor", "jobs", "run dir")
	for _, r := range rows {
		jobs := strings.Join(r.Jobs, ",")
		if r.Trials > 0 {
			jobs += fmt.Sprintf(" (sweep of %d trials)", r.Trials)
		}
		if r.Attempt > 1 {
			jobs += fmt.Sprintf(" (attempt %d)", r.Attempt)
		}
		tw.AppendRow([]any{r.ID, r.State, r.SubmittedAt.Local().Format("2006-01-02 15:04"), dash(r.Backbone), dash(num.Text(r.BestValAccuracy, 4)),
			executorName(r), jobs, r.RunDir})
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
