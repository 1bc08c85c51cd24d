// Package stagestate is the one interpreter of where a stage stands. What the executor
// says of the stage's job (if it was asked, and if it still knows the job), the markers
// the job script wrote (stages/<stage>/.hpctl/started and finished) and the epochs in
// history.csv go in; the stage's state, reason, exit code, times and epochs come out.
// `hpctl status`, `hpctl logs` and fetch-results all read a stage through Of, so they
// say the same word for the same stage.
package stagestate

import (
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/jobs"
)

// Reasons the interpreter gives, beside the executor's own.
const (
	// ReasonDependencyFailed: the stage never ran because a stage it depends on failed or
	// was cancelled (Slurm's --kill-on-invalid-dep, the local executor, or hpctl status
	// cancelled it; or it was never started when the files were fetched).
	ReasonDependencyFailed = "dependency failed"
	// ReasonNotSubmitted: submission stopped before this stage's job was queued.
	ReasonNotSubmitted = "not submitted"
	// ReasonNoFinishedMarker: the job started, the scheduler no longer knows it, and it
	// wrote no finished marker: it was killed hard (node failure, SIGKILL).
	ReasonNoFinishedMarker = "ended without writing its finished marker"
	// ReasonForgotten: the scheduler no longer knows a job that never started.
	ReasonForgotten = "no longer known to the scheduler; it never started"
	// ReasonNotStarted: nobody asked the executor (fetch-results) and the files show no
	// start yet.
	ReasonNotStarted = "not started yet"
	// ReasonRequeued: the last attempt asked to be requeued and the next has not started.
	ReasonRequeued = "requeued; waits to start again"
)

// Input is everything known of one stage.
type Input struct {
	// JobID is the stage's job as the registry records it ("" when the record has none;
	// then the started marker's job_id is used).
	JobID string
	// Submitted is false for a stage whose job was never queued.
	Submitted bool
	// Queried says the executor was asked about the job; Job is its answer, nil when it
	// does not know the job (purged from squeue and sacct, or never asked).
	Queried bool
	Job     *jobs.JobState
	// Started and Finished are the markers as experiment.ParseMarker reads them; nil when
	// absent.
	Started, Finished map[string]string
	// EpochsDone are the rows of history.csv; EpochsTotal the stage's planned epochs.
	EpochsDone, EpochsTotal int
	// Now ends a running stage's elapsed time (time.Now() when zero).
	Now time.Time
}

// View is where a stage stands.
type View struct {
	State    jobs.State
	Reason   string
	JobID    string
	Node     string
	ExitCode string
	// Start and End are the job's times (End zero until it ends); Elapsed its run time so
	// far.
	Start, End time.Time
	Elapsed    time.Duration
	// Attempt is the started marker's attempt (1 + requeues); 0 before the first start.
	Attempt                 int
	EpochsDone, EpochsTotal int
	// Ran says the job started at some point (a started marker, or the executor names
	// the node it ran on): a stage that never ran has no log.
	Ran bool
	// Requeued says the job's last attempt ended asking to be requeued (its finished
	// marker says REQUEUED) and no newer attempt has started: it waits to resume.
	Requeued bool
	// guess: the state was guessed (neither the executor nor a marker said it), so a
	// failed dependency explains it better.
	guess bool
}

// NeverRan reports whether the stage was cancelled before it started: it has no log.
func (v View) NeverRan() bool { return v.State == jobs.StateCancelled && !v.Ran }

