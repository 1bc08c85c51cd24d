package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/stagestate"
	"github.com/hpctl/hpctl/transport"
)

// StageStatus is where one stage of one run stands.
type StageStatus struct {
	Name   string     `json:"name"`
	JobID  string     `json:"job_id,omitempty"`
	State  jobs.State `json:"state"`
	Reason string     `json:"reason,omitempty"`
	// Explanation is, for a waiting stage, why it waits in plain words (Explain):
	// "waiting for free CPUs, GPUs or memory on a node", "requeued, resumes at epoch 83".
	Explanation string `json:"explanation,omitempty"`
	Node        string `json:"node,omitempty"`
	// Elapsed and ExitCode are written as elapsed_s, exit_code and signal (numbers; see
	// MarshalJSON and docs/json.md).
	Elapsed  time.Duration `json:"-"`
	ExitCode string        `json:"-"`
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
	// Attempt is the stage's attempt as retries count them (1, then one more with each
	// `hpctl retry` that resubmitted it); requeues of one job are not attempts here.
	Attempt int `json:"attempt,omitempty"`
	// LastLoss and LastValAccuracy are the latest epoch's (history.csv's last row).
	LastLoss        *num.Float `json:"last_loss,omitempty"`
	LastValAccuracy *num.Float `json:"last_val_accuracy,omitempty"`
	// EpochSeconds is, for a running stage, the time an epoch takes (the median of the
	// last epochs' end times in history.csv, so a requeue's gap does not count), and
	// ETASeconds the time left for the stage's remaining epochs at that pace.
	EpochSeconds float64 `json:"epoch_s,omitempty"`
	ETASeconds   float64 `json:"eta_s,omitempty"`
	// JobAttempt counts the job's starts as Slurm requeues it (1 + requeues): the
	// running one, or for a stage requeued and waiting, the one it starts next.
	// ResumeEpoch is then the epoch it resumes at.
	JobAttempt  int `json:"job_attempt,omitempty"`
	ResumeEpoch int `json:"resume_epoch,omitempty"`
	// Counts are, for a sweep's stage, how many trials are in each state.
	Counts map[jobs.State]int `json:"counts,omitempty"`
}

// RunStatus is where one run stands: its record and its stages. For a sweep, Stages
// summarise every trial's (Counts), and Trials hold each trial's own.
type RunStatus struct {
	Run    registry.Run  `json:"run"`
	State  jobs.State    `json:"state"`
	Stages []StageStatus `json:"stages"`
	Trials []TrialStatus `json:"trials,omitempty"`
	// Best is the sweep's trial with the best validation accuracy so far.
	Best *BestTrial `json:"best,omitempty"`
}

// TrialStatus is where one trial of a sweep stands.
type TrialStatus struct {
	Trial int        `json:"trial"`
	State jobs.State `json:"state"`
	// Values are the trial's swept values, "seed=1, stages.finetune.unfreeze=30".
	Values string        `json:"values"`
	Stages []StageStatus `json:"stages"`
}

