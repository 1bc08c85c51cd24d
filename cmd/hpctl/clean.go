package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/internal/config"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
)

func init() { register(48, cleanCommand) }

type cleanOptions struct {
	runs       []string
	olderThan  time.Duration
	states     []jobs.State
	remote     bool
	yes        bool
	dryRun     bool
	resultsDir string
}

func cleanCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "clean",
		BashComplete: completeRuns,
		Usage:        "remove old runs: their fetched results, registry records and (--remote) run directories",
		ArgsUsage:    "[RUN...]",
		Description: `Removes the runs chosen by RUN ids and/or --older-than and --state (all given must
match): each one's fetched results (<results-dir>/<run-id>/) and its record in the
registry, and with --remote its run directory on the cluster. It first lists exactly
what it would remove; on a terminal it then asks, elsewhere it removes nothing unless
--yes is given (--dry-run only lists).

Runs still queued or running are never removed: cancel them first (hpctl cancel RUN).
A run named on the command line that is still active stops clean before it removes
anything (exit 2, as every refusal of clean); one that --older-than or --state picked is
kept and listed as such. States come from one squeue and at most one sacct call per
cluster; a run whose jobs neither Slurm nor its run directory knows any more (UNKNOWN)
has none left to run and may be removed.

--remote removes only directories that are what the registry says a run directory is:
<workdir>/<run-id>, a real directory (not a symbolic link) holding the run's spec.yaml,
and holding no other recorded run. Each is renamed aside first and then removed without
following the symbolic links inside it, so a removal cut short leaves no half run
directory under the run's name (the next clean finishes it). A run whose directory could
not be removed keeps its record. Without --remote the run directories stay on the
cluster.

Examples:
   hpctl clean --state failed,cancelled --dry-run
   hpctl clean --older-than 30d --remote --yes
   hpctl clean latest --yes`,
		Flags: []cli.Flag{
			&cli.GenericFlag{Name: "older-than", Usage: "only runs submitted longer ago than this (30d, 72h, 90m)", Value: &ageValue{}},
			&cli.StringFlag{Name: "state", Usage: "only runs in these states, comma-separated (failed, cancelled, completed, timeout, ...)"},
			&cli.BoolFlag{Name: "remote", Usage: "also remove the run directories on the cluster"},
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "remove without asking"},
			&cli.BoolFlag{Name: "dry-run", Usage: "only list what would be removed"},
			&cli.StringFlag{Name: "results-dir", Usage: "where fetched results are (default: the results-dir setting, ./results)"},
		},
		Action: func(c *cli.Context) error {
			o := cleanOptions{runs: c.Args().Slice(), olderThan: c.Generic("older-than").(*ageValue).d, remote: c.Bool("remote"),
				yes: c.Bool("yes"), dryRun: c.Bool("dry-run"), resultsDir: c.String("results-dir")}
			if v := c.String("state"); v != "" {
				for _, s := range strings.Split(v, ",") {
					st := jobs.State(strings.ToUpper(strings.TrimSpace(s)))
					if !ended(st) {
						return usageError(fmt.Errorf("--state %q is not a state a run ends in (COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, UNKNOWN); active runs are never removed", s))
					}
					o.states = append(o.states, st)
				}
			}
			if len(o.runs) == 0 && o.olderThan == 0 && len(o.states) == 0 {
				return usageError(errorf("clean needs RUN ids, --older-than or --state: it never removes every run by default"))
			}
			if o.yes && o.dryRun {
				return usageError(errorf("--yes and --dry-run contradict each other"))
			}
			if o.resultsDir == "" {
				o.resultsDir = e.settings.ResultsDir
			}
			return runClean(c.Context, e, o)
		},
	}
}

// ageValue is --older-than: a duration as every hpctl duration is, or whole days ("30d"),
// the unit runs are usually counted in.
type ageValue struct{ d time.Duration }

func (v *ageValue) Set(s string) error {
	if n, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return fmt.Errorf("%q is not a number of days (write 30d)", s)
		}
		v.d = time.Duration(days) * 24 * time.Hour
		return nil
	}
	d, err := config.ParseDuration(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("%q is not a positive duration", s)
	}
	v.d = d
	return err
}

// Get makes the value a flag.Getter, which urfave's Context.Value needs.
func (v *ageValue) Get() any { return v.d }

func (v *ageValue) String() string {
	if v == nil || v.d == 0 {
		return ""
	}
	return v.d.String()
}

// cleanItem is one run clean would remove, and what of it.
type cleanItem struct {
	run     registry.Run
	state   jobs.State
	results string // local results folder, "" when there is none
}

