package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/registry"
)

// The completion scripts, loaded in real bash, zsh and fish, complete commands, a
// command's flags, and run ids from the registry; a SPEC argument is left to the shell's
// file completion (nothing offered, not "help").
func TestCompletionScripts(t *testing.T) {
	dir := isolate(t)
	const runID = "cmpl-20261203-000000-abcd"
	reg, err := registry.Open(context.Background(), filepath.Join(dir, "state", "hpctl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(context.Background(), registry.Run{ID: runID, SpecName: "cmpl", RunDir: "/r", Executor: "local",
		Status: registry.RunSubmitted, SubmittedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	reg.Close()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	if err := os.Symlink(os.Args[0], filepath.Join(bin, "hpctl")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "HPCTL_TEST_AS_MAIN=1", "PATH="+bin+":"+os.Getenv("PATH"))
	shell := func(name string, args ...string) string {
		t.Helper()
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("HPCTL_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s is required (HPCTL_REQUIRE_TOOLS=1): %v", name, err)
			}
			t.Skipf("%s not installed", name)
		}
		cmd := exec.Command(name, args...)
		cmd.Env, cmd.Dir = env, dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	lines := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[strings.TrimSpace(strings.SplitN(l, "\t", 2)[0])] = true
		}
		return m
	}
	type want struct {
		line   string
		has    []string
		hasNot []string
	}
	cases := []want{
		{"hpctl status ", []string{runID, "latest"}, nil},
		{"hpctl cancel ", []string{runID}, nil},
		{"hpctl sta", []string{"status"}, nil},
		{"hpctl status --wa", []string{"--watch"}, []string{runID}},
		{"hpctl submit ", nil, []string{"help", runID}},
	}
	t.Run("bash", func(t *testing.T) {
		for _, c := range cases {
			words := strings.Split(c.line, " ")
			script := `source <(hpctl completion bash); COMP_WORDS=(` + strings.Join(quoteAll(words), " ") + `); COMP_CWORD=` +
				strconv.Itoa(len(words)-1) + `; _hpctl_complete; printf '%s\n' "${COMPREPLY[@]}"`
			check(t, "bash", c.line, lines(shell("bash", "-c", script)), c.has, c.hasNot)
		}
	})
	t.Run("zsh", func(t *testing.T) {
		for _, c := range cases {
			words := strings.Split(c.line, " ")
			// compdef and the completion system's _describe/_files stand in for zsh's
			// interactive machinery; _hpctl is the script's own function.
			script := `compdef(){}; _describe(){ print -l -- ${(P)${@[-1]}} }; _files(){}; source <(hpctl completion zsh); words=(` +
				strings.Join(quoteAll(words), " ") + `); CURRENT=` + strconv.Itoa(len(words)) + `; _hpctl`
			got := lines(shell("zsh", "-c", script))
			// zsh filters by prefix itself; the script offers every candidate.
			check(t, "zsh", c.line, got, c.has, c.hasNot)
		}
	})
	t.Run("fish", func(t *testing.T) {
		for _, c := range cases {
			got := lines(shell("fish", "-c", `hpctl completion fish | source; complete -C "`+c.line+`"`))
			check(t, "fish", c.line, got, c.has, c.hasNot)
		}
	})
}

func check(t *testing.T, sh, line string, got map[string]bool, has, hasNot []string) {
	t.Helper()
	for _, w := range has {
		if !got[w] {
			t.Errorf("%s: %q completes without %q: %v", sh, line, w, got)
		}
	}
	for _, w := range hasNot {
		if got[w] {
			t.Errorf("%s: %q completes with %q", sh, line, w)
		}
	}
}

func quoteAll(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = "'" + w + "'"
	}
	return out
}
