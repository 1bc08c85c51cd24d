package results

import (
	"testing"

	"github.com/hpctl/hpctl/transport"
)

// A retried stage's earlier attempt (attempts/<n>/stages/<stage>) is fetched for its
// history, metrics and markers; its checkpoints and resume state stay on the cluster
// unless --all-checkpoints.
func TestEarlierAttemptsCheckpointsStayUnlessAsked(t *testing.T) {
	for _, c := range []struct {
		rel      string
		def, all bool // excluded by default, with AllCheckpoints
		noCkpts  bool // with NoCheckpoints
	}{
		{"attempts/1/stages/finetune/history.csv", false, false, false},
		{"attempts/1/stages/finetune/metrics.json", false, false, false},
		{"attempts/1/stages/finetune/.hpctl/finished", false, false, false},
		{"attempts/1/stages/finetune/checkpoints/best.keras", true, false, true},
		{"attempts/2/stages/frozen/state/latest.json", true, false, true},
		{"stages/finetune/checkpoints/best.keras", false, false, true},
	} {
		if got := transport.Excluded(c.rel, Options{}.Excludes()); got != c.def {
			t.Errorf("%s: excluded %v by default, want %v", c.rel, got, c.def)
		}
		if got := transport.Excluded(c.rel, Options{AllCheckpoints: true}.Excludes()); got != c.all {
			t.Errorf("%s: excluded %v with --all-checkpoints, want %v", c.rel, got, c.all)
		}
		if got := transport.Excluded(c.rel, Options{NoCheckpoints: true}.Excludes()); got != c.noCkpts {
			t.Errorf("%s: excluded %v with --no-checkpoints, want %v", c.rel, got, c.noCkpts)
		}
	}
}
