package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/results"
	"github.com/hpctl/hpctl/transport"
)

func init() { register(60, fetchCommand) }

type fetchOptions struct {
	runs           []string
	allCheckpoints bool
	noCheckpoints  bool
	resultsDir     string
	json           bool
}

func fetchCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "fetch-results",
		BashComplete: completeRuns,
		Aliases:      []string{"fetch"},
		Usage:        "copy a run's results from the cluster and summarize them",
		ArgsUsage:    "[RUN...]",
		Description: `Copies each run's directory from the cluster into <results-dir>/<run-id>/: the spec
(as written and resolved), every stage's history.csv, metrics.json and evaluation.json,
the job logs, and the best checkpoint of each stage. The trainer program and the resume
state stay on the cluster. Then prints a summary per stage and writes the learning curves
(learning-curves.png and the same figure as learning-curves.svg: title with the run,
backbone and learning rates, loss on a log axis when it spans decades, each stage's kept
checkpoint ringed), report.md and summary.json next to the files. A sweep gets a
leaderboard and its comparison plot instead (sweep.png and sweep.svg).

The copy is incremental and resumable (rsync where installed): fetching an unchanged run
again copies nothing, an interrupted fetch leaves no half-written file under its final
name, and every file's SHA-256 is checked against the cluster's. Over ssh it uses the
same master connection as submit and status. RUN is a run id, a unique prefix of one,
or "latest" (the default).

A diverged run fetches like any other: its nan and inf show as such in the table and
report, as null in summary.json and -o json, as gaps in the plot (values beyond ±1e6
are drawn at ±1e6). What a stage's files hold that cannot be read (a cell that is no
number, a missing column, a metrics.json that is no JSON) is left out with a warning on
stderr and in report.md.

Examples:
   hpctl fetch-results                          # the latest run
   hpctl fetch-results urban-rural-20261129-054012-a3f9
   hpctl fetch-results --no-checkpoints latest  # metrics and logs only
   hpctl fetch-results --all-checkpoints        # also final.* and resume state
   hpctl fetch-results -o json | jq '.[0].stages[] | {name, best_val_accuracy}'`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all-checkpoints", Usage: "also copy each stage's final checkpoint and resume state"},
			&cli.BoolFlag{Name: "no-checkpoints", Usage: "copy no checkpoints (metrics, history and logs only)"},
			&cli.StringFlag{Name: "results-dir", Usage: "where runs are copied (default: the results-dir setting, ./results)"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			o := fetchOptions{
				runs:           c.Args().Slice(),
				allCheckpoints: c.Bool("all-checkpoints"),
				noCheckpoints:  c.Bool("no-checkpoints"),
				resultsDir:     c.String("results-dir"),
				json:           asJSON,
			}
			if o.allCheckpoints && o.noCheckpoints {
				return usageError(errorf("--all-checkpoints and --no-checkpoints contradict each other"))
			}
			if o.resultsDir == "" {
				o.resultsDir = e.settings.ResultsDir
			}
			return runFetch(c.Context, e, o)
		},
	}
}

func runFetch(ctx context.Context, e *env, o fetchOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	ids := o.runs
	if len(ids) == 0 {
		ids = []string{"latest"}
	}
	runs, err := reg.FindAll(ctx, ids)
	if err != nil {
		return fmt.Errorf("fetch-results: %w", err)
	}
	// One transport per host, so several runs on one cluster share one login.
	transports := map[string]transport.Transport{}
	defer func() {
		for _, t := range transports {
			t.Close()
		}
	}()
	var all []*results.Fetched
	for _, r := range runs {
		t, ok := transports[r.Host]
		if !ok {
			t = e.newTransport(r.Host)
			transports[r.Host] = t
		}
		log := e.log.With().Str("run", r.ID).Str("transport", t.Name()).Logger()
		log.Debug().Str("run_dir", r.RunDir).Msg("fetching")
		bar := newProgress(e.stderr, r.ID, o.json)
		start := time.Now()
		f, err := results.FetchResults(ctx, t, r, o.resultsDir, results.Options{
			AllCheckpoints: o.allCheckpoints,
			NoCheckpoints:  o.noCheckpoints,
			Progress:       bar.update,
		})
		bar.finish()
		if err != nil {
			return err
		}
		// What could not be read costs its own numbers, not the fetch; say so where a
		// person sees it whatever the output format (report.md lists them too).
		for _, s := range f.Stages {
			for _, w := range s.Warnings {
				fmt.Fprintf(e.stderr, "hpctl: warning: %s %s: %s\n", r.ID, s.Name, w)
			}
		}
		if f.PlotError != "" {
			fmt.Fprintf(e.stderr, "hpctl: warning: %s: no plot: %s\n", r.ID, f.PlotError)
		}
		log.Info().Int("files", f.Transfer.Files).Int64("bytes", f.Transfer.Bytes).Int("verified", f.Transfer.Checked).
			Bool("rsync", f.Transfer.Rsync).Int64("took_ms", time.Since(start).Milliseconds()).Msg("fetched")
		all = append(all, f)
	}
	if o.json {
		return writeJSON(e.stdout, all)
	}
	for i, f := range all {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		printFetched(e.stdout, f)
	}
	return nil
}

