package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

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
		if near := nearest(typed, names); near != "" {
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
		if near := nearest(name, names); near != "" {
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

// nearest returns the candidate closest to typed when it is close enough to be what was
// meant (a transposition, a missing or extra letter or two, or a prefix), else "".
func nearest(typed string, candidates []string) string {
	best, bestD := "", -1
	bare := strings.TrimLeft(typed, "-")
	for _, c := range candidates {
		cb := strings.TrimLeft(c, "-")
		d := editDistance(bare, cb)
		if len(bare) >= 2 && strings.HasPrefix(cb, bare) {
			d = 1
		}
		// At most one edit in three letters: "-x" is not "-o", "stauts" is "status".
		if 3*d > max(len(bare), len(cb)) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent letters each count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
