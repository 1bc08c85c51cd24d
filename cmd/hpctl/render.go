package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/render"
)

func init() { register(25, renderCommand) }

type renderOptions struct {
	spec  string
	out   string
	runID string
}

func renderCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "render",
		Usage:     "write exactly what a submission would stage, without submitting",
		ArgsUsage: "SPEC",
		Description: `Writes the run directory a submission would stage: one sbatch script per stage
(stages/<stage>/job.sh), the spec as written, the resolved spec the trainer reads, and the
trainer itself. Paths starting with ~/ or $HOME/ are resolved against your home on the
cluster (over ssh when a host is set), as submit does; the data folders are not checked
(submit checks them on the cluster). Nothing is written when the spec is invalid, and an
interrupted render leaves nothing under DIR.

Examples:
   hpctl render configs/urban.yaml
   hpctl render configs/urban.yaml --out /tmp/urban-scripts
   hpctl render configs/urban.yaml --run-id urban-test && less hpctl-render/urban-test/stages/frozen/job.sh`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "directory to write (must not exist; default hpctl-render/<run-id>)"},
			&cli.StringFlag{Name: "run-id", Usage: "run id the scripts name (default: a new one, as submit would make)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(errorf("render needs exactly one SPEC file"))
			}
			return runRender(c.Context, e, renderOptions{spec: c.Args().First(), out: c.String("out"), runID: c.String("run-id")})
		},
	}
}

func runRender(ctx context.Context, e *env, o renderOptions) error {
	l, err := e.loadSpec(o.spec)
	if err != nil {
		return err
	}
	if o.runID == "" {
		o.runID = pipeline.NewRunID(l.Spec.Name, time.Now())
	}
	if err := experiment.CheckName(o.runID); err != nil {
		return usageError(fmt.Errorf("--run-id: %w", err))
	}
	if o.out == "" {
		o.out = filepath.Join("hpctl-render", o.runID)
	}
	if _, err := os.Stat(o.out); err == nil {
		return usageError(fmt.Errorf("%s already exists; choose another --out", o.out))
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("render: %w", err)
	}
	t := e.newTransport(l.Spec.Cluster.Host)
	defer t.Close()
	prep, err := pipeline.Prepare(ctx, t, l, pipeline.PrepareOptions{RunID: o.runID})
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	plan, files := prep.Plan, prep.Files
	if err := render.WriteDir(files, o.out); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	fmt.Fprintf(e.stdout, "rendered run %s into %s (on the cluster: %s)\n", plan.RunID, o.out, plan.RunDir)
	for _, st := range plan.Stages {
		fmt.Fprintf(e.stdout, "  %s\n", filepath.Join(o.out, filepath.FromSlash(st.Paths.Script)))
	}
	return nil
}
