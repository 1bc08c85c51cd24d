package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
)

// PreflightError is a submission refused before anything was staged or queued: what the
// stages ask for, the cluster can never give. Each line says which stage asks what, why
// the cluster cannot, and where in the spec the value was set.
type PreflightError struct {
	Lines []string
}

func (e *PreflightError) Error() string {
	return "the cluster cannot run this spec as it is (pre-flight; nothing was staged or queued):\n  " +
		strings.Join(e.Lines, "\n  ")
}

// Unwrap makes it an errkind.ErrRefused.
func (e *PreflightError) Unwrap() error { return errkind.ErrRefused }

// preflight checks every stage's request against the cluster when the executor can
// (jobs.Checker): one call for all stages. A cluster that could not be asked is a
// warning, and the submission goes on without the check (sites that forbid sinfo); one
// whose controller does not answer stops it (exit 3), as sbatch would.
func preflight(ctx context.Context, ex jobs.Executor, p *experiment.Plan) (*jobs.Preflight, []string, error) {
	c, ok := ex.(jobs.Checker)
	if !ok || len(p.Stages) == 0 {
		return nil, nil, nil
	}
	rs := make([]jobs.Resources, len(p.Stages))
	for i, st := range p.Stages {
		rs[i] = st.Resources
	}
	pf, err := c.Check(ctx, rs)
	if errors.Is(err, errkind.ErrUnreachable) || ctx.Err() != nil {
		return nil, nil, fmt.Errorf("pre-flight check of the stages' resources: %w", err)
	}
	if err != nil {
		return nil, []string{"pre-flight skipped, the stages' resources were not checked against the cluster: " + err.Error()}, nil
	}
	warnings := append([]string(nil), pf.Notes...)
	if len(pf.Refusals) == 0 {
		return &pf, warnings, nil
	}
	// Stages that inherit one spec-wide value share its refusal: one line names them all.
	type key struct{ field, asked, why, where string }
	var order []key
	stages := map[key][]string{}
	for _, r := range pf.Refusals {
		st := p.Stages[r.Index]
		where := st.ResourceKeys[r.Field].Where(p.SpecFile)
		if where == "" {
			where = "slurm." + r.Field
		}
		k := key{r.Field, r.Asked, r.Why, where}
		if _, seen := stages[k]; !seen {
			order = append(order, k)
		}
		stages[k] = append(stages[k], st.Name)
	}
	perr := &PreflightError{}
	for _, k := range order {
		names := stages[k]
		who := "stage " + names[0] + " asks"
		if len(names) > 1 {
			who = "stages " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " ask"
		}
		perr.Lines = append(perr.Lines, fmt.Sprintf("%s for %s; %s (%s)", who, k.asked, k.why, k.where))
	}
	return &pf, warnings, perr
}
