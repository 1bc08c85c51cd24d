// Package pipeline puts a spec's stages on a cluster and tells where they stand. It ties
// the seams together: Transport (where commands and files go), Executor (where jobs run),
// Registry (the local index of runs), render (the files of a run directory). The command
// layer (cmd/hpctl) only parses flags and prints.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/render"
	"github.com/hpctl/hpctl/transport"
	"github.com/hpctl/hpctl/weights"
)

// SubmitOptions tune Submit.
type SubmitOptions struct {
	// DryRun renders and checks everything but stages nothing, submits nothing and
	// records nothing.
	DryRun bool
	// NoRuntimeCheck turns the container runtime's refusals into warnings. Those checks run
	// where the jobs are submitted (the login node for Slurm), which may lack what the
	// compute nodes have (the runtime's module, the NVIDIA toolkit, a CDI spec). The data
	// checks still refuse.
	NoRuntimeCheck bool
	// Version is recorded with the run (hpctl's version).
	Version string
	// Now stamps the run id; time.Now when nil.
	Now func() time.Time
	// Weights tunes how the backbone's ImageNet weights are put into the cluster's cache
	// (a mirror, an HTTP client); only used when the spec asks for imagenet weights.
	Weights weights.Options
}

// Submission is the outcome of Submit.
type Submission struct {
	Run  registry.Run
	Plan *experiment.Plan
	// Files are the run directory's files (what a dry run shows).
	Files []transport.File
	// Order is the stage names in submission order.
	Order []string
	// Preflight is what the stages' resources were checked against (nil when the
	// executor cannot check them, or the check was skipped: see Warnings).
	Preflight *jobs.Preflight
	// Warnings are what a person should know although the submission went on.
	Warnings []string
}

