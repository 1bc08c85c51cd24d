package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/render"
	"github.com/hpctl/hpctl/transport"
)

// PrepareOptions tune Prepare.
type PrepareOptions struct {
	// RunID names the run; when empty, a new one is stamped with Now.
	RunID string
	// Now stamps a new run id; time.Now when nil.
	Now func() time.Time
}

// Prepared is a run planned and rendered, not yet staged: what `hpctl render` writes and
// what Submit stages and queues.
type Prepared struct {
	Plan *experiment.Plan
	// Files are the run directory's files, paths relative to Plan.RunDir.
	Files []transport.File
}

// Prepare is the one way from a loaded spec to a run: it resolves the spec's paths against
// the cluster (home and working directory through t), plans the run and renders its files.
// It changes nothing anywhere.
func Prepare(ctx context.Context, t transport.Transport, l *experiment.Loaded, opts PrepareOptions) (*Prepared, error) {
	home, err := t.Home(ctx)
	if err != nil {
		return nil, err
	}
	wd, err := t.Getwd(ctx)
	if err != nil {
		return nil, err
	}
	id := opts.RunID
	if id == "" {
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		id = NewRunID(l.Spec.Name, now())
	}
	plan, err := l.Plan(home, wd, id)
	if err != nil {
		return nil, err
	}
	files, err := render.Render(plan)
	if err != nil {
		return nil, err
	}
	return &Prepared{Plan: plan, Files: files}, nil
}

// NewRunID returns <name>-<UTC yyyymmdd-hhmmss>-<4 hex>.
func NewRunID(name string, now time.Time) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return name + "-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// wrapf adds context to a Prepare error without repeating it.
func wrapf(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}
