package registry

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Run is the registry's record of one submission: enough to find its jobs and its run
// directory again from any later hpctl process.
type Run struct {
	ID       string `json:"id"`
	SpecName string `json:"spec_name"`
	SpecFile string `json:"spec_file"`
	SpecHash string `json:"spec_hash"`
	RunDir   string `json:"run_dir"`
	// Host is the ssh destination the run was submitted through; empty for local.
	Host     string `json:"host,omitempty"`
	Executor string `json:"executor"`
	// Status is the submission's outcome: "submitted", or "failed" with Error saying why
	// (jobs already queued were cancelled); "submitting" while jobs are being queued (or
	// when hpctl died doing so). Job states come from the executor.
	Status      string    `json:"status"`
	Error       string    `json:"error,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"`
	// QueueingAt is when the submitter last recorded the run before asking the
	// scheduler for a job: an interrupted submission's last sbatch may still become a
	// job for a moment after that, which settling it waits out.
	QueueingAt   time.Time `json:"queueing_at,omitzero"`
	HpctlVersion string    `json:"hpctl_version"`
	// Backbone is the spec's model.backbone; for a sweep that sweeps it, the trials'
	// backbones in trial order without repeats, comma-separated. Empty in records written
	// before it was recorded (hpctl runs then reads it from fetched results).
	Backbone string     `json:"backbone,omitempty"`
	Stages   []RunStage `json:"stages"`
	// Trials is a sweep's number of trials (trials/0 .. trials/N-1 in the run
	// directory); 0 for a run of one trial.
	Trials int `json:"trials,omitempty"`
	// SweepKeys are the swept spec paths; TrialValues[k][i] is trial k's value of
	// SweepKeys[i] as written ("" where trial k does not set it).
	SweepKeys   []string   `json:"sweep_keys,omitempty"`
	TrialValues [][]string `json:"trial_values,omitempty"`
	// Attempt counts the run's submissions: 1 for the first (0 in records written before
	// retry existed, read as 1 by Attempts), one more with each `hpctl retry`.
	Attempt int `json:"attempt,omitempty"`
	// Retrying are the stages a retry in progress queues (Status "submitting"); empty
	// otherwise, and while a first submission is in progress (it queues every stage).
	Retrying []string `json:"retrying,omitempty"`
	// RetriedAt is when the latest retry was recorded (zero: never retried).
	RetriedAt time.Time `json:"retried_at,omitzero"`
}

// Attempts is the number of the run's latest submission: 1, or more after retries.
func (r Run) Attempts() int { return max(r.Attempt, 1) }

// Trial is the run as trial k of a sweep sees it: each stage's job is the trial's task,
// so what works on a run's stages works on the trial's. RunDir stays the run's (the
// trial's own directory, trials/<k>, is the layout's to name). ok is false when k is not
// a trial.
func (r Run) Trial(k int) (tr Run, ok bool) {
	if r.Trials == 0 || k < 0 || k >= r.Trials {
		return Run{}, false
	}
	tr = r
	tr.Stages = make([]RunStage, len(r.Stages))
	for i, s := range r.Stages {
		s.JobID, s.Arrays = s.TaskOf(k), nil
		tr.Stages[i] = s
	}
	tr.Trials, tr.SweepKeys, tr.TrialValues = 0, nil, nil
	return tr, true
}

// TrialLabel is trial k's values, "seed=1, stages.finetune.unfreeze=30".
func (r Run) TrialLabel(k int) string {
	if k < 0 || k >= len(r.TrialValues) {
		return ""
	}
	var parts []string
	for i, v := range r.TrialValues[k] {
		if i < len(r.SweepKeys) && v != "" {
			parts = append(parts, r.SweepKeys[i]+"="+v)
		}
	}
	return strings.Join(parts, ", ")
}

// RunStage is one stage's job within a run.
type RunStage struct {
	Name      string   `json:"name"`
	JobID     string   `json:"job_id"`
	JobName   string   `json:"job_name"`
	DependsOn []string `json:"depends_on,omitempty"`
	Epochs    int      `json:"epochs"`
	// Arrays are a sweep stage's array jobs, in trial order (one, unless the sweep is
	// larger than the cluster's MaxArraySize); JobID is then the first of them.
	Arrays []ArrayJob `json:"arrays,omitempty"`
	// Attempt is the stage's attempt whose job JobID is: 1 for the first (0 in records
	// written before retry existed, read as 1 by Attempts), one more each time a retry
	// resubmits the stage.
	Attempt int `json:"attempt,omitempty"`
	// Past are the stage's earlier attempts, oldest first: their jobs, how they ended and
	// where a retry moved their files.
	Past []PastAttempt `json:"past_attempts,omitempty"`
}

// Attempts is the number of the stage's current attempt: 1, or more after retries.
func (s RunStage) Attempts() int { return max(s.Attempt, 1) }

// PastAttempt is one earlier attempt of a stage, replaced by a retry.
type PastAttempt struct {
	Attempt int    `json:"attempt"`
	JobID   string `json:"job_id,omitempty"`
	// State is how the attempt ended, as status saw it when the retry was recorded.
	State string `json:"state,omitempty"`
	// Dir is where its files went, relative to the run directory
	// (experiment.AttemptDir): attempts/<attempt>/stages/<stage>.
	Dir string `json:"dir,omitempty"`
}

// ArrayJob is one array job of a sweep's stage: its tasks 0..Count-1 run trials
// First..First+Count-1.
type ArrayJob struct {
	JobID string `json:"job_id"`
	First int    `json:"first"`
	Count int    `json:"count"`
}

// JobIDs are the stage's jobs: its one job, or its array jobs.
func (s RunStage) JobIDs() []string {
	if len(s.Arrays) == 0 {
		if s.JobID == "" {
			return nil
		}
		return []string{s.JobID}
	}
	ids := make([]string, 0, len(s.Arrays))
	for _, a := range s.Arrays {
		ids = append(ids, a.JobID)
	}
	return ids
}

// TaskOf is the job id of trial k's task in this stage ("" when it was not queued).
func (s RunStage) TaskOf(k int) string {
	for _, a := range s.Arrays {
		if k >= a.First && k < a.First+a.Count && a.JobID != "" {
			return a.JobID + "_" + strconv.Itoa(k-a.First)
		}
	}
	return ""
}

// Run submission outcomes.
const (
	// RunSubmitting is recorded before the first job is queued and updated with each job
	// id, so a crash mid-submission leaves a record that `hpctl cancel` can act on.
	RunSubmitting = "submitting"
	RunSubmitted  = "submitted"
	RunFailed     = "failed"
)

// Store indexes runs on the machine hpctl runs on. It must be safe for concurrent hpctl
// processes and survive crashes without torn records. Get and Latest wrap
// errkind.ErrNotFound when there is no such run.
type Store interface {
	Put(ctx context.Context, r Run) error
	// Delete removes a run's record (none there is not an error).
	Delete(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (Run, error)
	// List returns runs newest first.
	List(ctx context.Context) ([]Run, error)
	Latest(ctx context.Context) (Run, error)
	// Hold takes a run's submission lock for as long as its submitter lives (see
	// Registry.Hold); Held reports whether a live process holds it.
	Hold(id string) (release func(), err error)
	Held(id string) (bool, error)
	Close() error
}
