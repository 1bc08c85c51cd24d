package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/internal/config"
	"github.com/hpctl/hpctl/internal/registry"
)

func init() { register(95, completionCommand) }

// The scripts ask hpctl itself what may come next (urfave/cli's --generate-bash-completion):
// commands, a command's flags after a "-", run ids (and "latest") where a RUN goes, and the
// shell's own file completion for SPEC files.
const (
	bashCompletion = `# hpctl completion for bash: source <(hpctl completion bash)
_hpctl_complete() {
	local cur opts
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	if [[ $cur == -* ]]; then
		opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
}
complete -o default -o bashdefault -F _hpctl_complete hpctl
`
	zshCompletion = `#compdef hpctl
# hpctl completion for zsh: source <(hpctl completion zsh), after compinit
_hpctl() {
	local -a opts
	local cur=${words[CURRENT]}
	if [[ $cur == -* ]]; then
		opts=("${(@f)$(${words[1,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(${words[1,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
	fi
	opts=(${opts:#})
	if (( ${#opts} )); then
		_describe 'hpctl' opts
	else
		_files
	fi
}
compdef _hpctl hpctl
`
	fishCompletion = `# hpctl completion for fish: hpctl completion fish | source
function __hpctl_complete
	set -l words (commandline -opc)
	set -l cur (commandline -ct)
	if string match -q -- '-*' $cur
		$words $cur --generate-bash-completion 2>/dev/null
	else
		$words --generate-bash-completion 2>/dev/null
	end
end
complete -c hpctl -a '(__hpctl_complete)'
`
)

func completionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "SHELL",
		Description: `Prints a script that completes hpctl's commands, flags and run ids (from the
registry) in your shell; SPEC arguments complete as files.

Examples:
   source <(hpctl completion bash)          # in ~/.bashrc
   source <(hpctl completion zsh)           # in ~/.zshrc, after compinit
   hpctl completion fish | source           # in ~/.config/fish/config.fish`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(errorf("completion needs exactly one SHELL: bash, zsh or fish"))
			}
			script, ok := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[c.Args().First()]
			if !ok {
				return usageError(fmt.Errorf("completion: %q is not bash, zsh or fish", c.Args().First()))
			}
			_, err := fmt.Fprint(e.stdout, script)
			return err
		},
	}
}

// completeRuns is the completion of a command taking RUN arguments: its flags after a
// "-", else "latest" and the run ids in the registry, newest first. It runs without the
// app's Before hook (urfave/cli skips it while completing), so it reads the settings
// itself; a registry it cannot open completes nothing.
func completeRuns(c *cli.Context) {
	// The word being completed comes last before --generate-bash-completion; flags are
	// parsed away from c.Args(), so os.Args it is, as urfave/cli's own completion reads.
	if n := len(os.Args); n > 2 && strings.HasPrefix(os.Args[n-2], "-") {
		cli.DefaultCompleteWithFlags(c.Command)(c)
		return
	}
	flags := map[string]string{}
	if c.IsSet("state-dir") {
		flags["state-dir"] = c.String("state-dir")
	}
	s, err := config.Load(c.String("config"), flags)
	if err != nil {
		return
	}
	ctx := context.Background()
	reg, err := registry.Open(ctx, s.StateDir)
	if err != nil {
		return
	}
	defer reg.Close()
	runs, err := reg.List(ctx)
	if err != nil {
		return
	}
	fmt.Fprintln(c.App.Writer, "latest")
	for _, r := range runs {
		fmt.Fprintln(c.App.Writer, r.ID)
	}
}

// completeFlagsOrFiles is the completion of every other command: its flags after a "-",
// else nothing, so the shell completes file names (SPEC files). urfave/cli's default
// would offer "help" there.
func completeFlagsOrFiles(c *cli.Context) {
	if n := len(os.Args); n > 2 && strings.HasPrefix(os.Args[n-2], "-") {
		cli.DefaultCompleteWithFlags(c.Command)(c)
	}
}

// withCompletion gives every leaf command without a completion of its own
// completeFlagsOrFiles.
func withCompletion(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		if len(c.Subcommands) > 0 {
			withCompletion(c.Subcommands)
		} else if c.BashComplete == nil {
			c.BashComplete = completeFlagsOrFiles
		}
	}
	return cmds
}
