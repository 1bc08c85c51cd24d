package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/stagestate"
	"github.com/hpctl/hpctl/transport"
)

// LogOptions choose which log Logs prints and how.
type LogOptions struct {
	// Stage is the stage whose log to print; "" picks the last stage that ran (StageLog).
	Stage string
	// Err prints the job's stderr (.err) instead of its stdout (.out).
	Err bool
	// Task, when set, prints that task's own log of a stage on several nodes
	// (slurm.nodes > 1) instead of the job's.
	Task *int
	// Follow keeps printing what the job writes until the job ends (or ctx is done).
	Follow bool
	// Interval is the wait between two reads of a followed log (default 1s).
	Interval time.Duration
	// PollInterval is the least time between two questions to the executor about the
	// job while following (default 10s): Slurm asks tools not to poll in tight loops.
	PollInterval time.Duration
	// Notice receives what is said to the user beside the log (a stage not started yet);
	// nil discards it.
	Notice io.Writer
	// Tail > 0 starts each log with its last Tail lines rather than its beginning.
	Tail int
}

// Logs prints a stage's job log of run to w: once, or, with Follow, as the job writes it
// until the job has ended and the log has no more to give. A stage that has not started
// has no log yet: without Follow that is a notice, not an error; with Follow, Logs waits
// for it. A stage that never ran (cancelled while waiting, as when its dependency
// failed) is an errkind.ErrNotFound error saying so; a stage name the run lacks is an
// errkind.ErrUsage error. A done ctx ends a follow without error (Ctrl-C).
//
// Follow without Stage follows the whole pipeline (FollowRun).
func Logs(ctx context.Context, t transport.Transport, ex jobs.Executor, run registry.Run, w io.Writer, o LogOptions) error {
	o = o.withDefaults()
	if err := needTrial(run, "show the logs of"); err != nil {
		return err
	}
	if o.Follow && o.Stage == "" {
		return FollowRun(ctx, t, ex, run, w, o)
	}
	var ids []string
	for _, s := range run.Stages {
		ids = append(ids, s.JobID)
	}
	states, err := ex.Query(ctx, ids)
	if err != nil {
		return err
	}
	stage, err := StageLog(run, o.Stage, states)
	if err != nil {
		return fmt.Errorf("%w: %w", errkind.ErrUsage, err)
	}
	if stage.JobID == "" {
		return fmt.Errorf("stage %s of run %s was never submitted: %w", stage.Name, run.ID, errkind.ErrNotFound)
	}
	f := follower{t: t, ex: ex, run: run, w: w, o: o, states: states, lastCheck: time.Now()}
	_, err = f.stage(ctx, stage, nil)
	return err
}

func (o LogOptions) withDefaults() LogOptions {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.Notice == nil {
		o.Notice = io.Discard
	}
	return o
}

// FollowRun follows every stage of run in turn, in the order they were submitted (a
// stage after those it depends on): it waits, saying so once on o.Notice with the
// scheduler's reason in plain words, while a stage is pending; prints each stage's log
// under a header line "== finetune (job 81) ==" as the job writes it; and returns when
// the last stage has ended, or a stage ended without running (its dependency failed:
// the run is over). A done ctx ends it without error (Ctrl-C).
func FollowRun(ctx context.Context, t transport.Transport, ex jobs.Executor, run registry.Run, w io.Writer, o LogOptions) error {
	o = o.withDefaults()
	o.Follow = true
	if err := needTrial(run, "show the logs of"); err != nil {
		return err
	}
	var ids []string
	for _, s := range run.Stages {
		if s.JobID != "" {
			ids = append(ids, s.JobID)
		}
	}
	states, err := ex.Query(ctx, ids)
	if err != nil {
		return err
	}
	f := follower{t: t, ex: ex, run: run, w: w, o: o, ids: ids, states: states, lastCheck: time.Now()}
	for _, s := range run.Stages {
		if s.JobID == "" {
			fmt.Fprintf(o.Notice, "hpctl: %s was never submitted; the run ends here\n", s.Name)
			return nil
		}
		header := func() {
			fmt.Fprintf(w, "== %s (job %s) ==\n", s.Name, s.JobID)
		}
		ran, err := f.stage(ctx, s, header)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if !ran {
			return nil
		}
	}
	return nil
}

