package results

import (
	"testing"

	"github.com/hpctl/hpctl/transport"
)

// A running `hpctl predict --remote` job's scratch folder (predict/<id>/: the user's
// images, a trainer, logs) is never a result, whatever checkpoints are asked for; a
// stage's files of the same names are.
func TestPredictScratchIsNeverFetched(t *testing.T) {
	for _, o := range []Options{{}, {AllCheckpoints: true}, {NoCheckpoints: true}} {
		for rel, want := range map[string]bool{
			"predict/20261203-170000-abcdef/images/00000-street.jpg": true,
			"predict/20261203-170000-abcdef/logs/x-predict-12.out":   true,
			"predict/20261203-170000-abcdef/trainer/train.py":        true,
			"stages/predict/history.csv":                             false,
			"logs/urban-rural-predict-12.out":                        false,
		} {
			if got := transport.Excluded(rel, o.Excludes()); got != want {
				t.Errorf("%+v: %s excluded %v, want %v", o, rel, got, want)
			}
		}
	}
}
