package pipeline

import (
	"fmt"
	"strings"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
)

// Trial is run.Trial(k) for the commands (logs and cancel of a trial, whose logs stay in
// the run's logs/ folder): a run that is not a sweep, or a k out of range, is a usage
// error.
func Trial(run registry.Run, k int) (registry.Run, error) {
	if run.Trials == 0 {
		return registry.Run{}, fmt.Errorf("%w: run %s is not a sweep; it has no trials", errkind.ErrUsage, run.ID)
	}
	if k < 0 || k >= run.Trials {
		return registry.Run{}, fmt.Errorf("%w: run %s has trials 0 to %d, not %d", errkind.ErrUsage, run.ID, run.Trials-1, k)
	}
	tr, _ := run.Trial(k)
	return tr, nil
}

// needTrial refuses to treat a sweep as one run where a trial must be chosen.
func needTrial(run registry.Run, what string) error {
	if run.Trials == 0 {
		return nil
	}
	return fmt.Errorf("%w: run %s is a sweep of %d trials: %s one with --trial K (hpctl status %s --trials lists them)",
		errkind.ErrUsage, run.ID, run.Trials, what, run.ID)
}

// isTask reports whether id is an array task's (<array job>_<index>).
func isTask(id string) (array, task string, ok bool) { return strings.Cut(id, "_") }