func runClean(ctx context.Context, e *env, o cleanOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	all, err := reg.List(ctx)
	if err != nil {
		return err
	}
	candidates := all
	named := map[string]bool{}
	if len(o.runs) > 0 {
		if candidates, err = reg.FindAll(ctx, o.runs); err != nil {
			return fmt.Errorf("clean: %w", err)
		}
		for _, r := range candidates {
			named[r.ID] = true
		}
	}
	var picked []registry.Run
	var kept []string
	for _, r := range candidates {
		if age := time.Since(r.SubmittedAt); o.olderThan > 0 && age < o.olderThan {
			if named[r.ID] {
				kept = append(kept, fmt.Sprintf("%s: submitted %s ago, not longer than %s", r.ID, age.Round(time.Second), o.olderThan))
			}
			continue
		}
		if !slices.ContainsFunc(picked, func(p registry.Run) bool { return p.ID == r.ID }) {
			picked = append(picked, r)
		}
	}
	if len(picked) == 0 {
		for _, k := range kept {
			fmt.Fprintf(e.stdout, "keeping %s\n", k)
		}
		fmt.Fprintln(e.stdout, "no runs match; nothing to remove")
		return nil
	}
	// Every run's state, one squeue and sacct per cluster: an active run is never
	// removed, and --state needs them.
	st, err := e.statusOf(ctx, picked, pipeline.StatusOptions{KeepStuck: true})
	if err != nil {
		return fmt.Errorf("clean: the runs' states are needed to keep active runs: %w", err)
	}
	var items []cleanItem
	for i, r := range picked {
		state := st[i].State
		if held, herr := reg.Held(r.ID); herr == nil && held {
			state = jobs.StateRunning // a submit or retry of it is under way
		}
		if len(o.states) > 0 && !slices.Contains(o.states, state) {
			if named[r.ID] {
				kept = append(kept, fmt.Sprintf("%s is %s, not %s", r.ID, state, joinStates(o.states)))
			}
			continue
		}
		if !ended(state) {
			if named[r.ID] {
				return fmt.Errorf("%w: run %s is %s; cancel it first (hpctl cancel %s), then clean it; nothing was removed", errkind.ErrUsage, r.ID, state, r.ID)
			}
			kept = append(kept, fmt.Sprintf("%s is %s (cancel it first)", r.ID, state))
			continue
		}
		if err := pipeline.CheckRemovable(r, all); err != nil {
			if named[r.ID] {
				return fmt.Errorf("%w: run %s cannot be cleaned: %v; nothing was removed", errkind.ErrUsage, r.ID, err)
			}
			kept = append(kept, fmt.Sprintf("%s: it cannot be cleaned: %v", r.ID, err))
			continue
		}
		it := cleanItem{run: r, state: state}
		if dir, ok := pipeline.LocalResultsDir(o.resultsDir, r.ID); ok {
			it.results = dir
		}
		items = append(items, it)
	}
	for _, k := range kept {
		fmt.Fprintf(e.stdout, "keeping %s\n", k)
	}
	if len(items) == 0 {
		fmt.Fprintln(e.stdout, "no runs match; nothing to remove")
		return nil
	}
	printCleanPlan(e.stdout, items, o.remote)
	if o.dryRun {
		fmt.Fprintln(e.stdout, "\ndry run: nothing was removed")
		return nil
	}
	if !o.yes {
		ok, err := confirm(e, fmt.Sprintf("\nremove these %d run(s)? [y/N] ", len(items)))
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(e.stdout, "nothing was removed")
			return nil
		}
	}
	return removeRuns(ctx, e, reg, items, o)
}

// ended: the run has no live job. UNKNOWN is a run whose jobs neither squeue (which
// lists every live job) nor sacct nor the run directory's markers know: long gone.
func ended(s jobs.State) bool { return s.Terminal() || s == jobs.StateUnknown }

func joinStates(states []jobs.State) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, " or ")
}

func printCleanPlan(w io.Writer, items []cleanItem, remote bool) {
	fmt.Fprintf(w, "would remove %d run(s):\n", len(items))
	tw := newTable("run", "state", "submitted", "removes")
	for _, it := range items {
		what := []string{"registry record"}
		if it.results != "" {
			what = append(what, it.results)
		}
		if remote {
			where := it.run.RunDir
			if it.run.Host != "" {
				where = it.run.Host + ":" + where
			}
			what = append(what, where)
		}
		tw.AppendRow([]any{it.run.ID, it.state, it.run.SubmittedAt.Local().Format("2006-01-02 15:04"), strings.Join(what, ", ")})
	}
	renderTable(w, tw)
	if !remote {
		fmt.Fprintln(w, "(their run directories on the cluster stay; --remote removes them too)")
	}
}

// confirm asks on a terminal; elsewhere it refuses, since nobody could answer.
func confirm(e *env, question string) (bool, error) {
	in := e.stdin
	if in == nil {
		in = os.Stdin
	}
	f, ok := in.(*os.File)
	if !ok || !isTerminal(f) {
		return false, fmt.Errorf("%w: not removing anything without confirmation, and standard input is not a terminal to ask on: rerun with --yes to remove the runs listed above (or --dry-run to only list them)", errkind.ErrUsage)
	}
	fmt.Fprint(e.stdout, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

// removeRuns removes each run's directories, then its record: a run whose files could
// not all be removed keeps its record, so it can be cleaned again.
func removeRuns(ctx context.Context, e *env, reg *registry.Registry, items []cleanItem, o cleanOptions) error {
	remote := map[string]pipeline.RemoveResult{}
	if o.remote {
		// One command per cluster for all its runs' directories.
		var runs []registry.Run
		for _, it := range items {
			runs = append(runs, it.run)
		}
		for _, g := range groupRuns(runs) {
			t := e.newTransport(g.host)
			res, err := pipeline.RemoveRunDirs(ctx, t, g.runs)
			t.Close()
			if err != nil {
				return fmt.Errorf("clean: %w", err)
			}
			for id, r := range res {
				remote[id] = r
			}
		}
	}
	var failed []string
	removed := 0
	for _, it := range items {
		id := it.run.ID
		if o.remote {
			if r := remote[id]; !r.Removed {
				failed = append(failed, fmt.Sprintf("%s: run directory %s not removed: %s", id, it.run.RunDir, r.Problem))
				continue
			}
		}
		if _, err := pipeline.RemoveLocalResults(o.resultsDir, id); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		if err := reg.Delete(ctx, id); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		removed++
		msg := "removed " + id
		if o.remote && remote[id].Absent {
			msg += " (its run directory was already gone)"
		}
		fmt.Fprintln(e.stdout, msg)
	}
	if len(failed) > 0 {
		return fmt.Errorf("clean removed %d of %d run(s); these keep their record:\n  %s", removed, len(items), strings.Join(failed, "\n  "))
	}
	return nil
}