// Submit resolves the validated spec l against the cluster, checks the data folders
// there, renders and stages the run directory atomically, submits the stages in order
// (each with afterok on its dependencies' job ids) and records the run in reg.
//
// If a submission fails after others succeeded, the jobs already queued are cancelled
// and the run is recorded as failed with the reason: no job is ever left running that
// the registry does not know about.
func Submit(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, l *experiment.Loaded, opts SubmitOptions) (*Submission, error) {
	if err := CheckExecutor(l, ex); err != nil {
		return nil, err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	submitted := now()
	prep, err := Prepare(ctx, t, l, PrepareOptions{Now: func() time.Time { return submitted }})
	if err != nil {
		return nil, wrapf("submit", err)
	}
	plan, files := prep.Plan, prep.Files
	initProblems, changed, err := resolveInits(ctx, t, reg, plan)
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	if changed {
		// RUN:STAGE became a checkpoint path in the resolved spec the trainer reads.
		if files, err = render.Render(plan); err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
	}
	spec := plan.Spec
	runtimeWarnings, err := checkCluster(ctx, t, plan, clusterCheckMode{dryRun: opts.DryRun, noRuntime: opts.NoRuntimeCheck}, initProblems...)
	if err != nil {
		return nil, err
	}
	// Before anything is staged or queued, and in a dry run too: a stage that asks for
	// more than the cluster has would otherwise wait forever or be refused by sbatch
	// after the stages before it were queued.
	pf, warnings, err := preflight(ctx, ex, plan)
	warnings = append(runtimeWarnings, warnings...)
	if err != nil {
		return &Submission{Plan: plan, Warnings: warnings}, err
	}
	sub := &Submission{Plan: plan, Files: files, Preflight: pf, Warnings: warnings}
	for _, st := range plan.Stages {
		sub.Order = append(sub.Order, st.Name)
	}
	run := registry.Run{
		ID: plan.RunID, SpecName: spec.Name, SpecFile: absPath(plan.SpecFile), SpecHash: plan.SpecHash,
		RunDir: plan.RunDir, Host: hostOf(t), Executor: ex.Name(), Status: registry.RunSubmitted,
		SubmittedAt: submitted.UTC(), HpctlVersion: opts.Version, Trials: len(plan.Trials), SweepKeys: plan.SweepKeys,
		Backbone: backbones(plan),
	}
	for _, tr := range plan.Trials {
		vals := make([]string, len(plan.SweepKeys))
		for _, v := range tr.Values {
			for i, k := range plan.SweepKeys {
				if k == v.Key {
					vals[i] = v.Value
				}
			}
		}
		run.TrialValues = append(run.TrialValues, vals)
	}
	for _, st := range plan.Stages {
		run.Stages = append(run.Stages, registry.RunStage{Name: st.Name, JobName: st.JobName, DependsOn: st.DependsOn,
			Epochs: st.Epochs})
	}
	sub.Run = run
	if opts.DryRun {
		return sub, nil
	}

	// Compute nodes usually have no internet: the weights must be in the shared cache
	// before a job needs them, verified, or the submission stops here with nothing queued.
	if weights.Needed(spec.Model.Weights) && runsTrainer(plan) {
		if _, err := weights.Ensure(ctx, t, spec.Model.WeightsCache, spec.Model.Backbone, opts.Weights); err != nil {
			return nil, fmt.Errorf("submit: the %s ImageNet weights are not in the cache %s and could not be put there (hpctl weights fetch retries; model.weights: none trains from scratch): %w",
				spec.Model.Backbone, spec.Model.WeightsCache, err)
		}
	}

	// The run is recorded before anything is staged or queued, and after each job, while
	// this process holds the run's submission lock: if hpctl dies at any point, the next
	// status or cancel finds the lock free and settles the run with the jobs really
	// queued for it (Reconcile), so none is left that hpctl does not know.
	parts, err := arrayParts(ctx, ex, len(plan.Trials))
	if err != nil {
		return sub, fmt.Errorf("submit: %w (nothing was staged or queued)", err)
	}
	release, err := reg.Hold(plan.RunID)
	if err != nil {
		return sub, fmt.Errorf("submit: %w (nothing was staged or queued)", err)
	}
	defer release()
	sub.Run.Status = registry.RunSubmitting
	sub.Run.QueueingAt = time.Now().UTC()
	if err := reg.Put(ctx, sub.Run); err != nil {
		return sub, fmt.Errorf("submit: record the run before staging it (nothing was staged or queued): %w", err)
	}
	if err := t.Stage(ctx, plan.RunDir, files); err != nil {
		return sub, abandon(ctx, ex, reg, &sub.Run, nil, fmt.Errorf("submit: stage the run directory: %w", err))
	}
	ids := map[string][]string{} // stage -> its job per part
	var queued []string
	// Part by part, each part's stages in order: a part may wait for the whole of the
	// previous one (AfterAny below).
	for c, part := range parts {
		for i, st := range plan.Stages {
			var deps []string
			for _, d := range st.DependsOn {
				deps = append(deps, ids[d][c])
			}
			req := jobs.SubmitRequest{
				RunID: plan.RunID, RunDir: plan.RunDir, Stage: st.Name,
				Script: path.Join(plan.RunDir, st.Paths.Script), JobName: st.JobName,
				DependsOn: deps, Resources: st.Resources,
			}
			if plan.Trials != nil {
				req.Array = &jobs.Array{Count: part.Count, Offset: part.First, MaxParallel: plan.MaxParallel}
				// Each array's throttle (%N) holds within it only: with max_parallel set,
				// a sweep split into several arrays runs them one after another, the
				// next one's first stages starting when the previous one has ended.
				if c > 0 && plan.MaxParallel > 0 && len(st.DependsOn) == 0 {
					for _, s := range plan.Stages {
						req.AfterAny = append(req.AfterAny, ids[s.Name][c-1])
					}
				}
			}
			id, err := ex.Submit(ctx, req)
			if err != nil {
				err = fmt.Errorf("submit stage %s: %w", st.Name, err)
				if errors.Is(err, errkind.ErrRefused) {
					return sub, refused(ctx, t, ex, reg, &sub.Run, queued, err)
				}
				return sub, abandon(ctx, ex, reg, &sub.Run, queued, err)
			}
			ids[st.Name] = append(ids[st.Name], id)
			queued = append(queued, id)
			rs := &sub.Run.Stages[i]
			if rs.JobID == "" {
				rs.JobID = id
			}
			if plan.Trials != nil {
				rs.Arrays = append(rs.Arrays, registry.ArrayJob{JobID: id, First: part.First, Count: part.Count})
			}
			if i < len(plan.Stages)-1 || c < len(parts)-1 {
				sub.Run.QueueingAt = time.Now().UTC()
				if err := reg.Put(ctx, sub.Run); err != nil {
					return sub, abandon(ctx, ex, reg, &sub.Run, queued, fmt.Errorf("submit: record job %s: %w", id, err))
				}
			}
		}
	}
	sub.Run.Status = registry.RunSubmitted
	if err := reg.Put(ctx, sub.Run); err != nil {
		// An unrecorded run is one hpctl could never show or cancel again: take it back.
		cctx := context.WithoutCancel(ctx)
		if cerr := ex.Cancel(cctx, queued); cerr != nil {
			return sub, fmt.Errorf("submit: record the run: %w; and cancelling its jobs %s failed: %v", err, strings.Join(queued, " "), cerr)
		}
		return sub, fmt.Errorf("submit: record the run (its jobs %s were cancelled): %w", strings.Join(queued, " "), err)
	}
	return sub, nil
}

// arrayParts splits a sweep of n trials into the array jobs each stage is submitted as:
// one, unless n is larger than the cluster allows in one array (MaxArraySize, asked
// once). A run of one trial (n == 0) is one plain job: one part, no array.
func arrayParts(ctx context.Context, ex jobs.Executor, n int) ([]registry.ArrayJob, error) {
	if n == 0 {
		return []registry.ArrayJob{{}}, nil
	}
	size := n
	if lim, ok := ex.(jobs.ArrayLimiter); ok {
		limit, err := lim.MaxArray(ctx)
		if err != nil {
			return nil, fmt.Errorf("read how large an array job the cluster accepts: %w", err)
		}
		size = min(n, limit)
	}
	var parts []registry.ArrayJob
	for first := 0; first < n; first += size {
		parts = append(parts, registry.ArrayJob{First: first, Count: min(size, n-first)})
	}
	return parts, nil
}

// abandon cancels the jobs already queued and records the run as failed. It runs even
// when ctx was cancelled (Ctrl-C during submission), so nothing is left behind.
func abandon(ctx context.Context, ex jobs.Executor, reg registry.Store, run *registry.Run, queued []string, cause error) error {
	cctx := context.WithoutCancel(ctx)
	run.Status = registry.RunFailed
	run.Error = cause.Error()
	var extra []string
	if len(queued) > 0 {
		if err := ex.Cancel(cctx, queued); err != nil {
			extra = append(extra, fmt.Sprintf("cancelling the jobs already queued (%s) failed too: %v", strings.Join(queued, " "), err))
		} else {
			run.Error += "; the jobs already queued (" + strings.Join(queued, " ") + ") were cancelled"
		}
	}
	if err := reg.Put(cctx, *run); err != nil {
		extra = append(extra, fmt.Sprintf("recording the failed run failed: %v", err))
	}
	if len(extra) > 0 {
		return fmt.Errorf("%w (%s)", cause, strings.Join(extra, "; "))
	}
	if len(queued) > 0 {
		return fmt.Errorf("%w; the jobs already queued (%s) were cancelled and run %s is recorded as failed", cause, strings.Join(queued, " "), run.ID)
	}
	return fmt.Errorf("%w; run %s is recorded as failed", cause, run.ID)
}

// refused undoes a submission the cluster refused outright (sbatch said no: a request
// pre-flight could not see, such as an unknown feature): the jobs already queued are
// cancelled, the run's record and its run directory removed, so that nothing is left
// queued and no run is recorded that never ran. When a queued job cannot be cancelled,
// the run stays recorded as failed (abandon), so that status and cancel still reach it.
func refused(ctx context.Context, t transport.Transport, ex jobs.Executor, reg registry.Store, run *registry.Run, queued []string, cause error) error {
	cctx := context.WithoutCancel(ctx)
	var done []string
	if len(queued) > 0 {
		if err := ex.Cancel(cctx, queued); err != nil {
			return abandon(ctx, ex, reg, run, queued, cause)
		}
		done = append(done, "the jobs already queued ("+strings.Join(queued, " ")+") were cancelled")
		// A cancelled job that had already started may still be writing its markers and
		// log into the run directory: removing it before the job has ended races them.
		if err := waitJobsEnded(cctx, ex, queued, cancelSettle); err != nil {
			done = append(done, fmt.Sprintf("waiting for them to end: %v", err))
		}
	}
	if err := reg.Delete(cctx, run.ID); err != nil {
		// Still recorded: say it as it is, failed, with the reason.
		run.Status, run.Error = registry.RunFailed, cause.Error()
		if perr := reg.Put(cctx, *run); perr != nil {
			done = append(done, fmt.Sprintf("run %s could not be removed from the registry (%v) nor recorded as failed (%v)", run.ID, err, perr))
		} else {
			done = append(done, fmt.Sprintf("run %s is recorded as failed (removing its record failed: %v)", run.ID, err))
		}
	} else {
		done = append(done, "no run was recorded")
	}
	if err := removeRunDir(cctx, t, run.RunDir, run.ID); err != nil {
		done = append(done, fmt.Sprintf("its run directory %s is left (%v)", run.RunDir, err))
	} else {
		done = append(done, "its run directory was removed (hpctl submit --dry-run shows the job scripts)")
	}
	return fmt.Errorf("%w\nnothing is left queued: %s", cause, strings.Join(done, "; "))
}

// removeRunDir removes a run directory this submission staged, on the cluster. Only a
// path that is absolute and named after the run is ever removed.
func removeRunDir(ctx context.Context, t transport.Transport, dir, runID string) error {
	if runID == "" || !path.IsAbs(dir) || path.Base(dir) != runID || path.Clean(dir) != dir {
		return fmt.Errorf("%q is not a run directory of run %q; not removed", dir, runID)
	}
	res, err := t.Run(ctx, []string{"rm", "-rf", "--", dir}, nil)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("rm: exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return nil
}

// absPath records where the spec was read from in a form that still means something from
// another directory; it falls back to the path as given.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// runsTrainer reports whether any stage runs the trainer (stages with their own command
// need no backbone weights).
func runsTrainer(p *experiment.Plan) bool {
	for _, st := range p.Stages {
		if st.Trainer {
			return true
		}
	}
	return false
}

// hostOf is the ssh destination of t, "" for the local transport.
func hostOf(t transport.Transport) string {
	name := t.Name()
	if h, ok := strings.CutPrefix(name, "ssh:"); ok {
		return h
	}
	return ""
}

// backbones is the run's backbone, or a sweep's distinct backbones in trial order.
func backbones(plan *experiment.Plan) string {
	if len(plan.Trials) == 0 {
		return plan.Spec.Model.Backbone
	}
	var names []string
	for _, tr := range plan.Trials {
		if !slices.Contains(names, tr.Spec.Model.Backbone) {
			names = append(names, tr.Spec.Model.Backbone)
		}
	}
	return strings.Join(names, ",")
}
