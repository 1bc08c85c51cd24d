package main

import (
	"testing"

	"github.com/hpctl/hpctl/jobs"
)

func TestEpochCell(t *testing.T) {
	for _, c := range []struct {
		done, total int
		state       jobs.State
		want        string
	}{
		{2, 0, jobs.StateCompleted, "2/-"}, // a command stage that wrote history.csv
		{2, 5, jobs.StateRunning, "2/5"},
		{0, 5, jobs.StateRunning, "0/5"},
		{0, 5, jobs.StatePending, ""},
		{0, 0, jobs.StateRunning, ""},
	} {
		if got := epochCell(c.done, c.total, c.state); got != c.want {
			t.Errorf("epochCell(%d, %d, %s) = %q, want %q", c.done, c.total, c.state, got, c.want)
		}
	}
}
