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
	"github.com/hpctl/hpctl/pipeline/stagestate"
	"github.com/hpctl/hpctl/transport"
)

// StageStatus is where one stage of one run stands.
type StageStatus struct {
	Name     string        `json:"name"`
	JobID    string        `json:"job_id,omitempty"`
	State    jobs.State    `json:"state"`
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
	State  jobs.State    `json:"state"`
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

// ReasonDependencyFailed is the reason a stage that never ran because a dependency
// failed shows, in status and fetch-results alike.
const ReasonDependencyFailed = stagestate.ReasonDependencyFailed

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
				Tail: ok && st.State.Failed(),
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
		views := map[string]stagestate.View{}
		for _, s := range r.Stages {
			in := stagestate.Input{JobID: s.JobID, Submitted: s.JobID != "", Queried: true, EpochsTotal: s.Epochs}
			f := files[experiment.StageDir(r.RunDir, s.Name)]
			if st, known := states[s.JobID]; known && s.JobID != "" {
				in.Job = &st
			}
			in.Started, in.Finished, in.EpochsDone = f.started, f.finished, f.epochs
			v := stagestate.Of(in)
			// Dependencies come first in a run's stages, so theirs are explained already.
			var deps []stagestate.View
			for _, d := range s.DependsOn {
				if dv, ok := views[d]; ok {
					deps = append(deps, dv)
				}
			}
			v = v.AfterDependencies(deps...)
			views[s.Name] = v
			ss := StageStatus{Name: s.Name, JobID: s.JobID, State: v.State, Reason: v.Reason, Node: v.Node, Elapsed: v.Elapsed,
				ExitCode: v.ExitCode, Epoch: v.EpochsDone, Epochs: v.EpochsTotal}
			if s.JobID != "" {
				ss.BestValAccuracy = f.bestVal
			}
			if in.Job != nil && in.Job.State == jobs.StatePending && in.Job.Reason == "DependencyNeverSatisfied" {
				stuck = append(stuck, s.JobID)
			}
			if ss.State.Failed() {
				ss.Log, ss.LogTail = f.errPath, f.errTail
				if strings.TrimSpace(ss.LogTail) == "" {
					ss.Log, ss.LogTail = f.outPath, f.outTail
				}
			}
			rs.Stages = append(rs.Stages, ss)
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

// runState summarises a run: a failed submission is FAILED, else its stages' states
// decide (stagestate.Overall).
func runState(rs RunStatus) jobs.State {
	if rs.Run.Status == registry.RunFailed {
		return jobs.StateFailed
	}
	states := make([]jobs.State, len(rs.Stages))
	for i, s := range rs.Stages {
		states[i] = s.State
	}
	return stagestate.Overall(states...)
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
