package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/template"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/fsutil"
	"github.com/hpctl/hpctl/templates"
)

func init() { register(10, initCommand) }

type initOptions struct {
	name  string
	file  string
	force bool
}

func initCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "write a commented starter spec",
		ArgsUsage: "NAME",
		Description: `Writes NAME.yaml (or --file) with every key at its default and a comment on each.

Examples:
   hpctl init urban-rural
   hpctl init flowers --file configs/flowers.yaml`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Usage: "where to write (default NAME.yaml)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing file"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(errorf("init needs exactly one NAME"))
			}
			o := initOptions{name: c.Args().First(), file: c.String("file"), force: c.Bool("force")}
			if o.file == "" {
				o.file = o.name + ".yaml"
			}
			return runInit(e, o)
		},
	}
}

// starter is what the starter template is filled with. The lists of choices come from
// the code that accepts them, so a backbone or runtime added there is offered here.
type starter struct {
	Name, File string
	// Backbones are experiment.Backbones' names; Runtimes, containers.Names().
	Backbones, Runtimes string
}

func starterData(o initOptions) starter {
	return starter{
		Name:      o.name,
		File:      o.file,
		Backbones: strings.Join(slices.Sorted(maps.Keys(experiment.Backbones)), ", "),
		Runtimes:  strings.Join(containers.Names(), ", "),
	}
}

func runInit(e *env, o initOptions) error {
	tmpl, err := template.ParseFS(templates.FS, "starter.yaml.tmpl")
	if err != nil {
		return fmt.Errorf("starter template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, starterData(o)); err != nil {
		return fmt.Errorf("starter template: %w", err)
	}
	// The starter must be a valid spec: a bad NAME is reported before anything is written.
	l, err := experiment.Parse(o.file, buf.Bytes())
	if err == nil {
		err = l.Validate()
	}
	if err != nil {
		return usageError(fmt.Errorf("%q cannot be an experiment name: use letters, digits, '.', '_' and '-'", o.name))
	}
	if !o.force {
		if _, err := os.Stat(o.file); err == nil {
			return usageError(fmt.Errorf("%s already exists; use --force to overwrite it", o.file))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := fsutil.WriteFileAtomic(o.file, buf.Bytes(), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init: %w: %w", errkind.ErrNotFound, err)
		}
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s; check it with: hpctl validate %s\n", o.file, o.file)
	return nil
}
