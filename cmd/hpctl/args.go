package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed reorders a command line the way people type it into the one urfave/cli v2
// parses. urfave stops parsing flags at a command's first argument and knows the global
// flags (app.Flags) only before the command, so:
//   - a command's flags move ahead of its arguments (`hpctl submit configs/urban.yaml
//     --dry-run`);
//   - global flags given after the command move before it (`hpctl weights fetch --host
//     login configs/urban.yaml`), as gh and kubectl accept them.
//
// Flags that take a value keep it; "--" ends flags. A flag that is neither the command's
// nor global stays with the command, which reports it. A flag the command defines wins
// over a global of the same name. The line is left alone for an unknown command (urfave
// reports it) and for shell completion (urfave reads its flag as the last argument).
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	var (
		globals    []string     // app flags, wherever they were given
		path       []string     // command names, with the flags of a parent command
		flags      []string     // the deepest command's flags
		positional []string     // its arguments
		cmd        *cli.Command // nil until the command is named
	)
	rest := args[1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			if cmd == nil {
				return args
			}
			positional = append(positional, rest[j:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			var owner []cli.Flag
			dst := &flags
			switch {
			case cmd != nil && findFlag(cmd.Flags, a) != nil:
				owner = cmd.Flags
			case findFlag(app.Flags, a) != nil:
				owner, dst = app.Flags, &globals
			case cmd == nil:
				dst = &globals
			}
			*dst = append(*dst, a)
			if takesValue(owner, a) && j+1 < len(rest) {
				j++
				*dst = append(*dst, rest[j])
			}
			continue
		}
		// The command, then subcommands (`hpctl weights fetch SPEC --mirror URL`), are the
		// names given before the first argument.
		if len(positional) == 0 {
			var sub *cli.Command
			if cmd == nil {
				if sub = app.Command(a); sub == nil {
					return args
				}
			} else {
				sub = cmd.Command(a)
			}
			if sub != nil {
				// Flags given before a subcommand's name are its parent's.
				path = append(append(path, flags...), a)
				flags, cmd = nil, sub
				continue
			}
		}
		positional = append(positional, a)
	}
	if cmd == nil {
		return args
	}
	if len(positional) > 0 && positional[0] != "--" && len(flags) > 0 {
		// Arguments after the moved flags: mark where flags end, so an argument that looks
		// like a flag stays an argument. The user's own "--" is then redundant.
		for k, p := range positional {
			if p == "--" {
				positional = append(positional[:k:k], positional[k+1:]...)
				break
			}
		}
		positional = append([]string{"--"}, positional...)
	}
	out := append([]string{args[0]}, globals...)
	out = append(out, path...)
	out = append(out, flags...)
	return append(out, positional...)
}

// findFlag returns the flag of flags that arg (-n, --name or --name=value) names, or nil.
func findFlag(flags []cli.Flag, arg string) cli.Flag {
	name := strings.TrimLeft(arg, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name = name[:i]
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether arg names a flag of flags that expects a separate value.
func takesValue(flags []cli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	if dg, ok := findFlag(flags, arg).(cli.DocGenerationFlag); ok {
		return dg.TakesValue()
	}
	return false
}
