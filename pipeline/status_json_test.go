package pipeline

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/jobs"
)

func TestStageStatusJSONUsesSecondsAndNumbers(t *testing.T) {
	for _, c := range []struct {
		in   StageStatus
		want string
	}{
		{StageStatus{Name: "a", State: jobs.StateFailed, Elapsed: 83*time.Second + 250*time.Millisecond, ExitCode: "3"},
			`"elapsed_s":83.25,"exit_code":3}`},
		{StageStatus{Name: "a", State: jobs.StateCancelled, Elapsed: time.Minute, ExitCode: "0:15"},
			`"elapsed_s":60,"exit_code":0,"signal":15}`},
		{StageStatus{Name: "a", State: jobs.StatePending},
			`"elapsed_s":0}`},
		// A damaged marker on the cluster: the stage is still written, without a code.
		{StageStatus{Name: "a", State: jobs.StateFailed, ExitCode: "x;y"},
			`"elapsed_s":0}`},
	} {
		b, err := json.Marshal(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(string(b), c.want) || strings.Contains(string(b), "elapsed_ns") {
			t.Errorf("%+v: %s, want it to end %s", c.in, b, c.want)
		}
		var back StageStatus
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if c.in.ExitCode != "x;y" && (back.Elapsed != c.in.Elapsed || back.ExitCode != c.in.ExitCode || back.Name != c.in.Name || back.State != c.in.State) {
			t.Errorf("round trip: %+v, want %+v", back, c.in)
		}
	}
}
