package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// leafCommands are every command that runs an action, with the names that reach it
// (["weights", "fetch"]).
func leafCommands(app *cli.App) map[string]*cli.Command {
	out := map[string]*cli.Command{}
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(slices.Clone(path), c.Name)
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			out[strings.Join(p, " ")] = c
		}
	}
	walk(nil, app.Commands)
	return out
}

// A mistyped flag is one line on stderr naming the flag meant and the help to read, exit
// 2, and nothing on stdout (urfave's default printed the whole help there).
func TestMistypedFlagIsOneLine(t *testing.T) {
	isolate(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status", "--wacth"}, []string{"did you mean --watch?", "hpctl status --help"}},
		{[]string{"status", "latest", "--wacth"}, []string{"did you mean --watch?", "hpctl status --help"}},
		{[]string{"weights", "fetch", "--mirorr", "x", "s.yaml"}, []string{"did you mean --mirror?", "hpctl weights fetch --help"}},
		{[]string{"submit", "--hots", "h", "s.yaml"}, []string{"did you mean --host?", "hpctl submit --help"}},
		{[]string{"status", "--interval"}, []string{"--interval needs a value", "hpctl status --help"}},
		{[]string{"--log-levle", "debug", "runs"}, []string{"did you mean --log-level?", "hpctl --help"}},
	} {
		stdout, stderr, code := hpctl(t, tc.args...)
		name := strings.Join(tc.args, " ")
		if code != exitUsage {
			t.Errorf("hpctl %s: exit %d, want %d", name, code, exitUsage)
		}
		if stdout != "" {
			t.Errorf("hpctl %s: stdout is not empty:\n%s", name, stdout)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("hpctl %s: stderr is not one line:\n%s", name, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("hpctl %s: stderr lacks %q: %s", name, w, stderr)
			}
		}
	}
}

func TestUnknownCommandIsOneLine(t *testing.T) {
	isolate(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"stauts"}, []string{`unknown command "stauts"`, "did you mean status?", "hpctl --help"}},
		{[]string{"fetch-result", "latest"}, []string{"did you mean fetch-results?", "hpctl --help"}},
		{[]string{"weights", "fecth", "s.yaml"}, []string{"did you mean fetch?", "hpctl weights --help"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"; see hpctl --help`}},
	} {
		stdout, stderr, code := hpctl(t, tc.args...)
		name := strings.Join(tc.args, " ")
		if code != exitUsage || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("hpctl %s: exit %d, stdout %q, stderr not one line: %q", name, code, stdout, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("hpctl %s: stderr lacks %q: %s", name, w, stderr)
			}
		}
	}
}

// Global flags work after the command, before or after its arguments, for every command:
// the app's Before refuses the log level "loud", which it can only have read as the
// global --log-level (an unknown flag would be refused differently, by the command).
func TestGlobalFlagsAfterEveryCommand(t *testing.T) {
	isolate(t)
	for path := range leafCommands(newApp(&env{})) {
		cmd := strings.Fields(path)
		for _, tail := range [][]string{
			{"--log-level", "loud", "ARG"},
			{"ARG", "--log-level", "loud"},
			{"ARG", "--log-level=loud"},
			{"ARG", "--host", "h", "--log-level", "loud", "ARG2"},
		} {
			args := append(slices.Clone(cmd), tail...)
			stdout, stderr, code := hpctl(t, args...)
			if code != exitUsage || !strings.Contains(stderr, `log level "loud" is not one of`) || stdout != "" {
				t.Errorf("hpctl %s: exit %d, stdout %q, stderr %q: --log-level after the command was not read as the global flag",
					strings.Join(args, " "), code, stdout, stderr)
			}
		}
	}
}

