package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/transport"
)

// checkFilesScript prints, for each argument, "yes" when it is a regular file and "no"
// otherwise. Paths arrive as arguments, never inside the script text.
const checkFilesScript = `for f in "$@"; do if [ -f "$f" ]; then echo yes; else echo no; fi; done`

// resolveInits checks, in one command on the cluster, that each init_from checkpoint
// outside the run exists, and resolves RUN:STAGE (through reg) to that run's stage's best
// checkpoint, which it writes into the plan's spec (and its trials') as an absolute
// path. It returns the problems found, at their spec positions, and whether the plan
// changed (its files must then be rendered again).
func resolveInits(ctx context.Context, t transport.Transport, reg registry.Store, p *experiment.Plan) ([]experiment.Problem, bool, error) {
	if len(p.InitChecks) == 0 {
		return nil, false, nil
	}
	var problems []experiment.Problem
	add := func(c experiment.InitCheck, format string, args ...any) {
		problems = append(problems, experiment.Problem{File: p.SpecFile, Pos: c.Pos, Msg: c.Key + ": " + fmt.Sprintf(format, args...)})
	}
	type pending struct {
		check      experiment.InitCheck
		candidates []string
	}
	var todo []pending
	var argv []string
	for _, c := range p.InitChecks {
		if c.Path != "" {
			todo = append(todo, pending{c, []string{p.Spec.StageByName(c.Stage).InitFrom}})
			continue
		}
		run, err := reg.Get(ctx, c.Run)
		if errors.Is(err, errkind.ErrNotFound) {
			add(c, "no run %q in the registry (hpctl runs lists them)", c.Run)
			continue
		}
		if err != nil {
			return nil, false, fmt.Errorf("resolve %s (%s:%s): %w", c.Key, c.Run, c.RunStage, err)
		}
		var names []string
		found := false
		for _, s := range run.Stages {
			names = append(names, s.Name)
			found = found || s.Name == c.RunStage
		}
		switch {
		case !found:
			add(c, "run %s has no stage %q (stages: %s)", run.ID, c.RunStage, strings.Join(names, ", "))
			continue
		case run.Trials > 0:
			add(c, "run %s is a sweep; give the checkpoint path of one trial's stage (%s)", run.ID,
				path.Join(run.RunDir, experiment.TrialDir(0), experiment.PathsOf(c.RunStage).BestCheckpoint)+".keras")
			continue
		case run.Host != hostOf(t):
			add(c, "run %s was submitted through %q, this submission goes through %q; give its checkpoint's path instead",
				run.ID, run.Host, hostOf(t))
			continue
		}
		base := path.Join(run.RunDir, experiment.PathsOf(c.RunStage).BestCheckpoint)
		var cands []string
		for _, ext := range experiment.CheckpointExts {
			cands = append(cands, base+ext)
		}
		todo = append(todo, pending{c, cands})
	}
	for _, pd := range todo {
		argv = append(argv, pd.candidates...)
	}
	var exists []bool
	if len(argv) > 0 {
		res, err := t.Run(ctx, append([]string{"sh", "-c", checkFilesScript, "sh"}, argv...), nil)
		if err != nil {
			return nil, false, fmt.Errorf("check the init_from checkpoints on the cluster: %w", err)
		}
		if res.ExitCode != 0 {
			return nil, false, fmt.Errorf("check the init_from checkpoints on the cluster: exit %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
		sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
		for sc.Scan() {
			exists = append(exists, strings.TrimSpace(sc.Text()) == "yes")
		}
		if len(exists) != len(argv) {
			return nil, false, fmt.Errorf("check the init_from checkpoints on the cluster: unexpected answer %q", res.Stdout)
		}
	}
	changed := false
	k := 0
	for _, pd := range todo {
		got := ""
		for _, cand := range pd.candidates {
			if exists[k] && got == "" {
				got = cand
			}
			k++
		}
		c := pd.check
		switch {
		case got == "" && c.Path != "":
			add(c, "checkpoint %s does not exist on the cluster (or is not a file)", pd.candidates[0])
		case got == "":
			add(c, "run %s's stage %s has no best checkpoint (%s.keras or .h5) on the cluster; has it completed?",
				c.Run, c.RunStage, strings.TrimSuffix(pd.candidates[0], ".keras"))
		case c.Run != "":
			setInitFrom(p, c.Stage, got)
			changed = true
		}
	}
	// In the order they were written, as validation reports them.
	sort.SliceStable(problems, func(i, j int) bool {
		a, b := problems[i].Pos, problems[j].Pos
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	return problems, changed, nil
}

// setInitFrom makes stage's init_from path in the plan's spec and in each trial's.
func setInitFrom(p *experiment.Plan, stage, path string) {
	set := func(s *experiment.Spec) {
		for i := range s.Stages {
			if s.Stages[i].Name == stage {
				s.Stages[i].InitFrom = path
			}
		}
	}
	set(&p.Spec)
	for i := range p.Trials {
		set(&p.Trials[i].Spec)
	}
}
