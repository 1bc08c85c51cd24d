// Package jobs is where scripts run: the Executor seam, job states, and (in its
// subpackages) the Slurm and local executors and their shared contract suite.
package jobs

import (
	"context"
	"strconv"
	"time"
)

// State is a job's or a stage's state, in the words Slurm uses; the local executor and
// every hpctl command (status, logs, fetch-results) use the same words, so a state is
// compared through its methods rather than as a string in several packages.
type State string

// The states. Slurm's many others are mapped onto these (jobs/slurm normState).
const (
	StatePending     State = "PENDING"
	StateRunning     State = "RUNNING"
	StateCompleted   State = "COMPLETED"
	StateFailed      State = "FAILED"
	StateCancelled   State = "CANCELLED"
	StateTimeout     State = "TIMEOUT"
	StatePreempted   State = "PREEMPTED"
	StateNodeFail    State = "NODE_FAIL"
	StateOutOfMemory State = "OUT_OF_MEMORY"
	// StateRequeued is what a job script's finished marker says when the job asked to be
	// requeued (exit 99); Slurm itself shows such a job PENDING.
	StateRequeued State = "REQUEUED"
	StateUnknown  State = "UNKNOWN"
)

// Terminal reports whether a job in this state will not run again. PREEMPTED is not: a
// preempted job may be requeued.
func (s State) Terminal() bool {
	switch s {
	case StateCompleted, StateFailed, StateCancelled, StateTimeout, StateNodeFail, StateOutOfMemory:
		return true
	}
	return false
}

// Failed reports whether the job ended (or was stopped) without success; a cancelled
// job is not failed, it was stopped on purpose or because a dependency failed.
func (s State) Failed() bool {
	switch s {
	case StateFailed, StateTimeout, StateNodeFail, StateOutOfMemory, StatePreempted:
		return true
	}
	return false
}

// Running reports whether the job runs now.
func (s State) Running() bool { return s == StateRunning }

// Waiting reports whether the job waits to start (again): pending, or requeued.
func (s State) Waiting() bool { return s == StatePending || s == StateRequeued }

// JobState is what an executor knows of one job.
type JobState struct {
	ID       string        `json:"id"`
	State    State         `json:"state"`
	Reason   string        `json:"reason,omitempty"`
	Node     string        `json:"node,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns,omitempty"`
	ExitCode string        `json:"exit_code,omitempty"`
	Start    time.Time     `json:"start,omitempty"`
	End      time.Time     `json:"end,omitempty"`
}

// Executor names, as the spec's executor key and --executor take them. Auto is not an
// executor: it picks Slurm when sbatch answers, else local.
const (
	ExecutorAuto  = "auto"
	ExecutorSlurm = "slurm"
	ExecutorLocal = "local"
)

// ExecutorNames lists the values of the spec's executor key.
var ExecutorNames = []string{ExecutorAuto, ExecutorSlurm, ExecutorLocal}

// Resources are a job's effective scheduler settings: the spec's, overridden by the
// stage's. The Slurm executor finds them as #SBATCH lines in the script; an executor that
// does not read the script (the local one) takes them from the SubmitRequest.
type Resources struct {
	Partition    string
	Account      string
	QOS          string
	Time         string
	GPUs         int
	CPUsPerTask  int
	Mem          string
	Nodes        int
	SignalBefore int
	Requeue      bool
	Extra        []string
}

// SubmitRequest is one stage's job.
type SubmitRequest struct {
	RunID  string
	RunDir string
	Stage  string
	// Script is the staged job script's absolute path on the cluster.
	Script  string
	JobName string
	// DependsOn are job IDs that must complete successfully first (afterok). For an
	// array job they are array jobs, and each task waits only for the task of the same
	// index in each of them (Slurm's aftercorr): trial k's next stage starts when trial
	// k's previous one succeeded, whatever the other trials do.
	DependsOn []string
	// AfterAny are job IDs (whole array jobs) that must have ended, in any state, before
	// this job starts (Slurm's afterany). A sweep split into several arrays uses it to
	// run them one after another, so that max_parallel holds across the sweep.
	AfterAny  []string
	Resources Resources
	// Array, when set, makes this one array job over a sweep's trials.
	Array *Array
}

// Array is an array job: Count tasks, indices 0..Count-1, task i running trial
// Offset+i (the job script reads HPCTL_TRIAL_OFFSET), at most MaxParallel at once (0: no
// limit). A task's id is <array job id>_<index>.
type Array struct {
	Count       int
	Offset      int
	MaxParallel int
}

// TaskID is the id of task index of array job id.
func TaskID(id string, index int) string { return id + "_" + strconv.Itoa(index) }

// ArrayLimiter is an Executor with a limit on array jobs (Slurm's MaxArraySize): a larger
// sweep is submitted as several arrays per stage, each of at most MaxArray tasks.
type ArrayLimiter interface {
	MaxArray(ctx context.Context) (int, error)
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

// Found is a job an executor found by the run directory it runs in.
type Found struct {
	JobState
	// Name is the job's name (the stage's JobName).
	Name string
	// RunDir is the run directory the job was submitted for.
	RunDir string
}

// Finder is an Executor that can find a run's jobs without knowing their ids, by the run
// directory they run in. A run whose submitting hpctl died between queueing a job and
// recording its id is settled with it: no job is left that hpctl cannot show or cancel.
type Finder interface {
	// Find returns the live and recently ended jobs of the given run directories.
	Find(ctx context.Context, runDirs []string) ([]Found, error)
}

// Refusal is one thing a request asks for that the cluster can never give, found before
// anything is queued.
type Refusal struct {
	// Index is the request's index in what Check was given.
	Index int
	// Field is the spec key under slurm: the request fails on: partition, account, qos,
	// time, gpus, cpus_per_task, mem or nodes.
	Field string
	// Asked is what the request asks for ("8 CPUs per task"); Why is why the cluster
	// cannot give it ("the largest node in partition debug has 4").
	Asked, Why string
}

// Preflight is a Checker's answer.
type Preflight struct {
	Refusals []Refusal
	// Notes are what a person should know although nothing was refused (every node that
	// fits is down: the job will wait).
	Notes []string
	// Checked says what the requests were checked against, for a dry run.
	Checked []string
}

// Checker is an Executor that can check requests against the cluster before anything is
// queued: a job that asks more than any node has otherwise waits forever (Slurm's
// PartitionConfig) or is refused by sbatch after earlier stages were queued.
type Checker interface {
	// Check checks every request with as few calls as it can (Slurm: one sinfo, and one
	// sacctmgr only when an account or QOS is asked for). An error means the cluster could
	// not be asked; the caller goes on without the check.
	Check(ctx context.Context, rs []Resources) (Preflight, error)
}