// BestTrial is the trial whose last stage with a validation accuracy has the best one.
type BestTrial struct {
	Trial       int     `json:"trial"`
	Values      string  `json:"values"`
	Stage       string  `json:"stage"`
	ValAccuracy float64 `json:"val_accuracy"`
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
			ids = append(ids, s.JobIDs()...)
		}
	}
	// The scheduler's answer and the run directories' files are read at once: for a
	// sweep of a thousand trials each takes about as long as the other.
	var reqs []stageFiles
	for _, r := range runs {
		for _, u := range unitsOf(r) {
			if u.jobID != "" {
				reqs = append(reqs, stageFiles{Dir: u.dir, Out: u.out, Err: u.err, job: u.jobID})
			}
		}
	}
	type read struct {
		files map[string]stageData
		err   error
	}
	done := make(chan read, 1)
	go func() {
		files, err := readStageFiles(ctx, t, reqs, opts.TailLines)
		done <- read{files, err}
	}()
	states, qerr := ex.Query(ctx, ids)
	rd := <-done
	if qerr != nil {
		return nil, fmt.Errorf("status: %w", qerr)
	}
	if rd.err != nil {
		return nil, fmt.Errorf("status: %w", rd.err)
	}
	files := rd.files
	// A failed stage's log tail came with its files when its finished marker says it
	// failed; one the scheduler calls failed without such a marker (killed hard, out of
	// memory) gets its tail in a second, small read.
	var tails []stageFiles
	for _, r := range reqs {
		f := files[r.Dir]
		if st, ok := states[r.job]; ok && st.State.Failed() && f.errTail == "" && f.outTail == "" {
			r.Tail = true
			tails = append(tails, r)
		}
	}
	if len(tails) > 0 {
		more, err := readStageFiles(ctx, t, tails, opts.TailLines)
		if err != nil {
			return nil, fmt.Errorf("status: %w", err)
		}
		for dir, f := range more {
			files[dir] = f
		}
	}

	out := make([]RunStatus, 0, len(runs))
	var stuck []string
	for _, r := range runs {
		rs := RunStatus{Run: r}
		units := unitsOf(r)
		if r.Trials == 0 {
			rs.Stages, stuck = resolve(units, states, files, stuck)
		} else {
			n := len(r.Stages)
			for k := 0; k < r.Trials && (k+1)*n <= len(units); k++ {
				ts := TrialStatus{Trial: k, Values: r.TrialLabel(k)}
				ts.Stages, stuck = resolve(units[k*n:(k+1)*n], states, files, stuck)
				rs.Trials = append(rs.Trials, ts)
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
			for _, stages := range out[i].stageLists() {
				for j := range stages {
					if ss := &stages[j]; isStuck[ss.JobID] {
						ss.State, ss.Reason = jobs.StateCancelled, ReasonDependencyFailed
					}
				}
			}
		}
	}
	for i := range out {
		if out[i].Run.Trials > 0 {
			out[i].summarize()
		}
	}
	for i := range out {
		out[i].State = runState(out[i])
	}
	return out, nil
}

// unit is one job status resolves: a run's stage, or a sweep trial's task of a stage.
type unit struct {
	stage         registry.RunStage
	jobID         string
	dir, out, err string
}

// unitsOf lists a run's jobs: its stages, or for a sweep every trial's stages, trial by
// trial (trial k's are units[k*len(stages) : (k+1)*len(stages)]).
func unitsOf(r registry.Run) []unit {
	if r.Trials == 0 {
		us := make([]unit, len(r.Stages))
		for i, s := range r.Stages {
			us[i] = unit{stage: s, jobID: s.JobID, dir: experiment.StageDir(r.RunDir, s.Name),
				out: experiment.LogPath(r.RunDir, s.JobName, s.JobID, "out"),
				err: experiment.LogPath(r.RunDir, s.JobName, s.JobID, "err")}
		}
		return us
	}
	us := make([]unit, 0, r.Trials*len(r.Stages))
	for k := 0; k < r.Trials; k++ {
		trialDir := path.Join(r.RunDir, experiment.TrialDir(k))
		for _, s := range r.Stages {
			u := unit{stage: s, jobID: s.TaskOf(k), dir: experiment.StageDir(trialDir, s.Name)}
			if array, task, ok := strings.Cut(u.jobID, "_"); ok {
				u.out = experiment.ArrayLogPath(r.RunDir, s.JobName, array, task, "out")
				u.err = experiment.ArrayLogPath(r.RunDir, s.JobName, array, task, "err")
			}
			us = append(us, u)
		}
	}
	return us
}

