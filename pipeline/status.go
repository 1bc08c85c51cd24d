package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/shell"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/transport"
)

// StageStatus is where one stage of one run stands.
type StageStatus struct {
	Name     string        `json:"name"`
	JobID    string        `json:"job_id,omitempty"`
	State    string        `json:"state"`
	Reason   string        `json:"reason,omitempty"`
	Node     string        `json:"node,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	ExitCode string        `json:"exit_code,omitempty"`
	// Epoch of Epochs: epochs completed (rows of history.csv) of the stage's total; 0 of 0
	// for a stage that runs a command rather than the trainer.
	Epoch  int `json:"epoch"`
	Epochs int `json:"epochs"`
	// BestValAccuracy is the best finite val_accuracy so far; nil before the first epoch
	// (or without a val_accuracy column), NaN (JSON null) when every value so far is nan
	// or inf, as a diverged run writes.
	BestValAccuracy *num.Float `json:"best_val_accuracy,omitempty"`
	// Log is the job's log file the tail comes from; LogTail its last lines, for stages
	// that failed.
	Log     string `json:"log,omitempty"`
	LogTail string `json:"log_tail,omitempty"`
}

// RunStatus is where one run stands: its record and its stages.
type RunStatus struct {
	Run    registry.Run  `json:"run"`
	State  string        `json:"state"`
	Stages []StageStatus `json:"stages"`
}

// StatusOptions tune Status.
type StatusOptions struct {
	// TailLines of a failed stage's log to show (default 10).
	TailLines int
	// KeepStuck leaves jobs pending with DependencyNeverSatisfied alone instead of
	// cancelling them.
	KeepStuck bool
}

// Dependency-failure wording status shows.
const ReasonDependencyFailed = "dependency failed"

// Status resolves every stage of runs (all reached through t and ex) with one
// ex.Query (one squeue and at most one sacct for Slurm) and one command through t that
// reads every stage's markers, history summary and, for failed stages, log tails.
//
// Jobs the scheduler no longer knows (no accounting, or past its retention) take their
// state from the run directory's markers, so a finished job never shows as pending or
// unknown. Jobs left pending with DependencyNeverSatisfied are cancelled (one scancel
// for all of them) and shown CANCELLED, "dependency failed".
func Status(ctx context.Context, t transport.Transport, ex jobs.Executor, runs []registry.Run, opts StatusOptions) ([]RunStatus, error) {
	if opts.TailLines <= 0 {
		opts.TailLines = 10
	}
	var ids []string
	for _, r := range runs {
		for _, s := range r.Stages {
			if s.JobID != "" {
				ids = append(ids, s.JobID)
			}
		}
	}
	states, err := ex.Query(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}

	// Stages whose failure Slurm already knows get their log tails in the same read.
	var reqs []stageFiles
	for _, r := range runs {
		for _, s := range r.Stages {
			if s.JobID == "" {
				continue
			}
			st, ok := states[s.JobID]
			reqs = append(reqs, stageFiles{
				Dir:  experiment.StageDir(r.RunDir, s.Name),
				Out:  experiment.LogPath(r.RunDir, s.JobName, s.JobID, "out"),
				Err:  experiment.LogPath(r.RunDir, s.JobName, s.JobID, "err"),
				Tail: ok && failed(st.State),
			})
		}
	}
	files, err := readStageFiles(ctx, t, reqs, opts.TailLines)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}

	out := make([]RunStatus, 0, len(runs))
	var stuck []string
	for _, r := range runs {
		rs := RunStatus{Run: r}
		byName := map[string]*StageStatus{}
		started := map[string]bool{}
		for _, s := range r.Stages {
			ss := StageStatus{Name: s.Name, JobID: s.JobID, Epochs: s.Epochs}
			if s.JobID == "" {
				ss.State = jobs.StateCancelled
				ss.Reason = "not submitted"
				rs.Stages = append(rs.Stages, ss)
				byName[s.Name] = &rs.Stages[len(rs.Stages)-1]
				continue
			}
			f := files[experiment.StageDir(r.RunDir, s.Name)]
			started[s.Name] = f.started != nil
			st, known := states[s.JobID]
			ss.State, ss.Reason, ss.Node, ss.Elapsed, ss.ExitCode = st.State, st.Reason, st.Node, st.Elapsed, st.ExitCode
			fillFromMarkers(&ss, known, f)
			if ss.State == jobs.StateCancelled && (ss.Reason == "Dependency" || ss.Reason == "DependencyNeverSatisfied") {
				ss.Reason = ReasonDependencyFailed // --kill-on-invalid-dep's doing
			}
			if ss.State == jobs.StatePending && ss.Reason == "DependencyNeverSatisfied" {
				stuck = append(stuck, s.JobID)
			}
			ss.Epoch = f.epochs
			ss.BestValAccuracy = f.bestVal
			if failed(ss.State) {
				ss.Log, ss.LogTail = f.errPath, f.errTail
				if strings.TrimSpace(ss.LogTail) == "" {
					ss.Log, ss.LogTail = f.outPath, f.outTail
				}
			}
			rs.Stages = append(rs.Stages, ss)
			byName[s.Name] = &rs.Stages[len(rs.Stages)-1]
		}
		// A job that never started and was cancelled (by --kill-on-invalid-dep), or that
		// Slurm forgot: cancelled because a dependency failed, when one did.
		for i := range rs.Stages {
			ss := &rs.Stages[i]
			if ss.State != jobs.StateUnknown && !(ss.State == jobs.StateCancelled && !started[ss.Name]) {
				continue
			}
			for _, d := range r.Stages[i].DependsOn {
				if dep := byName[d]; dep != nil && (failed(dep.State) || dep.State == jobs.StateCancelled) {
					ss.State, ss.Reason, ss.ExitCode = jobs.StateCancelled, ReasonDependencyFailed, ""
				}
			}
		}
		out = append(out, rs)
	}
	if len(stuck) > 0 && !opts.KeepStuck {
		if err := ex.Cancel(ctx, stuck); err != nil {
			return nil, fmt.Errorf("status: cancel jobs whose dependency failed (%s): %w", strings.Join(stuck, " "), err)
		}
		isStuck := map[string]bool{}
		for _, id := range stuck {
			isStuck[id] = true
		}
		for i := range out {
			for j := range out[i].Stages {
				if ss := &out[i].Stages[j]; isStuck[ss.JobID] {
					ss.State, ss.Reason = jobs.StateCancelled, ReasonDependencyFailed
				}
			}
		}
	}
	for i := range out {
		out[i].State = runState(out[i])
	}
	return out, nil
}

// fillFromMarkers completes what the scheduler said (or did not say) with the markers
// the job script wrote.
func fillFromMarkers(ss *StageStatus, known bool, f stageData) {
	fin, hasFin := f.finished, f.finished != nil && f.finished["state"] != jobs.StateRequeued
	start, hasStart := f.started, f.started != nil
	if hasFin && fin["job_id"] != "" && fin["job_id"] != ss.JobID {
		hasFin = false // a marker of another job (cannot happen with one run dir per run)
	}
	switch {
	case hasFin && (!known || ss.State == jobs.StatePending || ss.State == jobs.StateUnknown || ss.State == ""):
		ss.State = fin["state"]
		if ss.State == "" {
			ss.State = jobs.StateFailed
			if fin["exit_code"] == "0" {
				ss.State = jobs.StateCompleted
			}
		}
		ss.Reason = ""
		ss.ExitCode = fin["exit_code"]
	case !known && hasStart:
		// Started, not in the queue any more, and no finished marker: the job was killed
		// hard (node failure, SIGKILL) before its script could write one.
		ss.State, ss.Reason = jobs.StateFailed, "ended without writing its finished marker"
	case !known:
		ss.State, ss.Reason = jobs.StateUnknown, "no longer known to the scheduler; it never started"
	}
	if jobs.Terminal(ss.State) && ss.ExitCode == "" && hasFin {
		ss.ExitCode = fin["exit_code"]
	}
	if ss.Node == "" && hasStart {
		ss.Node = start["host"]
	}
	if ss.Elapsed == 0 && hasStart {
		s, _ := strconv.ParseInt(start["start_time"], 10, 64)
		e := time.Now().Unix()
		if hasFin {
			if v, err := strconv.ParseInt(fin["end_time"], 10, 64); err == nil {
				e = v
			}
		}
		if s > 0 && e >= s && (hasFin || ss.State == jobs.StateRunning) {
			ss.Elapsed = time.Duration(e-s) * time.Second
		}
	}
}

// failed reports whether a stage ended without success.
func failed(state string) bool {
	switch state {
	case jobs.StateFailed, jobs.StateTimeout, jobs.StateNodeFail, jobs.StateOutOfMemory, jobs.StatePreempted:
		return true
	}
	return false
}

// runState summarises a run: the first failure wins, then anything still going, then
// CANCELLED, and COMPLETED only when every stage completed.
func runState(rs RunStatus) string {
	if rs.Run.Status == registry.RunFailed {
		return jobs.StateFailed
	}
	var running, pending, cancelled, unknown bool
	for _, s := range rs.Stages {
		switch {
		case failed(s.State):
			return s.State
		case s.State == jobs.StateRunning:
			running = true
		case s.State == jobs.StatePending || s.State == jobs.StateRequeued:
			pending = true
		case s.State == jobs.StateCancelled:
			cancelled = true
		case s.State != jobs.StateCompleted:
			unknown = true
		}
	}
	switch {
	case running:
		return jobs.StateRunning
	case pending:
		return jobs.StatePending
	case cancelled:
		return jobs.StateCancelled
	case unknown:
		return jobs.StateUnknown
	}
	return jobs.StateCompleted
}

// stageFiles asks for one stage's files.
type stageFiles struct {
	Dir, Out, Err string
	Tail          bool
}

// stageData is what readStageFiles found for one stage.
type stageData struct {
	started, finished map[string]string
	epochs            int
	bestVal           *num.Float
	outPath, errPath  string
	outTail, errTail  string
}

// readScript reads groups of four lines on stdin (stage dir, out log, err log, "1" when
// the tail is wanted) and prints, for each stage, its markers, a summary of its
// history.csv (rows; best val_accuracy: the largest finite one, else the last nan or inf
// cell, so a diverged run shows nan; cells that are no number, or overflow to inf, as
// 1e999 does, are skipped) and, when the stage failed, the tails of its
// logs. Sections start with a line "\x1e<kind> <dir>" (ASCII record separator): markers
// and logs never hold that byte. The paths come on stdin rather than as arguments so
// that one command serves any number of stages (a command line over ssh is one string,
// limited to 128 KiB by Linux), and never inside the script text, so nothing needs
// quoting. Spec validation keeps newlines out of these paths. File names come from the
// layout constants.
var readScript = `n=$1
markers=` + shell.Quote(experiment.MarkerDir) + `; history=` + shell.Quote(experiment.HistoryFile) + `
started=` + shell.Quote(experiment.StartedMarker) + `; finished=` + shell.Quote(experiment.FinishedMarker) + `
while IFS= read -r d && IFS= read -r out && IFS= read -r err && IFS= read -r want; do
	for m in "$started" "$finished"; do
		if [ -f "$d/$markers/$m" ]; then printf '\036%s %s\n' "$m" "$d"; cat "$d/$markers/$m"; fi
	done
	if [ -f "$d/$history" ]; then
		printf '\036history %s\n' "$d"
		awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { h = $i; gsub(/^[ \t\r"]+|[ \t\r"]+$/, "", h); if (h == "val_accuracy") c = i }; next }
			NF > 1 { n++; if (!c) next; v = $c; gsub(/^[ \t\r]+|[ \t\r]+$/, "", v)
				if (v ~ /^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$/ && ((x = v + 0) == 0 || x != x * 2)) { if (best == "" || x > best + 0) best = v }
				else if (tolower(v) ~ /^[-+]?(nan|inf|infinity)$/) nonfinite = v }
			END { if (best == "") best = nonfinite; print n + 0, best }' "$d/$history"
	fi
	if [ "$want" = 1 ] || { [ -f "$d/$markers/$finished" ] && ! grep -qx 'exit_code=0' "$d/$markers/$finished"; }; then
		if [ -f "$err" ]; then printf '\036err %s\n' "$d"; tail -n "$n" "$err"; fi
		if [ -f "$out" ]; then printf '\036out %s\n' "$d"; tail -n "$n" "$out"; fi
	fi
