package stagestate_test

import (
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/stagestate"
)

// Markers as the job script (templates/stage.sh.tmpl) writes them.
func marker(s string) map[string]string { return experiment.ParseMarker([]byte(s)) }

var (
	started   = marker("job_id=7\nhost=node001\nstart_time=1000\nattempt=1\n")
	restarted = marker("job_id=7\nhost=node002\nstart_time=2000\nattempt=2\n")
	done      = marker("job_id=7\nexit_code=0\nend_time=1090\nstate=COMPLETED\n")
	broke     = marker("job_id=7\nexit_code=3\nend_time=1090\nstate=FAILED\n")
	requeue   = marker("job_id=7\nexit_code=99\nend_time=1090\nstate=REQUEUED\n")
	oldStyle  = marker("job_id=7\nexit_code=0\nend_time=1090\n") // no state= line
	otherJobs = marker("job_id=8\nexit_code=0\nend_time=1090\nstate=COMPLETED\n")
)

func job(state jobs.State, reason, node string) *jobs.JobState {
	return &jobs.JobState{ID: "7", State: state, Reason: reason, Node: node}
}

func TestOf(t *testing.T) {
	now := time.Unix(1060, 0)
	for _, c := range []struct {
		name             string
		in               stagestate.Input
		state            jobs.State
		reason, exit     string
		ran              bool
		elapsed          time.Duration
		attempt          int
		explainedByFails bool // AfterDependencies(FAILED dependency) makes it CANCELLED
	}{
		{name: "not submitted", in: stagestate.Input{}, state: jobs.StateCancelled, reason: stagestate.ReasonNotSubmitted, explainedByFails: true},
		{name: "no executor answer, no markers (fetch-results)", in: stagestate.Input{JobID: "7", Submitted: true},
			state: jobs.StatePending, reason: stagestate.ReasonNotStarted, explainedByFails: true},
		{name: "executor forgot a job that never started", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true},
			state: jobs.StateUnknown, reason: stagestate.ReasonForgotten, explainedByFails: true},
		{name: "pending", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: job(jobs.StatePending, "Priority", "")},
			state: jobs.StatePending, reason: "Priority"},
		{name: "pending on a dependency that failed", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: job(jobs.StatePending, "DependencyNeverSatisfied", "")},
			state: jobs.StatePending, reason: "DependencyNeverSatisfied"},
		{name: "running with started marker", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: job(jobs.StateRunning, "", "node001"), Started: started, EpochsDone: 2, EpochsTotal: 5},
			state: jobs.StateRunning, ran: true, elapsed: 60 * time.Second, attempt: 1},
		{name: "started marker, not asked (fetch-results)", in: stagestate.Input{JobID: "7", Submitted: true, Started: started},
			state: jobs.StateRunning, ran: true, elapsed: 60 * time.Second, attempt: 1},
		{name: "history without markers, not asked", in: stagestate.Input{JobID: "7", Submitted: true, EpochsDone: 2},
			state: jobs.StateRunning},
		{name: "finished exit 0, executor gone", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Started: started, Finished: done},
			state: jobs.StateCompleted, exit: "0", ran: true, elapsed: 90 * time.Second, attempt: 1},
		{name: "finished exit 0, not asked", in: stagestate.Input{JobID: "7", Submitted: true, Started: started, Finished: done},
			state: jobs.StateCompleted, exit: "0", ran: true, elapsed: 90 * time.Second, attempt: 1},
		{name: "finished non-zero, executor gone", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Started: started, Finished: broke},
			state: jobs.StateFailed, exit: "3", ran: true, elapsed: 90 * time.Second, attempt: 1},
		{name: "finished non-zero, executor says FAILED", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: &jobs.JobState{State: jobs.StateFailed, Node: "node001"}, Started: started, Finished: broke},
			state: jobs.StateFailed, exit: "3", ran: true, elapsed: 90 * time.Second, attempt: 1},
		{name: "old marker without state=", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Started: started, Finished: oldStyle},
			state: jobs.StateCompleted, exit: "0", ran: true, elapsed: 90 * time.Second, attempt: 1},
		{name: "requeued (exit 99), Slurm shows it pending", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: job(jobs.StatePending, "BeginTime", ""), Started: started, Finished: requeue},
			state: jobs.StatePending, reason: "BeginTime", ran: true, attempt: 1},
		{name: "requeued (exit 99), not asked", in: stagestate.Input{JobID: "7", Submitted: true, Started: started, Finished: requeue},
			state: jobs.StateRequeued, reason: stagestate.ReasonRequeued, ran: true, attempt: 1},
		{name: "requeued and restarted: the old finished marker is the earlier attempt's", in: stagestate.Input{JobID: "7", Submitted: true, Started: restarted, Finished: requeue, Now: time.Unix(2030, 0)},
			state: jobs.StateRunning, ran: true, elapsed: 30 * time.Second, attempt: 2},
		{name: "executor says COMPLETED, no finished marker", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: &jobs.JobState{State: jobs.StateCompleted, ExitCode: "0", Node: "node001"}, Started: started},
			state: jobs.StateCompleted, exit: "0", ran: true, attempt: 1},
		{name: "executor gone, started, no finished marker: killed hard", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Started: started},
			state: jobs.StateFailed, reason: stagestate.ReasonNoFinishedMarker, ran: true, attempt: 1},
		{name: "another job's finished marker is not this job's", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: job(jobs.StatePending, "Priority", ""), Finished: otherJobs},
			state: jobs.StatePending, reason: "Priority"},
		{name: "cancelled before start (dependency never satisfied)", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: job(jobs.StateCancelled, "DependencyNeverSatisfied", "")},
			state: jobs.StateCancelled, reason: stagestate.ReasonDependencyFailed, explainedByFails: true},
		{name: "cancelled while running", in: stagestate.Input{JobID: "7", Submitted: true, Queried: true, Job: job(jobs.StateCancelled, "", "node001"), Started: started},
			state: jobs.StateCancelled, ran: true, attempt: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.in.Now.IsZero() {
				c.in.Now = now
			}
			v := stagestate.Of(c.in)
			if v.State != c.state || v.Reason != c.reason || v.ExitCode != c.exit || v.Ran != c.ran || v.Elapsed != c.elapsed || v.Attempt != c.attempt {
				t.Errorf("got %s %q exit %q ran %v elapsed %s attempt %d; want %s %q exit %q ran %v elapsed %s attempt %d",
					v.State, v.Reason, v.ExitCode, v.Ran, v.Elapsed, v.Attempt, c.state, c.reason, c.exit, c.ran, c.elapsed, c.attempt)
			}
			if v.EpochsDone != c.in.EpochsDone || v.EpochsTotal != c.in.EpochsTotal {
				t.Errorf("epochs %d/%d, want %d/%d", v.EpochsDone, v.EpochsTotal, c.in.EpochsDone, c.in.EpochsTotal)
			}
			failedDep := stagestate.Of(stagestate.Input{Submitted: true, Started: started, Finished: broke})
			e := v.AfterDependencies(failedDep)
			if explained := e.State == jobs.StateCancelled && e.Reason == stagestate.ReasonDependencyFailed && e.ExitCode == ""; explained != c.explainedByFails {
				t.Errorf("after a failed dependency: %s %q; explained %v, want %v", e.State, e.Reason, explained, c.explainedByFails)
			}
			if e := v.AfterDependencies(stagestate.Of(stagestate.Input{Submitted: true, Started: started, Finished: done})); e.State != v.State || e.Reason != v.Reason {
				t.Errorf("a completed dependency changed %s %q to %s %q", v.State, v.Reason, e.State, e.Reason)
			}
		})
	}
}

