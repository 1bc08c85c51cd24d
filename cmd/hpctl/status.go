package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/pipeline/results"
)

func init() { register(40, statusCommand) }

type statusOptions struct {
	runs     []string
	last     int
	watch    bool
	interval time.Duration
	json     bool
	// trials lists every trial of a sweep, not only its summary.
	trials bool
}

// minInterval: Slurm's man pages ask tools not to poll squeue in tight loops.
const minInterval = time.Second

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "status",
		BashComplete: completeRuns,
		Usage:        "show where runs and their stages stand",
		ArgsUsage:    "[RUN...]",
		Description: `Without RUN, one line per recent run, newest first: its state, the stage that matters
now (running, else failed, else waiting), epochs done, best validation accuracy, age,
and why it waits or how it failed, in plain words ("waits for frozen to finish",
"waiting for free CPUs, GPUs or memory on a node", "requeued, resumes at epoch 83").

With RUN, one table of the run's stages: state (PENDING with its reason, RUNNING,
COMPLETED, FAILED, CANCELLED, TIMEOUT, ...), job id, node, elapsed time, exit code,
epochs done of the stage's total and best validation accuracy so far; for a failed
stage, the tail of its log. All jobs shown are resolved with one squeue and at most one
sacct call. Without Slurm accounting the run directory's marker files fill in finished
jobs. A stage stuck PENDING because its dependency failed is cancelled and shown as such.
On a terminal, tables are cut to its width (lines end in "…"); piped, they are whole.

--watch polls every --interval until every run shown has ended. With RUN, and always
under --watch, each running stage gets a line with its epoch, the latest epoch's loss
and validation accuracy, seconds per epoch and the stage's ETA (from history.csv's
times), and a stage Slurm requeued its attempt and the epoch it resumes at. On a
terminal each poll redraws the screen in place (no scrolling; what does not fit is cut
off below); piped, the snapshots follow one another. Ctrl-C stops watching, exit 130;
the jobs go on.

A sweep shows one line per stage with how many trials are in each state, the best trial
so far with its values, and the trials that failed; --trials adds every trial's stages,
and -o json always carries them.

RUN is a run id, a unique prefix of one, or "latest".

Examples:
   hpctl status
   hpctl status urban-rural-20261129-054012-a3f9
   hpctl status latest --watch              # redraw every poll-interval until it ends
   hpctl status --last 50 -o json | jq '.[] | {id: .run.id, state}'
   hpctl status latest --trials              # a sweep, trial by trial`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "last", Value: 10, Usage: "without RUN, show this many recent runs"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "redraw in place until every run shown has ended"},
			// DefaultText: the default is a setting, read after flags are parsed; urfave
			// would print the zero value as a second default.
			durationFlag("interval", "refresh interval for --watch (30s, 2m), at least 1s", "the poll-interval setting"),
			&cli.BoolFlag{Name: "trials", Usage: "for a sweep, a line for every trial's every stage, not only the summary"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			o := statusOptions{runs: c.Args().Slice(), last: c.Int("last"), watch: c.Bool("watch"), interval: flagDuration(c, "interval"), json: asJSON,
				trials: c.Bool("trials")}
			if o.interval == 0 {
				o.interval = e.settings.PollInterval
			}
			if o.interval < minInterval {
				return usageError(fmt.Errorf("--interval %s is below %s; Slurm asks tools not to poll in tight loops", o.interval, minInterval))
			}
			return runStatus(c.Context, e, o)
		},
	}
}

