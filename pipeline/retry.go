package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/transport"
)

// RetryOptions tune Retry.
type RetryOptions struct {
	// Stage, when set, retries this stage (whatever its state, unless still queued or
	// running) and its dependents instead of the failed ones.
	Stage string
}

// Retried is the outcome of Retry.
type Retried struct {
	Run registry.Run
	// Stages are the stages resubmitted, in submission order; Kept the completed ones
	// whose outputs the retried stages reuse.
	Stages []string
	Kept   []string
}

// ErrNothingToRetry says a run has no stage a retry would resubmit.
var ErrNothingToRetry = errors.New("nothing to retry")

// Retry resubmits, in run's own run directory, the stages of run that failed, were
// cancelled or timed out (or opts.Stage), and every stage that depends on them. Completed
// stages are neither rerun nor touched: a retried stage with init_from starts from their
// existing best checkpoints. Each retried stage's directory is first moved aside to
// attempts/<n>/stages/<stage> (docs/run-directory.md), so the stage starts clean.
//
// It refuses, before anything changes, a sweep, a run with a stage still queued or
// running, and a run with nothing to retry (ErrNothingToRetry). A retry holds the run's
// submission lock and records the run "submitting" (with the stages it queues in
// Run.Retrying) before it moves or queues anything: a retry killed at any point is
// settled by Reconcile as a submission is, its jobs cancelled, and a later retry picks
// up where it stopped.
func Retry(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, runID string, opts RetryOptions) (*Retried, error) {
	release, err := reg.Hold(runID)
	if err != nil {
		return nil, fmt.Errorf("retry: %w (nothing was changed)", err)
	}
	defer release()
	// Read the record under the lock: another retry may have just finished.
	run, err := reg.Get(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	if run.Trials > 0 {
		return nil, fmt.Errorf("retry: run %s is a sweep of %d trials; retrying a sweep's trials is not supported yet (hpctl submit runs the spec again): %w",
			run.ID, run.Trials, errkind.ErrUsage)
	}
	if run.Status == registry.RunSubmitting {
		// Its submitter is gone (this process got the lock): settle it first.
		retrying := run.Retrying
		settled, err := reconcile(ctx, t, ex, reg, []registry.Run{run}, true)
		if err != nil {
			return nil, fmt.Errorf("retry: %w", err)
		}
		run = settled[0]
		if run.Status == registry.RunFailed {
			// Its jobs were cancelled: wait until the scheduler says so, or they would
			// look still running to the check below.
			var ids []string
			for _, s := range run.Stages {
				if s.JobID != "" && (len(retrying) == 0 || slices.Contains(retrying, s.Name)) {
					ids = append(ids, s.JobID)
				}
			}
			if err := waitJobsEnded(ctx, ex, ids, cancelSettle); err != nil {
				return nil, fmt.Errorf("retry: %w", err)
			}
		}
	}
	// A run some attempt of which had a job has a staged run directory to retry in
	// (an earlier retry killed before queueing leaves every current job empty).
	queued := false
	for _, s := range run.Stages {
		queued = queued || s.JobID != "" || len(s.Past) > 0
	}
	if !queued {
		return nil, fmt.Errorf("retry: run %s never had a job queued (%s); submit its spec again: %w", run.ID, run.Error, errkind.ErrUsage)
	}
	sts, err := Status(ctx, t, ex, []registry.Run{run}, StatusOptions{})
	if err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	set, err := retrySet(run, sts[0].Stages, opts.Stage)
	if err != nil {
		return nil, err
	}
	res := &Retried{}
	for _, s := range run.Stages {
		if set[s.Name] {
			res.Stages = append(res.Stages, s.Name)
		} else {
			res.Kept = append(res.Kept, s.Name)
		}
	}

	// Record first: the stages about to be queued, each one's earlier attempt (its job,
	// how it ended, where its files go). From here on, a killed retry is Reconcile's.
	state := map[string]jobs.State{}
	for _, ss := range sts[0].Stages {
		state[ss.Name] = ss.State
	}
	var moves []string // pairs: a stage's directory, where its earlier attempt goes
	for i := range run.Stages {
		s := &run.Stages[i]
		if !set[s.Name] {
			continue
		}
		if s.JobID != "" {
			// Its current attempt had a job: that attempt is now past. (A stage whose
			// attempt never got a job, because an earlier retry stopped before queueing
			// it, keeps its number; its earlier attempt was recorded then.)
			s.Past = append(s.Past, registry.PastAttempt{Attempt: s.Attempts(), JobID: s.JobID,
				State: string(state[s.Name]), Dir: experiment.AttemptDir(s.Attempts(), s.Name)})
			s.Attempt = s.Attempts() + 1
		}
		s.JobID = ""
		if n := len(s.Past); n > 0 {
			moves = append(moves, experiment.PathsOf(s.Name).Dir, s.Past[n-1].Dir)
		}
	}
	run.Attempt = run.Attempts() + 1
	run.Status, run.Error, run.Retrying = registry.RunSubmitting, "", res.Stages
	run.RetriedAt = time.Now().UTC()
	run.QueueingAt = run.RetriedAt
	if err := reg.Put(ctx, run); err != nil {
		return nil, fmt.Errorf("retry: record the retry (nothing was moved or queued): %w", err)
	}
	gpus, err := moveAttempts(ctx, t, run.RunDir, moves)
	if err != nil {
		return nil, abandonRetry(ctx, ex, reg, &run, nil, err)
	}

	ids := map[string]string{}
	var queuedIDs []string
	for i := range run.Stages {
		s := &run.Stages[i]
		if !set[s.Name] {
			continue
		}
		var deps []string
		for _, d := range s.DependsOn {
			// Completed stages are not waited for: their jobs may be long forgotten by
			// the scheduler, and afterok on an unknown job is refused.
			if id, ok := ids[d]; ok {
				deps = append(deps, id)
			}
		}
		req := jobs.SubmitRequest{
			RunID: run.ID, RunDir: run.RunDir, Stage: s.Name, Script: experiment.ScriptPath(run.RunDir, s.Name),
			JobName: s.JobName, DependsOn: deps, Resources: jobs.Resources{GPUs: gpus[s.Name]},
		}
		run.QueueingAt = time.Now().UTC()
		if err := reg.Put(ctx, run); err != nil {
			return nil, abandonRetry(ctx, ex, reg, &run, queuedIDs, fmt.Errorf("retry: record the run before queueing stage %s: %w", s.Name, err))
		}
		id, err := ex.Submit(ctx, req)
		if err != nil {
			return nil, abandonRetry(ctx, ex, reg, &run, queuedIDs, fmt.Errorf("retry: submit stage %s: %w", s.Name, err))
		}
		ids[s.Name], s.JobID = id, id
		queuedIDs = append(queuedIDs, id)
	}
	run.Status, run.Retrying = registry.RunSubmitted, nil
	if err := reg.Put(ctx, run); err != nil {
		return nil, abandonRetry(ctx, ex, reg, &run, queuedIDs, fmt.Errorf("retry: record the run: %w", err))
	}
	res.Run = run
	return res, nil
}

// cancelSettle bounds the wait for cancelled jobs to show as ended: scancel only
// signals them, and the controller records their end a moment later.
var cancelSettle = 30 * time.Second

// waitJobsEnded polls ex until none of ids is pending or running (a job the executor no
// longer knows has ended), for at most limit.
func waitJobsEnded(ctx context.Context, ex jobs.Executor, ids []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for len(ids) > 0 {
		states, err := ex.Query(ctx, ids)
		if err != nil {
			return err
		}
		var live []string
		for _, id := range ids {
			if st, ok := states[id]; ok && !st.State.Terminal() {
				live = append(live, id)
			}
		}
		if len(live) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cancelled jobs %s have not ended after %s", strings.Join(live, " "), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return nil
}

// retrySet picks the stages to resubmit: the named one, or every failed, cancelled,
// timed-out or never queued stage; then every stage depending on one of them.
func retrySet(run registry.Run, sts []StageStatus, stage string) (map[string]bool, error) {
	byName := map[string]StageStatus{}
	for _, ss := range sts {
		byName[ss.Name] = ss
	}
	for _, ss := range sts {
		// A stage still queued or running would race its own retry (or, pending behind
		// a retried stage's old job, never start): wait for it, or cancel it first.
		if !ss.State.Terminal() && ss.State != jobs.StateUnknown {
			what := string(ss.State)
			if ss.JobID != "" {
				what += " (job " + ss.JobID + ")"
			}
			return nil, fmt.Errorf("retry: run %s: stage %s is still %s; wait for it to end, or hpctl cancel %s first: %w",
				run.ID, ss.Name, what, run.ID, errkind.ErrUsage)
		}
	}
	set := map[string]bool{}
	if stage != "" {
		ss, ok := byName[stage]
		if !ok {
			var names []string
			for _, s := range run.Stages {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("retry: run %s has no stage %q (stages: %s): %w", run.ID, stage, strings.Join(names, ", "), errkind.ErrUsage)
		}
		set[ss.Name] = true
	} else {
		for _, ss := range sts {
			if ss.State != jobs.StateCompleted {
				set[ss.Name] = true
			}
		}
	}
	// Dependents: run.Stages is in plan order, every stage after its dependencies.
	for _, s := range run.Stages {
		for _, d := range s.DependsOn {
			if set[d] {
				set[s.Name] = true
			}
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("retry: run %s: every stage completed; %w (--stage S reruns one and its dependents): %w", run.ID, ErrNothingToRetry, errkind.ErrUsage)
	}
	// A retried stage must find what it starts from: each dependency it keeps completed.
	for _, s := range run.Stages {
		if !set[s.Name] {
			continue
		}
		for _, d := range s.DependsOn {
			if !set[d] && byName[d].State != jobs.StateCompleted {
				return nil, fmt.Errorf("retry: run %s: stage %s depends on %s, which is %s; retry %s too (hpctl retry %s): %w",
					run.ID, s.Name, d, byName[d].State, d, run.ID, errkind.ErrUsage)
			}
		}
	}
	return set, nil
}

// moveAttemptsScript moves each retried stage's directory aside (arguments after the run
// directory, the script's file name and the resolved spec's: pairs of a stage directory
// and its attempt directory) and gives the stage a clean directory holding only its job
// script. Idempotent: a pair whose attempt directory exists was moved by a retry that
// stopped later, and is only completed. It ends by printing the resolved spec. Paths
// arrive as arguments, never inside the script text.
const moveAttemptsScript = `set -e
cd -- "$1"
script=$2 resolved=$3
shift 3
while [ $# -ge 2 ]; do
	src=$1 dst=$2
	shift 2
	if [ ! -e "$dst" ] && [ -d "$src" ]; then
		mkdir -p -- "$(dirname -- "$dst")"
		mv -- "$src" "$dst"
	fi
	mkdir -p -- "$src"
	if [ ! -f "$src/$script" ]; then
		if [ ! -f "$dst/$script" ]; then
			echo "no job script $src/$script or $dst/$script" >&2
			exit 3
		fi
		cp -p -- "$dst/$script" "$src/$script"
	fi
done
cat -- "$resolved"`

// moveAttempts runs moveAttemptsScript in runDir and returns each stage's GPU count
// from the run's resolved spec (the local executor schedules by it; Slurm reads the job
// script's own #SBATCH lines).
func moveAttempts(ctx context.Context, t transport.Transport, runDir string, moves []string) (map[string]int, error) {
	argv := append([]string{"sh", "-c", moveAttemptsScript, "sh", runDir, experiment.ScriptFile, experiment.ResolvedSpecFile}, moves...)
	res, err := t.Run(ctx, argv, nil)
	if err != nil {
		return nil, fmt.Errorf("retry: move the retried stages' earlier attempts aside in %s: %w", runDir, err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("retry: move the retried stages' earlier attempts aside in %s: exit %d: %s", runDir, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	var spec struct {
		Stages []struct {
			Name string `json:"name"`
			GPUs int    `json:"gpus"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(res.Stdout, &spec); err != nil {
		return nil, fmt.Errorf("retry: read %s: %w", path.Join(runDir, experiment.ResolvedSpecFile), err)
	}
	gpus := map[string]int{}
	for _, s := range spec.Stages {
		gpus[s.Name] = s.GPUs
	}
	return gpus, nil
}

// abandonRetry cancels the jobs a failed retry queued and records the run as failed
// with why; the stages it did not queue keep no job, so the next retry queues them. It
// runs even when ctx was cancelled (Ctrl-C), so nothing is left behind.
func abandonRetry(ctx context.Context, ex jobs.Executor, reg registry.Store, run *registry.Run, queued []string, cause error) error {
	run.Retrying = nil
	return abandon(ctx, ex, reg, run, queued, cause)
}

// retrying reports whether stage s is one an interrupted submission was queueing: every
// stage for a first submission, the stages in Retrying for a retry.
func retrying(r registry.Run, s registry.RunStage) bool {
	return len(r.Retrying) == 0 || slices.Contains(r.Retrying, s.Name)
}
