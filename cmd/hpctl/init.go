package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/fsutil"
	"github.com/hpctl/hpctl/jobs/slurm"
	"github.com/hpctl/hpctl/templates"
)

func init() { register(10, initCommand) }

type initOptions struct {
	name    string
	file    string
	force   bool
	offline bool
}

func initCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "write a commented starter spec",
		ArgsUsage: "NAME",
		Description: `Writes NAME.yaml (or --file) with every key at its default and a comment on each.

The slurm: resources are sized for the cluster: when one is reachable (--host or the
host setting, over ssh; else sinfo on this machine) hpctl init asks sinfo (one call)
for its default partition and sizes the request to one of its nodes (up to 1 GPU, 8
CPUs and 32G per GPU, within the partition's time limit). Otherwise, or with --offline,
it writes modest values that fit a small node (1 GPU, 4 CPUs, 16G).

Examples:
   hpctl init urban-rural
   hpctl --host login.cluster init flowers --file configs/flowers.yaml`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "file", Usage: "where to write (default NAME.yaml)"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing file"},
			&cli.BoolFlag{Name: "offline", Usage: "do not ask the cluster; write modest resources"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(errorf("init needs exactly one NAME"))
			}
			o := initOptions{name: c.Args().First(), file: c.String("file"), force: c.Bool("force"), offline: c.Bool("offline")}
			if o.file == "" {
				o.file = o.name + ".yaml"
			}
			return runInit(c.Context, e, o)
		},
	}
}

// starter is what the starter template is filled with. The lists of choices come from
// the code that accepts them, so a backbone or runtime added there is offered here.
type starter struct {
	Name, File string
	// Backbones are experiment.Backbones' names; Runtimes, containers.Names().
	Backbones, Runtimes string
	Slurm               starterSlurm
}

// starterSlurm is the starter's request of Slurm, and where it comes from (comment lines).
type starterSlurm struct {
	Partition, Time, Mem string
	GPUs, CPUs           int
	Source               []string
}

// modestSlurm fits a small node (the test cluster's: 4 CPUs, 22G, 2 GPUs) rather than a
// large GPU node: a starter that asks more than any node has never starts.
var modestSlurm = starterSlurm{Time: "12:00:00", GPUs: 1, CPUs: 4, Mem: "16G", Source: []string{
	"No cluster was asked when this file was written: these are modest values that fit a",
	"small node; hpctl init --host LOGIN sizes them for your cluster's default partition.",
}}

func starterData(o initOptions, sl starterSlurm) starter {
	return starter{
		Name:      o.name,
		File:      o.file,
		Backbones: strings.Join(slices.Sorted(maps.Keys(experiment.Backbones)), ", "),
		Runtimes:  strings.Join(containers.Names(), ", "),
		Slurm:     sl,
	}
}

// siteSlurm sizes the starter's request for the cluster's default partition, from one
// sinfo call through the same transport as every command (--host, the host setting, or
// this machine). It returns modestSlurm and why when no cluster answers.
func (e *env) siteSlurm(ctx context.Context) (starterSlurm, error) {
	t := e.newTransport("")
	defer t.Close()
	// One try, and not long: init must not keep a user without Slurm waiting.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	parts, err := slurm.New(t, slurm.Options{Retry: slurm.Retry{Attempts: 1}}).Partitions(ctx)
	if err != nil {
		return modestSlurm, err
	}
	p := parts[0]
	for _, q := range parts {
		if q.Default {
			p = q
		}
	}
	sl := starterSlurm{Partition: p.Name, Time: "12:00:00", GPUs: min(1, p.GPUs)}
	per := max(sl.GPUs, 1)
	sl.CPUs = min(8*per, max(p.CPUs, 1))
	if p.MaxCPUsPerNode > 0 {
		sl.CPUs = min(sl.CPUs, p.MaxCPUsPerNode)
	}
	// Three quarters of the node, at most 32G per GPU: the rest is the system's.
	mem := min(int64(32*1024*per), p.MemMB*3/4)
	if mem >= 2048 {
		sl.Mem = fmt.Sprintf("%dG", mem/1024)
	} else {
		sl.Mem = fmt.Sprintf("%dM", max(mem, 1))
	}
	// A shorter partition limit, unless so short that the stop signal (signal_before,
	// 300 s) would come as the job starts: pre-flight then says so.
	if p.TimeSeconds > 600 && p.TimeSeconds < 12*3600 {
		sl.Time = p.Time
	}
	def := ""
	if p.Default {
		def = ", the default"
	}
	where := "on this machine"
	if h, ok := strings.CutPrefix(t.Name(), "ssh:"); ok {
		where = "on " + h
	}
	sl.Source = []string{
		fmt.Sprintf("Sized for partition %s%s (sinfo %s when this file was written): %d node(s),", p.Name, def, where, p.Nodes),
		fmt.Sprintf("its best for training with %d GPU(s), %d CPUs, %dM of memory; time limit %s.", p.GPUs, p.CPUs, p.MemMB, p.Time),
	}
	return sl, nil
}

func runInit(ctx context.Context, e *env, o initOptions) error {
	sl := modestSlurm
	if !o.offline {
		var err error
		if sl, err = e.siteSlurm(ctx); err != nil {
			fmt.Fprintf(e.stderr, "hpctl: note: no cluster answered (%v); the starter asks modest resources (1 GPU, 4 CPUs, 16G): check them with hpctl submit --dry-run\n", err)
		}
	}
	buf, err := renderStarter(o, sl)
	if err == nil {
		// The starter must be a valid spec: a bad NAME is reported before anything is written.
		err = checkStarter(o, buf)
	}
	if err != nil && sl.Partition != "" {
		// What the site said made it invalid (a partition name hpctl does not accept):
		// the modest values, then.
		sl = modestSlurm
		if buf, err = renderStarter(o, sl); err == nil {
			err = checkStarter(o, buf)
		}
	}
	if err != nil {
		return err
	}
	if !o.force {
		if _, err := os.Stat(o.file); err == nil {
			return usageError(fmt.Errorf("%s already exists; use --force to overwrite it", o.file))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := fsutil.WriteFileAtomic(o.file, buf, 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("init: %w: %w", errkind.ErrNotFound, err)
		}
		return fmt.Errorf("init: %w", err)
	}
	fmt.Fprintf(e.stdout, "wrote %s; check it with: hpctl validate %s (and against the cluster: hpctl submit --dry-run %s)\n", o.file, o.file, o.file)
	return nil
}

func renderStarter(o initOptions, sl starterSlurm) ([]byte, error) {
	tmpl, err := template.ParseFS(templates.FS, "starter.yaml.tmpl")
	if err != nil {
		return nil, fmt.Errorf("starter template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, starterData(o, sl)); err != nil {
		return nil, fmt.Errorf("starter template: %w", err)
	}
	return buf.Bytes(), nil
}

func checkStarter(o initOptions, b []byte) error {
	l, err := experiment.Parse(o.file, b)
	if err == nil {
		err = l.Validate()
	}
	if err != nil {
		return usageError(fmt.Errorf("%q cannot be an experiment name: use letters, digits, '.', '_' and '-'", o.name))
	}
	return nil
}
