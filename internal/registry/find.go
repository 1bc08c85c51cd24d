package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hpctl/hpctl/internal/errkind"
)

// Find looks a run up the way every command takes one: by id, by a unique prefix of an
// id, or "latest" (also "last"). An empty or ambiguous id wraps errkind.ErrUsage, an
// unknown one errkind.ErrNotFound.
func (r *Registry) Find(ctx context.Context, id string) (Run, error) {
	// Every id has the empty string as a prefix: without this, `hpctl cancel ''` (an unset
	// shell variable) would act on whichever run happened to be the only one.
	if strings.TrimSpace(id) == "" {
		return Run{}, fmt.Errorf("%w: empty run id: give a run id, a unique prefix of one, or \"latest\" (hpctl runs lists them)", errkind.ErrUsage)
	}
	if id == "latest" || id == "last" {
		return r.Latest(ctx)
	}
	run, err := r.Get(ctx, id)
	if err == nil || !errors.Is(err, errkind.ErrNotFound) {
		return run, err
	}
	all, lerr := r.List(ctx)
	if lerr != nil {
		return Run{}, lerr
	}
	var hits []string
	for _, c := range all {
		if strings.HasPrefix(c.ID, id) {
			hits = append(hits, c.ID)
			run = c
		}
	}
	switch len(hits) {
	case 1:
		return run, nil
	case 0:
		return Run{}, err
	}
	return Run{}, fmt.Errorf("%w: run %q is ambiguous: %s", errkind.ErrUsage, id, strings.Join(hits, ", "))
}

// FindAll finds each of ids (see Find), in order; the first that fails stops it.
func (r *Registry) FindAll(ctx context.Context, ids []string) ([]Run, error) {
	runs := make([]Run, 0, len(ids))
	for _, id := range ids {
		run, err := r.Find(ctx, id)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	}
	return runs, nil
}
