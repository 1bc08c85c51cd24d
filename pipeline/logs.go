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
}

// Logs prints a stage's job log of run to w: once, or, with Follow, as the job writes it
// until the job has ended and the log has no more to give. A stage that has not started
// has no log yet: without Follow that is a notice, not an error; with Follow, Logs waits
// for it. A stage that never ran (cancelled while waiting, as when its dependency
// failed) is an errkind.ErrNotFound error saying so; a stage name the run lacks is an
// errkind.ErrUsage error. A done ctx ends a follow without error (Ctrl-C).
func Logs(ctx context.Context, t transport.Transport, ex jobs.Executor, run registry.Run, w io.Writer, o LogOptions) error {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 10 * time.Second
	}
	if o.Notice == nil {
		o.Notice = io.Discard
	}
	if err := needTrial(run, "show the logs of"); err != nil {
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
	stage, err := StageLog(run, o.Stage, states)
	if err != nil {
		return fmt.Errorf("%w: %w", errkind.ErrUsage, err)
	}
	if stage.JobID == "" {
		return fmt.Errorf("stage %s of run %s was never submitted: %w", stage.Name, run.ID, errkind.ErrNotFound)
	}
	ext := "out"
	if o.Err {
		ext = "err"
	}
	path := LogFile(run, stage, ext)
	if o.Task != nil {
		path = TaskLogFile(run, stage, *o.Task, ext)
	}
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
			st, known := states[stage.JobID]
			v := jobView(stage, st, known)
			switch {
			case v.State == jobs.StatePending || (o.Follow && !v.State.Terminal()):
				// Not started yet: Slurm creates the log when the job starts.
				if !o.Follow {
					fmt.Fprintf(o.Notice, "hpctl: %s has not started yet (%s %s); no log yet\n", stage.Name, v.State, st.Reason)
					return nil
				}
			case v.NeverRan():
				return fmt.Errorf("stage %s of run %s never ran (%s %s), so it has no log; `hpctl status %s` shows which stage failed: %w",
					stage.Name, run.ID, v.State, v.Reason, run.ID, errkind.ErrNotFound)
			default:
				return fmt.Errorf("log %s of stage %s: %w", path, stage.Name, errkind.ErrNotFound)
			}
		}
		if _, err := w.Write(res.Stdout); err != nil {
			return fmt.Errorf("write log: %w", err)
		}
		offset += int64(len(res.Stdout))
		if !o.Follow {
			return nil
		}
		if time.Since(lastCheck) >= o.PollInterval || len(res.Stdout) == 0 {
			if time.Since(lastCheck) >= o.PollInterval {
				lastCheck = time.Now()
				states, err = ex.Query(ctx, []string{stage.JobID})
				if err != nil {
					if errors.Is(err, context.Canceled) {
						return nil
					}
					return err
				}
			}
			if states[stage.JobID].State.Terminal() && len(res.Stdout) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Interval):
		}
	}
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