// resolve interprets the units of one run (or of one trial), stages in order, and adds
// the ids of jobs stuck pending behind a failed dependency to stuck.
func resolve(units []unit, states map[string]jobs.JobState, files map[string]stageData, stuck []string) ([]StageStatus, []string) {
	var out []StageStatus
	views := map[string]stagestate.View{}
	for _, u := range units {
		s := u.stage
		in := stagestate.Input{JobID: u.jobID, Submitted: u.jobID != "", Queried: true, EpochsTotal: s.Epochs}
		f := files[u.dir]
		if st, known := states[u.jobID]; known && u.jobID != "" {
			in.Job = &st
		}
		in.Started, in.Finished, in.EpochsDone = f.started, f.finished, f.epochs
		v := stagestate.Of(in)
		// Dependencies come first in a run's stages, so theirs are explained already.
		var deps []stagestate.View
		var waitsFor []string
		for _, d := range s.DependsOn {
			if dv, ok := views[d]; ok {
				deps = append(deps, dv)
				if dv.State != jobs.StateCompleted {
					waitsFor = append(waitsFor, d)
				}
			}
		}
		v = v.AfterDependencies(deps...)
		views[s.Name] = v
		ss := StageStatus{Name: s.Name, JobID: u.jobID, State: v.State, Reason: v.Reason, Node: v.Node, Elapsed: v.Elapsed,
			ExitCode: v.ExitCode, Epoch: v.EpochsDone, Epochs: v.EpochsTotal, Attempt: s.Attempts()}
		if u.jobID != "" {
			ss.BestValAccuracy = f.bestVal
			ss.LastLoss, ss.LastValAccuracy = f.lastLoss, f.lastVal
		}
		if ss.State.Running() {
			ss.JobAttempt = v.Attempt
			ss.EpochSeconds = epochSeconds(f.times, v.Start)
			if left := ss.Epochs - ss.Epoch; left > 0 && ss.EpochSeconds > 0 {
				ss.ETASeconds = float64(left) * ss.EpochSeconds
			}
		}
		if ss.State.Waiting() {
			w := Waiting{Reason: ss.Reason, DependsOn: waitsFor, Requeued: v.Requeued}
			if v.Requeued {
				ss.JobAttempt = v.Attempt + 1
				if s.Epochs > 0 {
					// The trainer resumes after the last epoch history.csv holds.
					w.ResumeEpoch = v.EpochsDone + 1
					ss.ResumeEpoch = w.ResumeEpoch
				}
			}
			ss.Explanation = Explain(w)
		}
		if in.Job != nil && in.Job.State == jobs.StatePending && in.Job.Reason == "DependencyNeverSatisfied" {
			stuck = append(stuck, u.jobID)
		}
		if ss.State.Failed() {
			ss.Log, ss.LogTail = f.errPath, f.errTail
			if strings.TrimSpace(ss.LogTail) == "" {
				ss.Log, ss.LogTail = f.outPath, f.outTail
			}
		}
		out = append(out, ss)
	}
	return out, stuck
}

// stageLists are the run's lists of stages: its own, or each trial's.
func (rs *RunStatus) stageLists() [][]StageStatus {
	if rs.Run.Trials == 0 {
		return [][]StageStatus{rs.Stages}
	}
	lists := make([][]StageStatus, len(rs.Trials))
	for i := range rs.Trials {
		lists[i] = rs.Trials[i].Stages
	}
	return lists
}

// summarize fills a sweep's per-stage summary (how many trials are in each state, the
// best validation accuracy of any), each trial's state, the best trial, and the run's
// state.
func (rs *RunStatus) summarize() {
	rs.Stages = make([]StageStatus, len(rs.Run.Stages))
	for i, s := range rs.Run.Stages {
		sum := StageStatus{Name: s.Name, JobID: strings.Join(s.JobIDs(), ","), Counts: map[jobs.State]int{}, Epochs: s.Epochs}
		var states []jobs.State
		for _, t := range rs.Trials {
			ts := t.Stages[i]
			sum.Counts[ts.State]++
			states = append(states, ts.State)
			if ts.BestValAccuracy != nil && ts.BestValAccuracy.Finite() && (sum.BestValAccuracy == nil || *ts.BestValAccuracy > *sum.BestValAccuracy) {
				v := *ts.BestValAccuracy
				sum.BestValAccuracy = &v
			}
		}
		// While any trial's task is live the stage is too: a failed trial shows in the
		// counts, and the sweep goes on.
		sum.State = stagestate.Overall(states...)
		for _, st := range states {
			if st.Running() {
				sum.State = jobs.StateRunning
				break
			}
			if !st.Terminal() {
				sum.State = jobs.StatePending
			}
		}
		if sum.State.Failed() && sum.Counts[sum.State] < len(rs.Trials) {
			// Some trials failed; the others may still be running or done.
			sum.Reason = fmt.Sprintf("%d of %d trials %s", sum.Counts[sum.State], len(rs.Trials), sum.State)
		}
		rs.Stages[i] = sum
	}
	for i := range rs.Trials {
		t := &rs.Trials[i]
		states := make([]jobs.State, len(t.Stages))
		for j, s := range t.Stages {
			states[j] = s.State
		}
		t.State = stagestate.Overall(states...)
		// The trial's result is its last stage with a validation accuracy.
		for j := len(t.Stages) - 1; j >= 0; j-- {
			if v := t.Stages[j].BestValAccuracy; v != nil && v.Finite() {
				if rs.Best == nil || float64(*v) > rs.Best.ValAccuracy {
					rs.Best = &BestTrial{Trial: t.Trial, Values: t.Values, Stage: t.Stages[j].Name, ValAccuracy: float64(*v)}
				}
				break
			}
		}
	}
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
	job           string // whose files they are
}

