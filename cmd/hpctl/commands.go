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

var registry []commandSpec

func register(order int, build func(e *env) *cli.Command) {
	registry = append(registry, commandSpec{order, build})
}

func commands(e *env) []*cli.Command {
	sort.SliceStable(registry, func(i, j int) bool { return registry[i].order < registry[j].order })
	out := make([]*cli.Command, 0, len(registry))
	for _, c := range registry {
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
