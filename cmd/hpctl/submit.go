package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/pipeline"
)

func init() { register(30, submitCommand) }

type submitOptions struct {
	spec           string
	dryRun         bool
	noRuntimeCheck bool
	executor       string
	json           bool
}

func submitCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "submit an experiment's stages as dependent jobs",
		ArgsUsage: "SPEC",
		Description: `Validates SPEC, checks on the cluster that data.train and data.val each hold at least
two class folders and (Slurm, one sinfo call) that every stage's partition, CPUs,
memory, GPUs, nodes and time fit the cluster, and its account and QOS yours (one
sacctmgr call, only when the spec names them); a request that can never run is
refused there, with the spec position to change (exit 6). A container runtime, its GPU
support or an image file that is missing where hpctl submits is refused the same way
(exit 2); --no-runtime-check submits anyway, with warnings, for a login node that lacks
what the compute nodes have. Then it stages a new run
directory <workdir>/<run-id>/ (atomically), submits the stages in order, each later one
with --dependency=afterok on the jobs it depends on, and records the run in the local
registry. If a later submission fails, the jobs already
queued are cancelled: nothing is left orphaned. When sbatch refuses a job (its whole
message is shown), no run is recorded and the run directory is removed (exit 6).

Examples:
   hpctl submit configs/urban.yaml
   hpctl submit configs/urban.yaml --dry-run        # show the plan and scripts; submit nothing
   hpctl submit configs/demo.yaml --executor local  # run on this machine, no Slurm
   hpctl submit configs/urban.yaml -o json | jq -r .run_id`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "show what would be staged and submitted; change nothing"},
			&cli.StringFlag{Name: "executor", Usage: "auto, slurm or local (default: settings, then the spec, then auto)"},
			&cli.BoolFlag{Name: "no-runtime-check", Usage: "submit although the container runtime, its GPU support or its image look missing where hpctl submits (they are checked on the login node, which may lack what the compute nodes have); shown as warnings"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageError(errorf("submit needs exactly one SPEC file"))
			}
			return runSubmit(c.Context, e, submitOptions{spec: c.Args().First(), dryRun: c.Bool("dry-run"), noRuntimeCheck: c.Bool("no-runtime-check"), executor: c.String("executor"), json: asJSON})
		},
	}
}

