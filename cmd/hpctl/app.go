package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/internal/config"
	"github.com/hpctl/hpctl/internal/logging"
	"github.com/hpctl/hpctl/jobs/slurm"
	"github.com/hpctl/hpctl/transport"
)

// env is what every command gets: where to write, hpctl's settings and the logger. It is
// filled in by the app's Before hook, after flags are parsed.
type env struct {
	// stdin is where a command asks for confirmation (clean); nil is os.Stdin.
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	settings config.Settings
	log      zerolog.Logger
	// code overrides the exit code where urfave/cli gives no error to map (an unknown
	// command).
	code int

	// What commands reach the world through, beyond settings; tests set them (runEnv)
	// instead of patching package variables.
	//
	// wrapTransport, when set, wraps every transport the commands build (to count the
	// commands run through one, or to inject a fault Slurm cannot produce on demand).
	wrapTransport func(transport.Transport) transport.Transport
	// slurm are the Slurm executor's options (tests shorten its retries).
	slurm slurm.Options
}

// run is main without os.Exit.
func run(args []string, stdout, stderr io.Writer) int {
	return runEnv(&env{stdout: stdout, stderr: stderr}, args)
}

// runEnv runs the command line with e's writers and dependencies.
func runEnv(e *env, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e.log = zerolog.Nop()
	app := newApp(e)
	code := exitOK
	app.ExitErrHandler = func(_ *cli.Context, err error) {
		if err != nil {
			code = report(e, err)
		}
	}
	if err := app.RunContext(ctx, interspersed(app, args)); err != nil && code == exitOK {
		// Flag parsing errors reach here without ExitErrHandler.
		code = report(e, err)
	}
	if code == exitOK && e.code != 0 {
		code = e.code
	}
	return code
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:  "hpctl",
		Usage: "run transfer-learning pipelines on Slurm GPU clusters",
		Description: `hpctl renders one YAML experiment into sbatch jobs (a frozen-backbone stage, then a
fine-tuning stage that Slurm starts only after the first succeeded), submits them,
reports where they stand, and gathers accuracy logs, metrics, checkpoints and plots.

   hpctl submit configs/urban.yaml
   hpctl status
   hpctl fetch-results

Settings: flags > HPCTL_* environment > ~/.config/hpctl/config.yaml > defaults.
Exit codes: docs/exit-codes.md.`,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "settings file (default ~/.config/hpctl/config.yaml)", EnvVars: []string{"HPCTL_CONFIG"}},
			&cli.StringFlag{Name: "log-level", Usage: "trace, debug, info, warn or error"},
			&cli.StringFlag{Name: "log-format", Usage: "auto (console on a terminal), console or json"},
			&cli.StringFlag{Name: "state-dir", Usage: "where the run registry lives (default $XDG_STATE_HOME/hpctl)"},
			&cli.StringFlag{Name: "host", Usage: "reach the cluster over ssh at this host (overrides the spec's cluster.host)"},
		},
		Before: func(c *cli.Context) error {
			flags := map[string]string{}
			for _, k := range []string{"log-level", "log-format", "state-dir", "host"} {
				if c.IsSet(k) {
					flags[k] = c.String(k)
				}
			}
			s, err := config.Load(c.String("config"), flags)
			if err != nil {
				return usageError(err)
			}
			e.settings = s
			l, err := logging.New(e.stderr, s.LogLevel, s.LogFormat)
			if err != nil {
				return usageError(err)
			}
			e.log = l
			return nil
		},
		Commands:        withCompletion(commands(e)),
		OnUsageError:    onUsageError,
		CommandNotFound: commandNotFound(e),
	}
	// Every command reports a bad flag in one line, as the app does.
	var hook func([]*cli.Command)
	hook = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				c.OnUsageError = onUsageError
			}
			hook(c.Subcommands)
		}
	}
	hook(app.Commands)
	return app
}
