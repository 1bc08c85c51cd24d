package main

import (
	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/jobs/local"
)

func init() { register(1000, localJobCommand) }

// localJobCommand is the local executor's supervisor: `hpctl __local-job <record>`, which
// the executor starts detached for each job. Hidden: people never type it.
func localJobCommand(*env) *cli.Command {
	return &cli.Command{
		Name:      local.SupervisorCommand,
		Usage:     "run one local job (started by the local executor)",
		ArgsUsage: "RECORD",
		Hidden:    true,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(errorf("%s needs exactly one job record", local.SupervisorCommand))
			}
			return local.Supervise(c.Context, c.Args().First())
		},
	}
}