func printFetched(w io.Writer, f *results.Fetched) {
	fmt.Fprintf(w, "%s\n", f.RunID)
	if f.Trials != nil {
		printLeaderboard(w, f)
	} else {
		printStages(w, f)
	}
	moved := "nothing new to copy"
	if f.Transfer.Files > 0 {
		moved = fmt.Sprintf("copied %d file(s), %s", f.Transfer.Files, humanBytes(f.Transfer.Bytes))
	}
	fmt.Fprintf(w, "\nresults: %s (%s; %d file(s) verified)\n", f.Dir, moved, f.Transfer.Checked)
	switch {
	case f.Plot != "":
		fmt.Fprintf(w, "plot:    %s\n", f.Plot)
		if f.PlotSVG != "" {
			fmt.Fprintf(w, "         %s\n", f.PlotSVG)
		}
	case f.PlotError != "":
		fmt.Fprintf(w, "plot:    none (it could not be drawn: %s)\n", f.PlotError)
	default:
		fmt.Fprintf(w, "plot:    none yet (no stage has finished an epoch)\n")
	}
	fmt.Fprintf(w, "report:  %s\n", f.Report)
}

// leaderboardRows is how many trials fetch-results prints; report.md has them all.
const leaderboardRows = 20

// printLeaderboard is a sweep's trials, best first.
func printLeaderboard(w io.Writer, f *results.Fetched) {
	t := newTable("RANK", "TRIAL", "VALUES", "STATE", "BEST VAL ACC", "STAGE", "EPOCHS", "WALL")
	order := results.Leaderboard(f.Trials)
	for rank, i := range order {
		if rank == leaderboardRows {
			break
		}
		tr := f.Trials[i]
		epochs, wall := "", 0.0
		for _, s := range tr.Stages {
			if epochs != "" {
				epochs += "+"
			}
			epochs += strconv.Itoa(s.EpochsRun)
			if s.WallTimeSeconds != nil {
				wall += *s.WallTimeSeconds
			}
		}
		state := "COMPLETED"
		for _, s := range tr.Stages {
			if s.State != jobs.StateCompleted {
				state = string(s.State)
				break
			}
		}
		t.AppendRow([]any{rank + 1, tr.Trial, tr.Values, state, results.Float(tr.Score, 4), tr.ScoreStage, epochs, results.Duration(&wall)})
	}
	renderTable(w, t)
	if len(order) > leaderboardRows {
		fmt.Fprintf(w, "(and %d more trials: report.md and summary.json have every one)\n", len(order)-leaderboardRows)
	}
}

func printStages(w io.Writer, f *results.Fetched) {
	t := newTable("STAGE", "STATE", "JOB", "EPOCHS", "BEST VAL ACC", "BEST VAL LOSS", "FINAL VAL ACC", "FINAL VAL LOSS", "WALL", "IMG/S")
	for _, s := range f.Stages {
		best := results.Float(s.BestValAccuracy, 4)
		if best != "" && s.BestEpoch > 0 {
			best += fmt.Sprintf(" (ep %d)", s.BestEpoch)
		}
		t.AppendRow([]any{s.Name, s.State, s.JobID, results.Epochs(s), best, results.Float(s.BestValLoss, 4),
			results.Float(s.FinalValAccuracy, 4), results.Float(s.FinalValLoss, 4), results.Duration(s.WallTimeSeconds),
			results.Rate(s.ImagesPerSecond, 1)})
	}
	renderTable(w, t)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress draws a bar on a terminal for transfers worth watching; elsewhere (pipes,
// logs, JSON output) it stays silent.
type progress struct {
	w     io.Writer
	desc  string
	quiet bool
	bar   *progressbar.ProgressBar
}

// progressMin is the smallest transfer that gets a bar: small ones finish before a bar
// would tell anything.
const progressMin = 8 << 20

func newProgress(w io.Writer, desc string, quiet bool) *progress {
	return &progress{w: w, desc: desc, quiet: quiet || !isTerminal(w)}
}

func (p *progress) update(done, total int64) {
	if p.quiet || total < progressMin {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	_ = p.bar.Set64(done)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