// The reproduction of hpctl#14: `weights fetch --host H SPEC` said "flag provided but
// not defined: -host". The host is used: the fetch goes over ssh to it (unreachable,
// exit 3, named), where without --host it runs here and fails on the corrupt mirror.
func TestWeightsFetchHostAfterTheCommand(t *testing.T) {
	dir := isolate(t)
	src, err := os.ReadFile("../../configs/urban.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "spec.yaml")
	body := strings.Replace(string(src), "weights_cache: $HOME/.cache/hpctl/weights", "weights_cache: "+filepath.Join(dir, "cache"), 1)
	if err := os.WriteFile(spec, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	const host = "no-such-host.invalid"
	for _, args := range [][]string{
		{"weights", "fetch", "--host", host, spec},
		{"weights", "fetch", spec, "--host", host},
		{"weights", "fetch", spec, "--host=" + host, "--mirror", "http://127.0.0.1:1"},
		{"weights", "--host", host, "fetch", spec},
	} {
		_, stderr, code := hpctl(t, args...)
		if code != exitUnreachable || !strings.Contains(stderr, "ssh "+host) {
			t.Errorf("hpctl %s: exit %d, want %d through ssh %s:\n%s", strings.Join(args, " "), code, exitUnreachable, host, stderr)
		}
	}
}

// flagValue is a value each kind of flag accepts.
func flagValue(t *testing.T, f cli.Flag) (string, bool) {
	t.Helper()
	switch f.(type) {
	case *cli.BoolFlag:
		return "", false
	case *cli.StringFlag:
		return "v", true
	case *cli.IntFlag, *cli.IntSliceFlag:
		return "3", true
	case *cli.DurationFlag:
		return "2s", true
	case *cli.GenericFlag:
		switch f.(*cli.GenericFlag).Value.(type) {
		case *durationValue, *ageValue:
			return "2s", true
		}
	}
	t.Fatalf("flag %v: no test value for a %T; add one", f.Names(), f)
	return "", false
}

// Every flag of every command, and every global flag, is read wherever it is given:
// before the arguments, between them, after them, by its name or alias, and the
// arguments stay exactly the arguments.
func TestEveryFlagBeforeAndAfterArguments(t *testing.T) {
	isolate(t)
	globals := newApp(&env{}).Flags
	checked := 0
	for path := range leafCommands(newApp(&env{})) {
		probe := newApp(&env{})
		cmd := leafCommands(probe)[path]
		for _, f := range append(slices.Clone(cmd.Flags), globals...) {
			for _, n := range f.Names() {
				name := dashed(n)
				if n == "config" {
					continue // the settings file must exist; TestSettingsPrecedence reads it
				}
				val, takes := flagValue(t, f)
				given := []string{name}
				if takes {
					given = append(given, val)
				}
				for at := 0; at <= 2; at++ {
					args := append(strings.Fields(path), "A1", "A2")
					args = slices.Insert(args, len(strings.Fields(path))+at, given...)
					var set bool
					var got []string
					var value string
					e := &env{}
					app := newApp(e)
					var out, errb bytes.Buffer
					e.stdout, e.stderr = &out, &errb
					app.Writer, app.ErrWriter = &out, &errb
					app.Before = nil
					leafCommands(app)[path].Action = func(c *cli.Context) error {
						set, got, value = c.IsSet(n), c.Args().Slice(), fmt.Sprint(c.Value(n))
						if is := c.IntSlice(n); len(is) > 0 {
							value = fmt.Sprint(is[0])
						}
						return nil
					}
					if err := app.Run(interspersed(app, append([]string{"hpctl"}, args...))); err != nil {
						t.Errorf("hpctl %s: %v %s", strings.Join(args, " "), err, errb.String())
						continue
					}
					checked++
					if !set || !slices.Equal(got, []string{"A1", "A2"}) || (takes && value != val) {
						t.Errorf("hpctl %s: %s set %v (value %q), args %q; want set, %q, [A1 A2]", strings.Join(args, " "), name, set, value, got, val)
					}
				}
			}
		}
	}
	if checked < 3*len(leafCommands(newApp(&env{}))) {
		t.Fatalf("only %d command lines checked", checked)
	}
	t.Logf("%d command lines checked", checked)
}
