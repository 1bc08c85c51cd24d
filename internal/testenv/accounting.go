package testenv

import (
	"path/filepath"
	"strconv"
	"testing"
)

// WithoutAccounting restarts the test cluster without accounting (scripts/slurm-up.sh
// --no-accounting: sacct then fails, as on many sites) for the rest of the test, holding
// the cluster exclusively like StopController, and restores accounting when the test
// ends. Added by the submit/status work (issue #4); see StopController for the locking.
func WithoutAccounting(t testing.TB) {
	t.Helper()
	slurmLock.exclusive(t)
	t.Cleanup(func() {
		if err := slurmUp(); err != nil {
			t.Errorf("testenv: restoring accounting: %v", err)
		}
		slurmLock.release()
	})
	if err := slurmUp("--no-accounting"); err != nil {
		t.Fatalf("testenv: restarting Slurm without accounting: %v", err)
	}
}

// WithMaxArraySize restarts the test cluster with MaxArraySize=n (scripts/slurm-up.sh
// --max-array-size) for the rest of the test, holding the cluster exclusively, and
// restores the default when the test ends.
func WithMaxArraySize(t testing.TB, n int) {
	t.Helper()
	slurmLock.exclusive(t)
	mode := "--accounting"
	if !AccountingEnabled() {
		mode = "--no-accounting"
	}
	t.Cleanup(func() {
		if err := slurmUp(mode); err != nil {
			t.Errorf("testenv: restoring MaxArraySize: %v", err)
		}
		slurmLock.release()
	})
	if err := slurmUp(mode, "--max-array-size="+strconv.Itoa(n)); err != nil {
		t.Fatalf("testenv: restarting Slurm with MaxArraySize=%d: %v", n, err)
	}
}

func slurmUp(args ...string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	out, err := run(scriptTimeout, append([]string{"bash", filepath.Join(root, "scripts", "slurm-up.sh")}, args...)...)
	if err != nil {
		return &scriptError{name: "slurm-up.sh", err: err, out: out}
	}
	return nil
}

type scriptError struct {
	name string
	err  error
	out  []byte
}

func (e *scriptError) Error() string { return e.name + ": " + e.err.Error() + "\n" + string(e.out) }