// submitResult is submit's JSON output.
type submitResult struct {
	RunID    string            `json:"run_id"`
	RunDir   string            `json:"run_dir"`
	Executor string            `json:"executor"`
	DryRun   bool              `json:"dry_run,omitempty"`
	Jobs     []submitResultJb  `json:"jobs"`
	Files    []string          `json:"files,omitempty"`
	Scripts  map[string]string `json:"scripts,omitempty"`
	// Checked is what pre-flight checked the stages against (absent when it did not run).
	Checked  []string `json:"preflight,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Site lists the spec keys that site settings filled, and from where.
	Site []siteValue `json:"site_settings,omitempty"`
}

type siteValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	From  string `json:"from"`
}

type submitResultJb struct {
	Stage     string   `json:"stage"`
	JobID     string   `json:"job_id,omitempty"`
	DependsOn []string `json:"depends_on,omitempty"`
}

func runSubmit(ctx context.Context, e *env, o submitOptions) error {
	l, err := e.loadSpec(o.spec)
	if err != nil {
		return err
	}
	kind := o.executor
	if kind == "" {
		kind = e.settings.Executor
	}
	if kind == "" {
		kind = l.Spec.Executor
	}
	t := e.newTransport(l.Spec.Cluster.Host)
	defer t.Close()
	ex, err := e.newExecutor(ctx, kind, t)
	if err != nil {
		return err
	}
	var reg registry.Store // a dry run records nothing, so it opens nothing
	if !o.dryRun {
		r, err := e.openRegistry(ctx)
		if err != nil {
			return err
		}
		defer r.Close()
		reg = r
	}
	sub, err := pipeline.Submit(ctx, t, ex, reg, l, pipeline.SubmitOptions{DryRun: o.dryRun, NoRuntimeCheck: o.noRuntimeCheck, Version: buildVersion().Version})
	if sub != nil {
		// Before the error too: a skipped pre-flight explains a refusal sbatch made.
		for _, w := range sub.Warnings {
			fmt.Fprintf(e.stderr, "hpctl: warning: %s\n", w)
		}
	}
	if err != nil {
		return err
	}
	res := submitResult{RunID: sub.Run.ID, RunDir: sub.Run.RunDir, Executor: sub.Run.Executor, DryRun: o.dryRun, Warnings: sub.Warnings}
	if sub.Preflight != nil {
		res.Checked = sub.Preflight.Checked
	}
	for _, sv := range l.Site {
		res.Site = append(res.Site, siteValue(sv))
	}
	for _, s := range sub.Run.Stages {
		res.Jobs = append(res.Jobs, submitResultJb{Stage: s.Name, JobID: s.JobID, DependsOn: s.DependsOn})
	}
	if o.dryRun {
		res.Scripts = map[string]string{}
		for _, f := range sub.Files {
			res.Files = append(res.Files, f.Path)
			if strings.HasSuffix(f.Path, "/"+experiment.ScriptFile) {
				res.Scripts[f.Path] = string(f.Data)
			}
		}
	}
	if o.json {
		return writeJSON(e.stdout, res)
	}
	if o.dryRun {
		return printDryRun(e, sub, res)
	}
	fmt.Fprintf(e.stdout, "submitted run %s (%s)\n", sub.Run.ID, sub.Run.Executor)
	tw := newTable("stage", "job", "after")
	ids := map[string]string{}
	for _, s := range sub.Run.Stages {
		ids[s.Name] = s.JobID
		var after []string
		for _, d := range s.DependsOn {
			after = append(after, d+" ("+ids[d]+")")
		}
		tw.AppendRow([]any{s.Name, s.JobID, strings.Join(after, ", ")})
	}
	renderTable(e.stdout, tw)
	fmt.Fprintf(e.stdout, "run directory: %s\nfollow it with: hpctl status %s --watch\n", sub.Run.RunDir, sub.Run.ID)
	return nil
}

// dryRunTrials is how many of a sweep's trials (and their files) a dry run lists.
const dryRunTrials = 20

func printDryRun(e *env, sub *pipeline.Submission, res submitResult) error {
	p := sub.Plan
	fmt.Fprintf(e.stdout, "dry run: nothing staged, submitted or recorded\nrun %s (%s)\nrun directory: %s\n\n", p.RunID, sub.Run.Executor, p.RunDir)
	tw := newTable("stage", "after", "time", "gpus", "cpus", "mem", "partition", "command")
	for _, st := range p.Stages {
		tw.AppendRow([]any{st.Name, strings.Join(st.DependsOn, ","), st.Resources.Time, st.Resources.GPUs,
			st.Resources.CPUsPerTask, st.Resources.Mem, st.Resources.Partition, strings.Join(st.Command, " ")})
	}
	renderTable(e.stdout, tw)
	if len(res.Site) > 0 {
		fmt.Fprintln(e.stdout, "\nfrom your settings (the spec does not set these keys; a key in the spec wins):")
		ts := newTable("key", "value", "from")
		for _, sv := range res.Site {
			ts.AppendRow([]any{sv.Key, sv.Value, sv.From})
		}
		renderTable(e.stdout, ts)
	}
	if len(res.Checked) > 0 {
		fmt.Fprintln(e.stdout, "\npre-flight: every stage fits the cluster, checked against")
		for _, c := range res.Checked {
			fmt.Fprintf(e.stdout, "  %s\n", c)
		}
	}
	if n := len(p.Trials); n > 0 {
		fmt.Fprintf(e.stdout, "\nsweep: %d trials, each stage one array job", n)
		if p.MaxParallel > 0 {
			fmt.Fprintf(e.stdout, " (at most %d trials at once)", p.MaxParallel)
		}
		fmt.Fprintln(e.stdout)
		tt := newTable("trial", "values")
		for i, t := range p.Trials {
			if i == dryRunTrials {
				break
			}
			tt.AppendRow([]any{t.Index, sub.Run.TrialLabel(t.Index)})
		}
		renderTable(e.stdout, tt)
		if n > dryRunTrials {
			fmt.Fprintf(e.stdout, "(and %d more: trials.json in the run directory lists them all)\n", n-dryRunTrials)
		}
	}
	fmt.Fprintf(e.stdout, "\nfiles (%d):\n", len(res.Files))
	trialFiles := 0
	for _, f := range res.Files {
		if strings.HasPrefix(f, experiment.TrialsDir+"/") {
			if trialFiles++; trialFiles > dryRunTrials {
				continue
			}
		}
		fmt.Fprintf(e.stdout, "  %s\n", f)
	}
	if trialFiles > dryRunTrials {
		fmt.Fprintf(e.stdout, "  (and %d more under %s/)\n", trialFiles-dryRunTrials, experiment.TrialsDir)
	}
	for _, name := range slices.Sorted(maps.Keys(res.Scripts)) {
		fmt.Fprintf(e.stdout, "\n--- %s ---\n%s", name, res.Scripts[name])
	}
	return nil
}
