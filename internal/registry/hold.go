package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hpctl/hpctl/internal/fsutil"
)

// holdDir holds one lock file per run being submitted. A submitting hpctl holds its run's
// lock from before the run is first recorded until its outcome is; the kernel drops the
// lock when that process dies, however it dies. So a run recorded "submitting" whose lock
// is free was left by a submitter that is gone, and its record can be settled.
const holdDir = "submitting"

// Hold takes run id's submission lock; release gives it back (and removes the file).
func (r *Registry) Hold(id string) (release func(), err error) {
	if r.readOnly != nil {
		return nil, fmt.Errorf("registry %s: this user may only read it (%v); use a state directory of your own (--state-dir or HPCTL_STATE_DIR)", r.path, r.readOnly)
	}
	p, err := r.holdPath(id)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	unlock, err := fsutil.Lock(p)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return func() {
		os.Remove(p)
		unlock()
	}, nil
}

// Held reports whether a live process holds run id's submission lock.
func (r *Registry) Held(id string) (bool, error) {
	p, err := r.holdPath(id)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(p); os.IsNotExist(err) {
		return false, nil
	}
	unlock, ok, err := fsutil.TryLock(p)
	if err != nil {
		return false, fmt.Errorf("registry: %w", err)
	}
	if ok {
		unlock()
	}
	return !ok, nil
}

func (r *Registry) holdPath(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\\\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("registry: run id %q cannot name a lock file", id)
	}
	return filepath.Join(filepath.Dir(r.path), holdDir, id+".lock"), nil
}