// follower reads stage logs for Logs and FollowRun, asking the executor about the run's
// jobs at most every PollInterval.
type follower struct {
	t         transport.Transport
	ex        jobs.Executor
	run       registry.Run
	w         io.Writer
	o         LogOptions
	ids       []string // the jobs asked about while following (nil: the stage's own)
	states    map[string]jobs.JobState
	lastCheck time.Time
}

// refresh asks the executor again when PollInterval has passed since it last did.
func (f *follower) refresh(ctx context.Context, stage registry.RunStage) error {
	if time.Since(f.lastCheck) < f.o.PollInterval {
		return nil
	}
	f.lastCheck = time.Now()
	ids := f.ids
	if ids == nil {
		ids = []string{stage.JobID}
	}
	states, err := f.ex.Query(ctx, ids)
	if err != nil {
		return err
	}
	f.states = states
	return nil
}

// stage prints (or, with Follow, follows) one stage's log; header, when not nil, is
// called before its first byte. It reports whether the stage ran: a stage cancelled
// before it started ends a followed pipeline (with a notice), and is an error alone.
func (f *follower) stage(ctx context.Context, stage registry.RunStage, header func()) (bool, error) {
	o := f.o
	ext := "out"
	if o.Err {
		ext = "err"
	}
	path := LogFile(f.run, stage, ext)
	if o.Task != nil {
		path = TaskLogFile(f.run, stage, *o.Task, ext)
	}
	var offset int64
	started, waitSaid := false, ""
	for {
		var chunk []byte
		found := true
		if !started && o.Tail > 0 {
			// The first read: the file's size, then the last lines of that much of it (so
			// what the job writes meanwhile comes with the next read, once), all on the
			// cluster's side.
			res, err := f.t.Run(ctx, []string{"sh", "-c", `s=$(wc -c < "$1") && echo "$s" && head -c "$s" -- "$1" | tail -n "$2"`, "sh", path, strconv.Itoa(o.Tail)}, nil)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return true, nil
				}
				return true, fmt.Errorf("read %s: %w", path, err)
			}
			size, rest, _ := strings.Cut(string(res.Stdout), "\n")
			n, perr := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
			if res.ExitCode != 0 || perr != nil {
				found = false
			} else {
				chunk, offset = []byte(rest), n-int64(len(rest)) // += len(chunk) below makes it n
			}
		} else {
			// tail -c +N reads only what is new, over ssh too.
			res, err := f.t.Run(ctx, []string{"tail", "-c", "+" + strconv.FormatInt(offset+1, 10), path}, nil)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return true, nil
				}
				return true, fmt.Errorf("read %s: %w", path, err)
			}
			found, chunk = res.ExitCode == 0, res.Stdout
		}
		if !found {
			st, known := f.states[stage.JobID]
			v := jobView(stage, st, known)
			switch {
			case v.State == jobs.StatePending || (o.Follow && !v.State.Terminal()):
				// Not started yet: Slurm creates the log when the job starts.
				if !o.Follow {
					fmt.Fprintf(o.Notice, "hpctl: %s has not started yet (%s %s); no log yet\n", stage.Name, v.State, st.Reason)
					return false, nil
				}
				if why := waitNote(stage, v, st); why != waitSaid {
					fmt.Fprintf(o.Notice, "hpctl: waiting for %s (job %s) to start: %s\n", stage.Name, stage.JobID, why)
					waitSaid = why
				}
			case v.NeverRan() && header != nil:
				fmt.Fprintf(o.Notice, "hpctl: %s never ran (%s %s); the run ends here\n", stage.Name, v.State, v.Reason)
				return false, nil
			case v.NeverRan():
				return false, fmt.Errorf("stage %s of run %s never ran (%s %s), so it has no log; `hpctl status %s` shows which stage failed: %w",
					stage.Name, f.run.ID, v.State, v.Reason, f.run.ID, errkind.ErrNotFound)
			default:
				return true, fmt.Errorf("log %s of stage %s: %w", path, stage.Name, errkind.ErrNotFound)
			}
		} else {
			if !started && header != nil {
				header()
			}
			started = true
		}
		if _, err := f.w.Write(chunk); err != nil {
			return true, fmt.Errorf("write log: %w", err)
		}
		offset += int64(len(chunk))
		if !o.Follow {
			return true, nil
		}
		if len(chunk) == 0 || time.Since(f.lastCheck) >= o.PollInterval {
			if err := f.refresh(ctx, stage); err != nil {
				if errors.Is(err, context.Canceled) {
					return true, nil
				}
				return true, err
			}
			if started && f.states[stage.JobID].State.Terminal() && len(chunk) == 0 {
				return true, nil
			}
		}
		select {
		case <-ctx.Done():
			return true, nil
		case <-time.After(o.Interval):
		}
	}
}