func runStatus(ctx context.Context, e *env, o statusOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	var runs []registry.Run
	if len(o.runs) == 0 {
		runs, err = reg.Recent(ctx, o.last)
	} else {
		runs, err = reg.FindAll(ctx, o.runs)
	}
	reg.Close() // not held open while watching
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		if o.json {
			fmt.Fprintln(e.stdout, "[]")
			return nil
		}
		fmt.Fprintln(e.stdout, "no runs yet; submit one with: hpctl submit SPEC")
		return nil
	}
	redraw := o.watch && !o.json && isTerminal(e.stdout)
	if redraw {
		// The first frame clears the screen; later ones overwrite it from the top, line
		// by line, so nothing scrolls or flickers. The cursor is hidden meanwhile.
		fmt.Fprint(e.stdout, "\x1b[?25l\x1b[H\x1b[2J")
		defer fmt.Fprint(e.stdout, "\x1b[?25h")
	}
	for frame := 0; ; frame++ {
		st, err := e.statusOf(ctx, runs, pipeline.StatusOptions{})
		if err != nil {
			return err
		}
		width, height := termSize(e.stdout)
		view := statusView{summary: len(o.runs) == 0 && !o.trials, trials: o.trials, live: o.watch || len(o.runs) > 0,
			width: width, now: time.Now()}
		switch {
		case o.json:
			if err := writeJSON(e.stdout, st); err != nil {
				return err
			}
		case redraw:
			var b bytes.Buffer
			fmt.Fprintf(&b, "every %s: hpctl status; Ctrl-C stops watching (the jobs go on)  %s\n\n", o.interval, view.now.Format("15:04:05"))
			printStatus(&b, st, false, view)
			fmt.Fprint(e.stdout, redrawFrame(b.String(), width, height))
		default:
			if frame > 0 {
				fmt.Fprintln(e.stdout) // successive snapshots, one blank line apart
			}
			if err := printStatus(e.stdout, st, false, view); err != nil {
				return err
			}
		}
		if !o.watch {
			return nil
		}
		if allEnded(st) {
			return watchOutcome(st)
		}
		select {
		case <-ctx.Done():
			// Ctrl-C ends the watch, not the runs; it exits 130 as every interrupted
			// command does (docs/exit-codes.md).
			return fmt.Errorf("stopped watching; the jobs go on: %w", ctx.Err())
		case <-time.After(o.interval):
		}
	}
}

