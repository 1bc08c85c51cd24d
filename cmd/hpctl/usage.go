package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/hpctl/hpctl/internal/suggest"
	"github.com/urfave/cli/v2"
)

// A mistyped command or flag is one line on stderr, with the nearest name and where the
// help is, and exit 2 (docs/exit-codes.md): urfave's default prints the whole help on
// stdout, which buries the error and pollutes a pipe.

// onUsageError replaces urfave's report of a flag that did not parse: the app's (flags
// before the command) and every command's.
func onUsageError(c *cli.Context, err error, _ bool) error {
	where := helpName(c)
	msg := err.Error()
	// Go's flag package names flags with one dash; hpctl's help uses two.
	msg = flagInMessage.ReplaceAllStringFunc(msg, func(m string) string {
		sub := flagInMessage.FindStringSubmatch(m)
		return sub[1] + dashed(sub[2])
	})
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		msg = name + " needs a value"
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		typed := dashed(strings.TrimLeft(name, "-"))
		var names []string
		for _, f := range visibleFlags(c) {
			for _, n := range f.Names() {
				names = append(names, dashed(n))
			}
		}
		msg = "unknown flag " + typed
		if near := suggest.Nearest(typed, names); near != "" {
			msg += " (did you mean " + near + "?)"
		}
	}
	return usageError(fmt.Errorf("%s; see %s --help", msg, where))
}

// flagInMessage finds a flag named in one of Go's flag errors: "for flag -last",
// "argument: -interval", "for -watch".
var flagInMessage = regexp.MustCompile(`(: |for |flag )-{1,2}(\w[\w-]*)`)

// commandNotFound reports an unknown command or subcommand, with the nearest one.
func commandNotFound(e *env) cli.CommandNotFoundFunc {
	return func(c *cli.Context, name string) {
		commands := c.App.Commands
		if c.Command != nil {
			commands = c.Command.Subcommands
		}
		var names []string
		for _, s := range commands {
			if !s.Hidden {
				names = append(names, s.Names()...)
			}
		}
		msg := fmt.Sprintf("unknown command %q", name)
		if near := suggest.Nearest(name, names); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		where := helpName(c)
		report(e, usageError(errors.New(msg+"; see "+where+" --help")))
		e.code = exitUsage
	}
}

// helpName is how the user names c's command: "hpctl", "hpctl status", "hpctl weights
// fetch".
func helpName(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	if len(names) == 0 || names[0] != c.App.Name {
		names = append([]string{c.App.Name}, names...)
	}
	return strings.Join(names, " ")
}

// visibleFlags are the flags accepted where c parses: its command's, and the global
// flags, which interspersed accepts anywhere on the line.
func visibleFlags(c *cli.Context) []cli.Flag {
	var out []cli.Flag
	if c.Command != nil {
		out = append(out, c.Command.Flags...)
	}
	return append(out, c.App.Flags...)
}

// dashed writes a flag name as it is typed: -o, --output.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