done`

// readStageFiles reads every stage's files with one command through t.
func readStageFiles(ctx context.Context, t transport.Transport, reqs []stageFiles, tail int) (map[string]stageData, error) {
	out := map[string]stageData{}
	if len(reqs) == 0 {
		return out, nil
	}
	var in strings.Builder
	for _, r := range reqs {
		out[r.Dir] = stageData{outPath: r.Out, errPath: r.Err}
		want := "0"
		if r.Tail {
			want = "1"
		}
		for _, l := range []string{r.Dir, r.Out, r.Err, want} {
			if strings.ContainsAny(l, "\n\r") {
				return nil, fmt.Errorf("read markers: path %q holds a line break", l)
			}
			in.WriteString(l)
			in.WriteByte('\n')
		}
	}
	res, err := t.Run(ctx, []string{"sh", "-c", readScript, "sh", strconv.Itoa(tail)}, strings.NewReader(in.String()))
	if err != nil {
		return nil, fmt.Errorf("read markers: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("read markers: exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	parseStageFiles(res.Stdout, out)
	return out, nil
}

func parseStageFiles(b []byte, out map[string]stageData) {
	for _, sec := range bytes.Split(b, []byte{0x1e})[1:] {
		head, body, _ := bytes.Cut(sec, []byte{'\n'})
		kind, dir, ok := strings.Cut(string(head), " ")
		if !ok {
			continue
		}
		d, known := out[dir]
		if !known {
			continue
		}
		switch kind {
		case experiment.StartedMarker:
			d.started = experiment.ParseMarker(body)
		case experiment.FinishedMarker:
			d.finished = experiment.ParseMarker(body)
		case "history":
			f := strings.Fields(string(body))
			if len(f) > 0 {
				d.epochs, _ = strconv.Atoi(f[0])
			}
			if len(f) > 1 {
				// The script's best is a finite number, or nan or inf when no value so far
				// is finite; Parse reads 1e999 as +Inf rather than failing.
				if v, err := num.Parse(f[1]); err == nil {
					d.bestVal = num.Ptr(v)
				}
			}
		case "err":
			d.errTail = string(body)
		case "out":
			d.outTail = string(body)
		}
		out[dir] = d
	}
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
		neverRan := st.State == jobs.StateCancelled && st.Node == "" // cancelled while pending: no log
		if ok && st.State != jobs.StatePending && st.State != jobs.StateUnknown && !neverRan {
			pick = s
		}
	}
	return pick, nil
}

// LogFile is the path of a stage's job log ("out" or "err").
func LogFile(run registry.Run, s registry.RunStage, ext string) string {
	return experiment.LogPath(run.RunDir, s.JobName, s.JobID, ext)
}
