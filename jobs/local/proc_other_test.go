//go:build !linux

package local_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs/local"
)

// Outside Linux the executor refuses plainly, as a usage error that points at --host,
// before it writes anything, and the supervisor command refuses the same way.
func TestNotLinuxRefusesAndPointsAtHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "local-jobs")
	e, err := local.New(local.Options{StateDir: dir, Hpctl: os.Args[0], GPUs: []string{}})
	if err == nil {
		t.Fatalf("New on %s returned an executor (%v), want a refusal", runtime.GOOS, e)
	}
	if !errors.Is(err, errkind.ErrUsage) {
		t.Errorf("New: %v is not a usage error", err)
	}
	for _, want := range []string{"Linux only", runtime.GOOS + "/" + runtime.GOARCH, "--host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New: %q does not say %q", err, want)
		}
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Errorf("New made its state directory %s before refusing (stat: %v)", dir, serr)
	}
	rec := filepath.Join(t.TempDir(), "1.json")
	if err := local.Supervise(t.Context(), rec); err == nil || !errors.Is(err, errkind.ErrUsage) {
		t.Errorf("Supervise(%s) = %v, want the same usage error", rec, err)
	}
}
