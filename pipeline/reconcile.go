package pipeline

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/transport"
)

// settleGrace is how long after an interrupted submission's last sbatch began its
// outcome is settled: the controller answers an sbatch within milliseconds, and a busy
// one within a second or two.
var settleGrace = 3 * time.Second

// Reconcile settles the runs left "submitting" by a submitter that is gone (killed, its
// machine rebooted): their submission lock is free (registry.Store.Held). The jobs it
// queued are found by their run directory (jobs.Finder), also those whose ids it never
// recorded. A run whose every stage was queued is then recorded as submitted; otherwise
// its jobs are cancelled and it is recorded as failed, as a submission that failed half
// way is. Half-staged run directories are removed. Runs that need nothing are returned
// as they were; the result keeps the order of runs.
func Reconcile(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, runs []registry.Run) ([]registry.Run, error) {
	return reconcile(ctx, t, ex, reg, runs, false)
}

// reconcile is Reconcile; locked says this process holds the runs' submission locks
// itself (a retry, which took the lock its killed predecessor left free): then every run
// still "submitting" is stale, though Held would say it is held.
func reconcile(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, runs []registry.Run, locked bool) ([]registry.Run, error) {
	out := append([]registry.Run(nil), runs...)
	var stale []int
	for i, r := range out {
		if r.Status != registry.RunSubmitting {
			continue
		}
		held := false
		if !locked {
			var err error
			if held, err = reg.Held(r.ID); err != nil {
				return out, err
			}
		}
		if !held {
			stale = append(stale, i)
		}
	}
	if len(stale) == 0 {
		return out, nil
	}
	// A submitter killed while sbatch was talking to the controller leaves a request the
	// controller may still turn into a job a moment later: wait that out, so the jobs
	// are all there to find.
	var last time.Time
	for _, i := range stale {
		if q := out[i].QueueingAt; q.After(last) {
			last = q
		}
	}
	if wait := time.Until(last.Add(settleGrace)); wait > 0 {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(wait):
		}
	}
	var found []jobs.Found
	if f, ok := ex.(jobs.Finder); ok {
		dirs := make([]string, len(stale))
		for k, i := range stale {
			dirs[k] = out[i].RunDir
		}
		var err error
		if found, err = f.Find(ctx, dirs); err != nil {
			return out, fmt.Errorf("find the jobs of interrupted submissions: %w", err)
		}
	}
	for _, i := range stale {
		r, err := settle(ctx, t, ex, reg, out[i], found)
		if err != nil {
			return out, err
		}
		out[i] = r
	}
	return out, nil
}

// settle records the outcome of one interrupted submission.
func settle(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, r registry.Run, found []jobs.Found) (registry.Run, error) {
	if r.Trials > 0 {
		return settleSweep(ctx, t, ex, reg, r, found)
	}
	// Jobs of earlier attempts (a retry's run directory holds them too) are known: they
	// are not this submission's.
	known := map[string]bool{}
	for _, s := range r.Stages {
		if s.JobID != "" {
			known[s.JobID] = true
		}
		for _, p := range s.Past {
			if p.JobID != "" {
				known[p.JobID] = true
			}
		}
	}
	var extra, missing []string
	for _, f := range found {
		if f.RunDir != r.RunDir || known[f.ID] {
			continue
		}
		taken := false
		for k := range r.Stages {
			if s := &r.Stages[k]; s.JobID == "" && s.JobName == f.Name && retrying(r, *s) {
				s.JobID, known[f.ID], taken = f.ID, true, true
				break
			}
		}
		if !taken {
			// A second job for a stage (an sbatch retried after a timeout): never wanted.
			extra = append(extra, f.ID)
		}
	}
	// Only the stages this submission was queueing count: a retry leaves the completed
	// stages' jobs alone, whatever its outcome.
	var ids []string
	for _, s := range r.Stages {
		switch {
		case !retrying(r, s):
		case s.JobID == "":
			missing = append(missing, s.Name)
		default:
			ids = append(ids, s.JobID)
		}
	}
	cctx := context.WithoutCancel(ctx)
	if len(extra) > 0 {
		if err := ex.Cancel(cctx, extra); err != nil {
			return r, fmt.Errorf("run %s: cancel the duplicate jobs %s: %w", r.ID, strings.Join(extra, " "), err)
		}
	}
	why := ""
	if len(missing) > 0 {
		why = fmt.Sprintf("the submitting hpctl stopped before stage %s was queued", strings.Join(missing, ", "))
		if len(r.Retrying) > 0 {
			why = fmt.Sprintf("retry (attempt %d) stopped before stage %s was queued", r.Attempts(), strings.Join(missing, ", "))
		}
	}
	r.Retrying = nil
	return record(cctx, t, ex, reg, r, why, ids)
}