// waitNote says why a stage waits, in plain words where the scheduler gave a reason.
func waitNote(stage registry.RunStage, v stagestate.View, st jobs.JobState) string {
	if why := Explain(Waiting{Reason: st.Reason, DependsOn: stage.DependsOn}); why != "" {
		return why
	}
	return strings.ToLower(string(v.State))
}

// jobView reads a stage from what the executor says of its job alone (logs reads no
// markers).
func jobView(s registry.RunStage, st jobs.JobState, known bool) stagestate.View {
	in := stagestate.Input{JobID: s.JobID, Submitted: s.JobID != "", Queried: true}
	if known {
		in.Job = &st
	}
	return stagestate.Of(in)
}

// StageLog picks a run's stage for logs: the named one, else the last stage (in
// submission order) whose job has run (left the queue's pending state, and not merely
// been cancelled while waiting, as a stage whose dependency failed is), else the first.
func StageLog(run registry.Run, stage string, states map[string]jobs.JobState) (registry.RunStage, error) {
	if stage != "" {
		for _, s := range run.Stages {
			if s.Name == stage {
				return s, nil
			}
		}
		var names []string
		for _, s := range run.Stages {
			names = append(names, s.Name)
		}
		return registry.RunStage{}, fmt.Errorf("run %s has no stage %q (stages: %s)", run.ID, stage, strings.Join(names, ", "))
	}
	if len(run.Stages) == 0 {
		return registry.RunStage{}, fmt.Errorf("run %s has no stages", run.ID)
	}
	pick := run.Stages[0]
	for _, s := range run.Stages {
		st, ok := states[s.JobID]
		if !ok || s.JobID == "" {
			continue
		}
		if v := jobView(s, st, true); v.State != jobs.StatePending && v.State != jobs.StateUnknown && !v.NeverRan() {
			pick = s
		}
	}
	return pick, nil
}

// LogFile is the path of a stage's job log ("out" or "err").
// TaskLogFile is the log of task K of a stage on several nodes: srun writes one per task
// beside the job's (logs/<job name>-<job id>.task<K>.<ext>).
func TaskLogFile(run registry.Run, s registry.RunStage, task int, ext string) string {
	if array, idx, ok := isTask(s.JobID); ok {
		return experiment.TaskLogPath(run.RunDir, s.JobName, array+"_"+idx, task, ext)
	}
	return experiment.TaskLogPath(run.RunDir, s.JobName, s.JobID, task, ext)
}

func LogFile(run registry.Run, s registry.RunStage, ext string) string {
	if array, task, ok := isTask(s.JobID); ok {
		return experiment.ArrayLogPath(run.RunDir, s.JobName, array, task, ext)
	}
	return experiment.LogPath(run.RunDir, s.JobName, s.JobID, ext)
}
