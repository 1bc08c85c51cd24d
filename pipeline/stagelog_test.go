package pipeline_test

import (
	"testing"

	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

// TestStageLogPicksTheLastStageThatRan: without --stage, `hpctl logs RUN` shows the latest
// stage whose job ran. A stage cancelled while it waited (its dependency failed) has no
// log, so after a failed first stage that stage's log is the one shown.
func TestStageLogPicksTheLastStageThatRan(t *testing.T) {
	run := registry.Run{ID: "r", Stages: []registry.RunStage{{Name: "frozen", JobID: "1"}, {Name: "finetune", JobID: "2"}}}
	for _, tc := range []struct {
		what   string
		states map[string]jobs.JobState
		want   string
	}{
		{"both waiting", map[string]jobs.JobState{"1": {State: jobs.StatePending}, "2": {State: jobs.StatePending}}, "frozen"},
		{"first running", map[string]jobs.JobState{"1": {State: jobs.StateRunning, Node: "n1"}, "2": {State: jobs.StatePending}}, "frozen"},
		{"second running", map[string]jobs.JobState{"1": {State: jobs.StateCompleted, Node: "n1"}, "2": {State: jobs.StateRunning, Node: "n1"}}, "finetune"},
		{"first failed, second cancelled unstarted",
			map[string]jobs.JobState{"1": {State: jobs.StateFailed, Node: "n1"}, "2": {State: jobs.StateCancelled, Reason: "DependencyNeverSatisfied"}}, "frozen"},
		{"second cancelled while running", map[string]jobs.JobState{"1": {State: jobs.StateCompleted, Node: "n1"}, "2": {State: jobs.StateCancelled, Node: "n1"}}, "finetune"},
		{"both forgotten", map[string]jobs.JobState{}, "frozen"},
	} {
		got, err := pipeline.StageLog(run, "", tc.states)
		if err != nil || got.Name != tc.want {
			t.Errorf("%s: StageLog picked %q (%v), want %q", tc.what, got.Name, err, tc.want)
		}
	}
}