// Of interprets one stage. The executor's word stands, except that a finished marker
// ends a job the executor shows pending, unknown or no longer knows at all; markers fill
// in what the executor did not say (node, times, exit code).
func Of(in Input) View {
	v := View{JobID: in.JobID, EpochsDone: in.EpochsDone, EpochsTotal: in.EpochsTotal}
	if !in.Submitted {
		v.State, v.Reason = jobs.StateCancelled, ReasonNotSubmitted
		return v
	}
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	start, fin := in.Started, in.Finished
	if v.JobID == "" && start != nil {
		v.JobID = start["job_id"]
	}
	if fin != nil && fin["job_id"] != "" && v.JobID != "" && fin["job_id"] != v.JobID {
		fin = nil // another job's marker (cannot happen with one run dir per run)
	}
	if fin != nil && start != nil {
		// A requeued job writes finished (REQUEUED), then its next attempt a newer started:
		// the finished marker is the previous attempt's.
		if s, e := unix(start["start_time"]), unix(fin["end_time"]); s > 0 && e > 0 && e < s {
			fin = nil
		}
	}
	requeued := fin != nil && jobs.State(fin["state"]) == jobs.StateRequeued
	ended := fin != nil && !requeued
	v.Requeued = requeued

	known := in.Job != nil
	if known {
		j := in.Job
		v.State, v.Reason, v.Node, v.Elapsed, v.ExitCode, v.Start, v.End = j.State, j.Reason, j.Node, j.Elapsed, j.ExitCode, j.Start, j.End
	}
	switch {
	case ended && (!known || v.State == jobs.StatePending || v.State == jobs.StateUnknown || v.State == ""):
		v.State, v.Reason, v.ExitCode = finishedState(fin), "", fin["exit_code"]
	case known:
		// The executor's word.
	case requeued && !in.Queried:
		v.State, v.Reason = jobs.StateRequeued, ReasonRequeued
	case start != nil && !in.Queried:
		v.State = jobs.StateRunning
	case start != nil:
		v.State, v.Reason = jobs.StateFailed, ReasonNoFinishedMarker
	case !in.Queried && in.EpochsDone > 0:
		v.State = jobs.StateRunning // history without markers: a job run outside hpctl's scripts
	case !in.Queried:
		v.State, v.Reason, v.guess = jobs.StatePending, ReasonNotStarted, true
	default:
		v.State, v.Reason, v.guess = jobs.StateUnknown, ReasonForgotten, true
	}
	if v.State == jobs.StateCancelled && (v.Reason == "Dependency" || v.Reason == "DependencyNeverSatisfied") {
		v.Reason = ReasonDependencyFailed // --kill-on-invalid-dep's doing
	}
	if v.State.Terminal() && v.ExitCode == "" && ended {
		v.ExitCode = fin["exit_code"]
	}
	if v.Node == "" && start != nil {
		v.Node = start["host"]
	}
	if start != nil {
		v.Attempt, _ = strconv.Atoi(strings.TrimSpace(start["attempt"]))
		if v.Start.IsZero() {
			v.Start = unixTime(start["start_time"])
		}
	}
	if fin != nil && v.End.IsZero() {
		v.End = unixTime(fin["end_time"])
	}
	if v.Elapsed == 0 && start != nil {
		s, e := unix(start["start_time"]), now.Unix()
		if ended {
			if t := unix(fin["end_time"]); t > 0 {
				e = t
			}
		}
		if s > 0 && e >= s && (ended || v.State.Running()) {
			v.Elapsed = time.Duration(e-s) * time.Second
		}
	}
	v.Ran = start != nil || v.Node != ""
	return v
}

// AfterDependencies explains a stage that never started (cancelled before it ran, or
// whose state was only guessed) by its dependencies: when one of them failed or was
// cancelled, the stage is CANCELLED, "dependency failed". deps are the dependencies'
// views, already explained themselves.
func (v View) AfterDependencies(deps ...View) View {
	if !v.guess && v.State != jobs.StateUnknown && !v.NeverRan() {
		return v
	}
	for _, d := range deps {
		if d.State.Failed() || d.State == jobs.StateCancelled {
			v.State, v.Reason, v.ExitCode, v.guess = jobs.StateCancelled, ReasonDependencyFailed, "", false
			break
		}
	}
	return v
}

// Overall is a run's state from its stages': the first failure wins, then anything
// still going, then CANCELLED, and COMPLETED only when every stage completed.
func Overall(stages ...jobs.State) jobs.State {
	var running, waiting, cancelled, unknown bool
	for _, s := range stages {
		switch {
		case s.Failed():
			return s
		case s.Running():
			running = true
		case s.Waiting():
			waiting = true
		case s == jobs.StateCancelled:
			cancelled = true
		case s != jobs.StateCompleted:
			unknown = true
		}
	}
	switch {
	case running:
		return jobs.StateRunning
	case waiting:
		return jobs.StatePending
	case cancelled:
		return jobs.StateCancelled
	case unknown:
		return jobs.StateUnknown
	}
	return jobs.StateCompleted
}

// finishedState is the state a finished marker records; markers of older job scripts
// carry only the exit code.
func finishedState(fin map[string]string) jobs.State {
	if s := jobs.State(strings.TrimSpace(fin["state"])); s != "" {
		return s
	}
	if strings.TrimSpace(fin["exit_code"]) == "0" {
		return jobs.StateCompleted
	}
	return jobs.StateFailed
}

func unix(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n
}

func unixTime(s string) time.Time {
	if n := unix(s); n > 0 {
		return time.Unix(n, 0)
	}
	return time.Time{}
}
