// Package jobs is where scripts run: the Executor seam, job states, and (in its
// subpackages) the Slurm and local executors and their shared contract suite.
package jobs

import (
	"context"
	"time"
)

// Job states as Slurm names them; the local executor uses the same words so status reads
// one vocabulary.
const (
	StatePending     = "PENDING"
	StateRunning     = "RUNNING"
	StateCompleted   = "COMPLETED"
	StateFailed      = "FAILED"
	StateCancelled   = "CANCELLED"
	StateTimeout     = "TIMEOUT"
	StatePreempted   = "PREEMPTED"
	StateNodeFail    = "NODE_FAIL"
	StateOutOfMemory = "OUT_OF_MEMORY"
	StateRequeued    = "REQUEUED"
	StateUnknown     = "UNKNOWN"
)

// JobState is what an executor knows of one job.
type JobState struct {
	ID       string        `json:"id"`
	State    string        `json:"state"`
	Reason   string        `json:"reason,omitempty"`
	Node     string        `json:"node,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns,omitempty"`
	ExitCode string        `json:"exit_code,omitempty"`
	Start    time.Time     `json:"start,omitempty"`
	End      time.Time     `json:"end,omitempty"`
}

// Terminal reports whether a job in this state will not run again.
func Terminal(state string) bool {
	switch state {
	case StateCompleted, StateFailed, StateCancelled, StateTimeout, StateNodeFail, StateOutOfMemory:
		return true
	}
	return false
}

// SubmitRequest is one stage's job.
type SubmitRequest struct {
	RunID  string
	RunDir string
	Stage  string
	// Script is the staged job script's absolute path on the cluster.
	Script  string
	JobName string
	// DependsOn are job IDs that must complete successfully first (afterok).
	DependsOn []string
	GPUs      int
}

// Executor is where scripts run: Slurm, or the local machine. Every implementation must
// pass the contract suite in jobs/executortest.
type Executor interface {
	// Name is "slurm" or "local".
	Name() string
	// Submit queues one job and returns its ID.
	Submit(ctx context.Context, req SubmitRequest) (string, error)
	// Query resolves many jobs in one call each to the underlying tools (never one call
	// per job). Jobs it cannot find are absent from the map.
	Query(ctx context.Context, ids []string) (map[string]JobState, error)
	// Cancel stops the jobs (pending or running).
	Cancel(ctx context.Context, ids []string) error
}