// redrawFrame is one frame of --watch on a terminal: from the top left, every line cut
// to the width and cleared to its end, the screen cleared below the last; a frame taller
// than the screen loses its last lines (the oldest runs: the newest come first), so the
// screen never scrolls.
func redrawFrame(frame string, width, height int) string {
	lines := strings.Split(strings.TrimRight(frame, "\n"), "\n")
	if height > 1 && len(lines) > height-1 {
		more := len(lines) - (height - 2)
		lines = append(lines[:height-2], fmt.Sprintf("… %d more lines (a bigger window, or hpctl status RUN)", more))
	}
	var b strings.Builder
	b.WriteString("\x1b[H")
	for _, l := range lines {
		b.WriteString(fitWidth(l, width))
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[J")
	return b.String()
}

func allEnded(st []pipeline.RunStatus) bool {
	for _, r := range st {
		if !r.State.Terminal() {
			return false
		}
	}
	return true
}

// watchOutcome: a watch that saw every run complete exits 0, else with the run-failed
// code, so scripts can wait on `hpctl status RUN --watch`.
func watchOutcome(st []pipeline.RunStatus) error {
	var bad []string
	for _, r := range st {
		if r.State != jobs.StateCompleted {
			bad = append(bad, r.Run.ID+" "+string(r.State))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", errkind.ErrRunFailed, strings.Join(bad, ", "))
	}
	return nil
}

// statusView is how status prints runs as text.
type statusView struct {
	// summary: one line per run (status without RUN); else every stage with details.
	summary bool
	// trials lists every trial of a sweep.
	trials bool
	// live adds, under the table, a line for each running stage (the last epoch's loss
	// and validation accuracy, its pace and ETA) and each requeued one.
	live bool
	// width of the terminal tables are cut to; 0 (not a terminal): full width.
	width int
	// now is when ages are measured from.
	now time.Time
}

func printStatus(w io.Writer, st []pipeline.RunStatus, asJSON bool, view statusView) error {
	if asJSON {
		return writeJSON(w, st)
	}
	if view.summary {
		printSummary(w, st, view)
		printLive(w, st, view)
		return nil
	}
	trials := view.trials
	tw := newTable("run", "stage", "state", "job", "node", "elapsed", "exit", "epoch", "best val acc", "reason")
	var tails []string
	for _, r := range st {
		for i, s := range r.Stages {
			run := ""
			if i == 0 {
				run = r.Run.ID
			}
			reason := s.Reason
			if s.Explanation != "" && s.Explanation != s.Reason {
				reason = s.Explanation
				if s.Reason != "" {
					reason += " (" + s.Reason + ")"
				}
			}
			if s.Counts != nil {
				reason = countsCell(s.Counts)
			}
			if s.Attempt > 1 {
				// Resubmitted by hpctl retry: its earlier attempts are in attempts/<n>/.
				reason = strings.TrimSuffix(fmt.Sprintf("attempt %d; %s", s.Attempt, reason), "; ")
			}
			tw.AppendRow([]any{run, s.Name, s.State, dash(s.JobID), dash(s.Node), elapsed(s.Elapsed), dash(s.ExitCode),
				dash(epochCell(s.Epoch, s.Epochs, s.State)), dash(num.Text(s.BestValAccuracy, 4)), reason})
			if s.LogTail != "" {
				tails = append(tails, fmt.Sprintf("%s %s failed; last lines of %s:\n%s", r.Run.ID, s.Name, s.Log, indent(s.LogTail)))
			}
		}
		if r.Best != nil {
			tails = append(tails, fmt.Sprintf("%s: best so far: trial %d (%s), %s val accuracy %.4f", r.Run.ID, r.Best.Trial, r.Best.Values, r.Best.Stage, r.Best.ValAccuracy))
		}
		tails = append(tails, failedTrials(r)...)
		if r.Run.Status == registry.RunFailed && r.Run.Error != "" {
			tails = append(tails, fmt.Sprintf("%s: submission failed: %s", r.Run.ID, r.Run.Error))
		}
	}
	renderTableWidth(w, tw, view.width)
	printLive(w, st, view)
	for _, t := range tails {
		fmt.Fprintf(w, "\n%s", t)
		if !strings.HasSuffix(t, "\n") {
			fmt.Fprintln(w)
		}
	}
	if trials {
		for _, r := range st {
			if len(r.Trials) > 0 {
				fmt.Fprintln(w)
				printTrials(w, r, view.width)
			}
		}
	}
	return nil
}

// printTrials is a sweep's table of every trial's stages.
func printTrials(w io.Writer, r pipeline.RunStatus, width int) {
	tw := newTable("trial", "values", "stage", "state", "job", "elapsed", "exit", "epoch", "best val acc", "reason")
	for _, t := range r.Trials {
		for i, s := range t.Stages {
			trial, values := "", ""
			if i == 0 {
				trial, values = fmt.Sprint(t.Trial), t.Values
			}
			tw.AppendRow([]any{trial, values, s.Name, s.State, dash(s.JobID), elapsed(s.Elapsed), dash(s.ExitCode),
				dash(epochCell(s.Epoch, s.Epochs, s.State)), dash(num.Text(s.BestValAccuracy, 4)), s.Reason})
		}
	}
	fmt.Fprintf(w, "%s, trial by trial:\n", r.Run.ID)
	renderTableWidth(w, tw, width)
}

// maxFailedShown bounds the failed trials listed under a sweep: the rest are counted.
const maxFailedShown = 10

// failedTrials lists a sweep's failed trials with their reason and the first line of
// their log's tail.
func failedTrials(r pipeline.RunStatus) []string {
	var out []string
	n := 0
	for _, t := range r.Trials {
		for _, s := range t.Stages {
			if !s.State.Failed() {
				continue
			}
			n++
			if n > maxFailedShown {
				break
			}
			line := fmt.Sprintf("%s: trial %d (%s) %s %s", r.Run.ID, t.Trial, t.Values, s.Name, s.State)
			if s.ExitCode != "" {
				line += " exit " + s.ExitCode
			}
			if last := lastLine(s.LogTail); last != "" {
				line += ": " + last
			}
			out = append(out, line)
			break
		}
	}
	if n > maxFailedShown {
		out = append(out, fmt.Sprintf("%s: and %d more failed trials (hpctl status %s --trials)", r.Run.ID, n-maxFailedShown, r.Run.ID))
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// countsCell is a sweep stage's "240 COMPLETED · 12 RUNNING · 4 PENDING", in a fixed
// order of states.
func countsCell(c map[jobs.State]int) string {
	var parts []string
	for _, s := range []jobs.State{jobs.StateCompleted, jobs.StateRunning, jobs.StatePending, jobs.StateRequeued,
		jobs.StateFailed, jobs.StateTimeout, jobs.StateOutOfMemory, jobs.StateNodeFail, jobs.StatePreempted,
		jobs.StateCancelled, jobs.StateUnknown} {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	return strings.Join(parts, " · ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func elapsed(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  | " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// epochCell is "done/total", with "-" for a total nobody declared: a command stage that
// writes its own history.csv has no epoch count in the spec, and "2/0" read as a bug.
func epochCell(done, total int, state jobs.State) string {
	if done > 0 || (state.Running() && total > 0) {
		return results.EpochsOf(done, total)
	}
	return ""
}

// printSummary is status without RUN: one line per run, newest first (as the registry
// lists them), with the stage that matters now and, for a waiting or failed one, why.
func printSummary(w io.Writer, st []pipeline.RunStatus, view statusView) {
	tw := newTable("run", "state", "stage", "epoch", "best val acc", "age", "note")
	for _, r := range st {
		row := []any{r.Run.ID, r.State, "-", "-", "-", age(view.now.Sub(r.Run.SubmittedAt)), ""}
		if s, ok := currentStage(r); ok {
			row[2], row[3], row[4] = s.Name, dash(epochCell(s.Epoch, s.Epochs, s.State)), dash(num.Text(s.BestValAccuracy, 4))
			row[6] = stageNote(s)
		}
		if r.Run.Status == registry.RunFailed && r.Run.Error != "" {
			row[6] = "submission failed: " + r.Run.Error
		}
		tw.AppendRow(row)
	}
	renderTableWidth(w, tw, view.width)
}

// currentStage is the stage a run's line speaks of: the one running, else the first
// that failed, else the first still waiting, else the last.
func currentStage(r pipeline.RunStatus) (pipeline.StageStatus, bool) {
	if len(r.Stages) == 0 {
		return pipeline.StageStatus{}, false
	}
	for _, pick := range []func(jobs.State) bool{jobs.State.Running, jobs.State.Failed, jobs.State.Waiting} {
		for _, s := range r.Stages {
			if pick(s.State) {
				return s, true
			}
		}
	}
	return r.Stages[len(r.Stages)-1], true
}

// stageNote says in a few words what the summary line's stage is doing or why it
// waits or failed.
func stageNote(s pipeline.StageStatus) string {
	var parts []string
	if s.Attempt > 1 {
		parts = append(parts, fmt.Sprintf("attempt %d", s.Attempt))
	}
	switch {
	case s.Counts != nil:
		parts = append(parts, countsCell(s.Counts))
	case s.Explanation != "":
		parts = append(parts, s.Explanation)
	case s.State.Failed() && s.ExitCode != "":
		parts = append(parts, "exit "+s.ExitCode)
		if s.Reason != "" {
			parts = append(parts, s.Reason)
		}
	case s.Reason != "":
		parts = append(parts, s.Reason)
	}
	return strings.Join(parts, "; ")
}

// age is a run's age in the largest unit that keeps it short: 45s, 12m, 3h, 9d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// printLive prints, when view.live, a line for each running stage of a run (not of a
// sweep's trials): epoch, the last epoch's loss and validation accuracy, seconds per
// epoch and the ETA of the stage; and for each stage requeued and waiting, its attempt
// and the epoch it resumes at.
func printLive(w io.Writer, st []pipeline.RunStatus, view statusView) {
	if !view.live {
		return
	}
	var lines []string
	for _, r := range st {
		if r.Run.Trials > 0 {
			continue
		}
		for _, s := range r.Stages {
			if l := liveLine(r.Run.ID, s); l != "" {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, l := range lines {
		for _, part := range strings.Split(l, "\n") {
			fmt.Fprintln(w, fitWidth(part, view.width))
		}
	}
}

// liveLine is, for a running stage, "RUN STAGE: epoch 3/10" and on a second line,
// indented, "loss 0.4123 · val acc 0.9125 · 42.0 s/epoch · ETA 4:54" (two lines, so that
// an 80-column terminal shows them whole); for a requeued stage waiting, "RUN STAGE:
// requeued (attempt 2), resumes at epoch 4"; "" for any other stage.
func liveLine(run string, s pipeline.StageStatus) string {
	head := run + " " + s.Name + ": "
	switch {
	case s.State.Running():
		what := ""
		if c := epochCell(s.Epoch, s.Epochs, s.State); c != "" {
			what = "epoch " + c
		}
		if s.JobAttempt > 1 {
			what = strings.TrimPrefix(fmt.Sprintf("%s, attempt %d (requeued %d×)", what, s.JobAttempt, s.JobAttempt-1), ", ")
		}
		var parts []string
		if s.LastLoss != nil {
			parts = append(parts, "loss "+num.Text(s.LastLoss, 4))
		}
		if s.LastValAccuracy != nil {
			parts = append(parts, "val acc "+num.Text(s.LastValAccuracy, 4))
		}
		if s.EpochSeconds > 0 {
			parts = append(parts, fmt.Sprintf("%.1f s/epoch", s.EpochSeconds))
		}
		if s.ETASeconds > 0 {
			parts = append(parts, "ETA "+elapsed(time.Duration(s.ETASeconds*float64(time.Second))))
		}
		if what == "" && len(parts) == 0 {
			return "" // a command stage: the table says all there is
		}
		if len(parts) > 0 {
			what += "\n  " + strings.Join(parts, " · ")
		}
		return head + what
	case s.State.Waiting() && s.JobAttempt > 1:
		l := fmt.Sprintf("%srequeued (attempt %d)", head, s.JobAttempt)
		if s.ResumeEpoch > 0 {
			l += fmt.Sprintf(", resumes at epoch %d", s.ResumeEpoch)
		}
		return l
	}
	return ""
}
