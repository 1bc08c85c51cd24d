package registry

import (
	"context"
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
	Status       string     `json:"status"`
	Error        string     `json:"error,omitempty"`
	SubmittedAt  time.Time  `json:"submitted_at"`
	HpctlVersion string     `json:"hpctl_version"`
	Stages       []RunStage `json:"stages"`
}

// RunStage is one stage's job within a run.
type RunStage struct {
	Name      string   `json:"name"`
	JobID     string   `json:"job_id"`
	JobName   string   `json:"job_name"`
	DependsOn []string `json:"depends_on,omitempty"`
	Epochs    int      `json:"epochs"`
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