// record writes the outcome of an interrupted submission: submitted when why is empty,
// else failed for why, with ids (the jobs it had queued) cancelled and half-staged
// directories removed first.
func record(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, r registry.Run, why string, ids []string) (registry.Run, error) {
	if why == "" {
		r.Status, r.Error = registry.RunSubmitted, ""
	} else {
		r.Status, r.Error = registry.RunFailed, why
		if len(ids) > 0 {
			if err := ex.Cancel(ctx, ids); err != nil {
				return r, fmt.Errorf("run %s: cancel the jobs of an interrupted submission (%s): %w", r.ID, strings.Join(ids, " "), err)
			}
			r.Error += "; the jobs it had queued (" + strings.Join(ids, " ") + ") were cancelled"
		}
		if err := removeStaging(ctx, t, r.RunDir); err != nil {
			return r, fmt.Errorf("run %s: %w", r.ID, err)
		}
	}
	if err := reg.Put(ctx, r); err != nil {
		return r, fmt.Errorf("run %s: record the outcome of its interrupted submission: %w", r.ID, err)
	}
	return r, nil
}

// removeStagingScript removes the temporary directories a transport's Stage leaves when
// killed (".<run-id>.staging-*" beside the run directory). Paths arrive as arguments.
const removeStagingScript = `for d in "$1"/."$2".staging-*; do
	if [ -d "$d" ] && [ ! -L "$d" ]; then rm -rf -- "$d"; fi
done`

func removeStaging(ctx context.Context, t transport.Transport, runDir string) error {
	parent, base := path.Split(path.Clean(runDir))
	if base == "" || base == "." || base == ".." || parent == "" {
		return nil
	}
	res, err := t.Run(ctx, []string{"sh", "-c", removeStagingScript, "sh", path.Clean(parent), base}, nil)
	if err != nil {
		return fmt.Errorf("remove the half-staged run directory: %w", err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("remove the half-staged run directory: exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// settleSweep settles an interrupted sweep: complete when every stage's arrays cover
// every trial; otherwise every array job found or recorded for it is cancelled and the
// run recorded as failed (a stage's arrays depend on the previous stage's, part by
// part, so a part queued for some stages only cannot be finished later).
func settleSweep(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, r registry.Run, found []jobs.Found) (registry.Run, error) {
	complete := true
	ids := map[string]bool{}
	var all []string
	add := func(id string) {
		if id != "" && !ids[id] {
			ids[id] = true
			all = append(all, id)
		}
	}
	for _, s := range r.Stages {
		covered := 0
		for _, a := range s.Arrays {
			covered += a.Count
			add(a.JobID)
		}
		complete = complete && covered == r.Trials
	}
	var extra []string
	for _, f := range found {
		if f.RunDir == r.RunDir && !ids[f.ID] {
			extra = append(extra, f.ID)
			add(f.ID)
		}
	}
	why := ""
	if !complete || len(extra) > 0 {
		why = "the submitting hpctl stopped before every stage of the sweep was queued"
	}
	return record(context.WithoutCancel(ctx), t, ex, reg, r, why, all)
}
