package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
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
	// BestValAccuracy is the best val_accuracy so far; nil before the first epoch.
	BestValAccuracy *float64 `json:"best_val_accuracy,omitempty"`
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
	bestVal           *float64
	outPath, errPath  string
	outTail, errTail  string
}

// readProgram reads groups of four lines on stdin (stage dir, out log, err log, "1" when
// the tail is wanted) and prints, for each stage, its markers, a summary of its
// history.csv (rows, best val_accuracy) and, when the stage failed, the tails of its
// logs. Sections start with a line "\x1e<kind> <dir>" (ASCII record separator): markers
// and logs never hold that byte.
//
// It is one awk process for any number of stages: a sweep's status reads thousands of
// markers and histories, and a process per file (cat, grep, awk) made that take seconds.
// Only the tail of a failed stage's log is left to tail(1), which seeks from the end.
// The paths come on stdin rather than as arguments (a command line over ssh is one
// string, limited to 128 KiB by Linux) and never inside the program text; the one shell
// command built from a path quotes it. Spec validation keeps newlines out of these paths.
// File names come from the layout constants. POSIX awk: mawk, gawk and busybox alike.
const readProgram = `
function emit(kind, d, path,    line, r) {
	r = (getline line < path)
	if (r < 0) return 0
	printf "\036%s %s\n", kind, d
	while (r > 0) {
		print line
		if (kind == finished && line == "exit_code=0") ok = 1
		r = (getline line < path)
	}
	close(path)
	return 1
}
function hist(d, path,    line, f, nf, i, c, rows, best) {
	if ((getline line < path) <= 0) { close(path); return }
	nf = split(line, f, ",")
	c = 0
	for (i = 1; i <= nf; i++) if (f[i] == "val_accuracy") c = i
	rows = 0; best = ""
	while ((getline line < path) > 0) {
		nf = split(line, f, ",")
		if (nf > 1) {
			rows++
			if (c && f[c] != "" && (best == "" || f[c] + 0 > best + 0)) best = f[c]
		}
	}
	close(path)
	printf "\036history %s\n%d %s\n", d, rows, best
}
function tail(kind, d, path,    line) {
	if ((getline line < path) < 0) return
	close(path)
	printf "\036%s %s\n", kind, d
	fflush()
	gsub(/'/, "'\\''", path)
	system("tail -n " n " -- '" path "'")
}
{
	if (NR % 4 == 1) { d = $0; next }
	if (NR % 4 == 2) { out = $0; next }
	if (NR % 4 == 3) { err = $0; next }
	ok = 0
	emit(started, d, d "/" markers "/" started)
	fin = emit(finished, d, d "/" markers "/" finished)
	hist(d, d "/" history)
	if ($0 == "1" || (fin && !ok)) {
		tail("err", d, err)
		tail("out", d, out)
	}
}`

// readArgs are readProgram's awk command line, less the tail length.
var readArgs = []string{"awk",
	"-v", "markers=" + experiment.MarkerDir, "-v", "history=" + experiment.HistoryFile,
	"-v", "started=" + experiment.StartedMarker, "-v", "finished=" + experiment.FinishedMarker,
}

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
	argv := append(append([]string(nil), readArgs...), "-v", "n="+strconv.Itoa(tail), readProgram)
	res, err := t.Run(ctx, argv, strings.NewReader(in.String()))
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
				if v, err := strconv.ParseFloat(f[1], 64); err == nil {
					d.bestVal = &v
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