// stageData is what readStageFiles found for one stage.
type stageData struct {
	started, finished map[string]string
	epochs            int
	bestVal           *num.Float
	// lastLoss and lastVal are the last epoch's loss and val_accuracy; times the end
	// times (Unix seconds) of the last few epochs, oldest first.
	lastLoss, lastVal *num.Float
	times             []float64
	outPath, errPath  string
	outTail, errTail  string
}

// readProgram reads groups of four lines on stdin (stage dir, out log, err log, "1" when
// the tail is wanted) and prints, for each stage, its markers, a summary of its
// history.csv (rows; best val_accuracy: the largest finite one, else the last nan or inf
// cell, so a diverged run shows nan; cells that are no number, or overflow to inf, as
// 1e999 does, are skipped) and, when the stage failed, the tails of its logs. Sections start with a line "\x1e<kind> <dir>" (ASCII record separator): markers
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
function hist(d, path,    line, f, nf, i, c, cl, ct, h, rows, best, nonfinite, v, x, lastv, lastl, nt, times) {
	if ((getline line < path) <= 0) { close(path); return }
	nf = split(line, f, ",")
	c = 0; cl = 0; ct = 0
	for (i = 1; i <= nf; i++) {
		h = f[i]
		gsub(/^[ \t\r"]+|[ \t\r"]+$/, "", h)
		if (h == "val_accuracy") c = i
		if (h == "loss") cl = i
		if (h == "time") ct = i
	}
	rows = 0; best = ""; nonfinite = ""; lastv = "-"; lastl = "-"; nt = 0
	while ((getline line < path) > 0) {
		nf = split(line, f, ",")
		if (nf <= 1) continue
		rows++
		lastl = cell(f, cl)
		if (ct) {
			v = cell(f, ct)
			if (v ~ /^[0-9]+([.][0-9]*)?$/) times[nt++ % 6] = v
		}
		if (!c) continue
		v = f[c]
		gsub(/^[ \t\r]+|[ \t\r]+$/, "", v)
		lastv = cell(f, c)
		if (v ~ /^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$/ && ((x = v + 0) == 0 || x != x * 2)) {
			if (best == "" || x > best + 0) best = v
		} else if (tolower(v) ~ /^[-+]?(nan|inf|infinity)$/) nonfinite = v
	}
	close(path)
	if (best == "") best = nonfinite
	if (best == "") best = "-"
	# The last epoch's loss and val_accuracy, then the end times of the last (up to) six
	# epochs, oldest first.
	printf "\036history %s\n%d %s %s %s ", d, rows, best, lastl, lastv
	v = "-"
	for (i = (nt > 6 ? nt - 6 : 0); i < nt; i++) v = (v == "-" ? "" : v ",") times[i % 6]
	print v
}
# cell is field i of f without blanks ("-" when there is none), one word for the line
# hist prints.
function cell(f, i,    v) {
	if (!i) return "-"
	v = f[i]
	gsub(/[ \t\r"]+/, "", v)
	return v == "" ? "-" : v
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
			// rows best last-loss last-val_accuracy end-times ("-": none).
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
			if len(f) > 3 {
				if v, err := num.Parse(f[2]); err == nil {
					d.lastLoss = num.Ptr(v)
				}
				if v, err := num.Parse(f[3]); err == nil {
					d.lastVal = num.Ptr(v)
				}
			}
			if len(f) > 4 && f[4] != "-" {
				for _, c := range strings.Split(f[4], ",") {
					if t, err := strconv.ParseFloat(c, 64); err == nil {
						d.times = append(d.times, t)
					}
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

// epochSeconds is how long an epoch takes: the median gap between the end times of the
// last epochs (a requeue's wait is one gap of several, and the median leaves it out), or
// with one epoch done, the time since the job started. 0 when nothing tells.
func epochSeconds(times []float64, start time.Time) float64 {
	var gaps []float64
	for i := 1; i < len(times); i++ {
		if g := times[i] - times[i-1]; g > 0 {
			gaps = append(gaps, g)
		}
	}
	if len(gaps) == 0 {
		if len(times) > 0 && !start.IsZero() {
			if g := times[len(times)-1] - float64(start.Unix()); g > 0 {
				return g
			}
		}
		return 0
	}
	slices.Sort(gaps)
	m := gaps[len(gaps)/2]
	if len(gaps)%2 == 0 {
		m = (gaps[len(gaps)/2-1] + m) / 2
	}
	return m
}
