package main

import (
	"fmt"

	"github.com/hpctl/hpctl/experiment"
	"github.com/urfave/cli/v2"
)

func init() { register(20, validateCommand) }

type validateOptions struct {
	specs []string
}

func validateCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check experiment specs and report every problem with file:line:col",
		ArgsUsage: "SPEC...",
		Description: `Reads each spec, checks keys, types and values, and prints every problem at once.
Data folders are checked on the cluster at submit, not here.

Examples:
   hpctl validate configs/urban.yaml
   hpctl validate configs/*.yaml`,
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError(errorf("validate needs at least one SPEC file"))
			}
			return runValidate(e, validateOptions{specs: c.Args().Slice()})
		},
	}
}

func runValidate(e *env, o validateOptions) error {
	var all experiment.SpecError
	for _, f := range o.specs {
		l, err := e.loadSpec(f)
		if err != nil {
			se, ok := err.(*experiment.SpecError)
			if !ok {
				return err
			}
			all.Problems = append(all.Problems, se.Problems...)
			continue
		}
		trials := ""
		if l.Sweep != nil {
			trials = fmt.Sprintf(", a sweep of %d trials", len(l.Sweep.Trials))
		}
		fmt.Fprintf(e.stdout, "%s: ok (%s, %d stages%s)\n", f, l.Spec.Name, len(l.Spec.Stages), trials)
	}
	if len(all.Problems) > 0 {
		return &all
	}
	return nil
}
