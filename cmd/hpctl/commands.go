package main

import (
	"sort"

	"github.com/urfave/cli/v2"
)

// Each command lives in its own file and registers itself here, so adding a command
// touches one file. order fixes where it appears in --help.
type commandSpec struct {
	order int
	build func(e *env) *cli.Command
}

// commandSpecs is named so as not to shadow the registry package in this package.
var commandSpecs []commandSpec

func register(order int, build func(e *env) *cli.Command) {
	commandSpecs = append(commandSpecs, commandSpec{order, build})
}

func commands(e *env) []*cli.Command {
	sort.SliceStable(commandSpecs, func(i, j int) bool { return commandSpecs[i].order < commandSpecs[j].order })
	out := make([]*cli.Command, 0, len(commandSpecs))
	for _, c := range commandSpecs {
		out = append(out, c.build(e))
	}
	return out
}

// outputFlag is shared by every command that can print JSON for scripts.
func outputFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"}
}

func checkOutput(c *cli.Context) (bool, error) {
	switch c.String("output") {
	case "table", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usageError(errorf("--output %q is not one of table, json", c.String("output")))
}