func TestOfFillsTimesAndNodeFromMarkers(t *testing.T) {
	v := stagestate.Of(stagestate.Input{JobID: "7", Submitted: true, Queried: true, Started: started, Finished: done})
	if v.Node != "node001" || !v.Start.Equal(time.Unix(1000, 0)) || !v.End.Equal(time.Unix(1090, 0)) {
		t.Errorf("node %q start %s end %s", v.Node, v.Start, v.End)
	}
}

func TestStateMethods(t *testing.T) {
	for _, c := range []struct {
		s                                  jobs.State
		terminal, failed, running, waiting bool
	}{
		{jobs.StatePending, false, false, false, true},
		{jobs.StateRequeued, false, false, false, true},
		{jobs.StateRunning, false, false, true, false},
		{jobs.StateCompleted, true, false, false, false},
		{jobs.StateFailed, true, true, false, false},
		{jobs.StateCancelled, true, false, false, false},
		{jobs.StateTimeout, true, true, false, false},
		{jobs.StateNodeFail, true, true, false, false},
		{jobs.StateOutOfMemory, true, true, false, false},
		{jobs.StatePreempted, false, true, false, false},
		{jobs.StateUnknown, false, false, false, false},
	} {
		if c.s.Terminal() != c.terminal || c.s.Failed() != c.failed || c.s.Running() != c.running || c.s.Waiting() != c.waiting {
			t.Errorf("%s: terminal %v failed %v running %v waiting %v", c.s, c.s.Terminal(), c.s.Failed(), c.s.Running(), c.s.Waiting())
		}
	}
}

func TestOverall(t *testing.T) {
	S := func(s ...jobs.State) []jobs.State { return s }
	for _, c := range []struct {
		stages []jobs.State
		want   jobs.State
	}{
		{S(jobs.StateCompleted, jobs.StateCompleted), jobs.StateCompleted},
		{S(jobs.StateCompleted, jobs.StateRunning), jobs.StateRunning},
		{S(jobs.StateRequeued, jobs.StatePending), jobs.StatePending},
		{S(jobs.StateTimeout, jobs.StateCancelled), jobs.StateTimeout},
		{S(jobs.StateCompleted, jobs.StateCancelled), jobs.StateCancelled},
		{S(jobs.StateCompleted, jobs.StateUnknown), jobs.StateUnknown},
	} {
		if got := stagestate.Overall(c.stages...); got != c.want {
			t.Errorf("Overall(%v) = %s, want %s", c.stages, got, c.want)
		}
	}
}
