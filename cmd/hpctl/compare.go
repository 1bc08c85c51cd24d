package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/jedib0t/go-pretty/v6/text"
	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/fsutil"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/pipeline/results"
	"github.com/hpctl/hpctl/transport"
)

func init() { register(47, compareCommand) }

type compareOptions struct {
	runs       []string
	plot       string
	resultsDir string
	json       bool
}

func compareCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "compare",
		BashComplete: completeRuns,
		Usage:        "compare runs side by side: the spec keys that differ, accuracy, loss, time; one plot",
		ArgsUsage:    "RUN RUN...",
		Description: `Lines up two or more runs: the keys of their resolved specs (spec.resolved.json,
every default filled in) whose values differ, as key paths (model.backbone,
stages.finetune.optimizer.learning_rate); then per stage the best and final validation
accuracy and loss, epochs, wall time and images per second (from metrics.json). It
writes one plot of their validation-accuracy curves, as PNG and SVG, and prints where.

It reads fetched results (<results-dir>/<run-id>/) and fetches first what is missing
(as fetch-results --no-checkpoints does): a run never fetched, or fetched before all its
stages ended. RUN is a run id, a unique prefix of one, or "latest"; a sweep's trial K is
RUN/K.

Examples:
   hpctl compare demo-20261203-101500-1a2b demo-20261203-104010-9f8e
   hpctl compare latest/0 latest/1 --plot seeds.png    # two trials of the latest sweep
   hpctl compare demo-20261203-101500-1a2b demo-20261203-104010-9f8e -o json | jq '.differs[].key'`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "plot", Usage: "the plot's file (PNG; the SVG beside it) (default: <results-dir>/compare/<runs>.png)"},
			&cli.StringFlag{Name: "results-dir", Usage: "where fetched results are (default: the results-dir setting, ./results)"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			if c.NArg() < 2 {
				return usageError(errorf("compare needs two or more runs (RUN, or RUN/K for a sweep's trial K)"))
			}
			o := compareOptions{runs: c.Args().Slice(), plot: c.String("plot"), resultsDir: c.String("results-dir"), json: asJSON}
			if o.resultsDir == "" {
				o.resultsDir = e.settings.ResultsDir
			}
			return runCompare(c.Context, e, o)
		},
	}
}

// compareArg is one RUN or RUN/K argument, found.
type compareArg struct {
	run   registry.Run
	trial *int
}

func (a compareArg) label() string {
	if a.trial != nil {
		return results.TrialLabel(a.run.ID, *a.trial)
	}
	return a.run.ID
}

func runCompare(ctx context.Context, e *env, o compareOptions) error {
	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	var args []compareArg
	seen := map[string]bool{}
	for _, s := range o.runs {
		a, err := findCompareArg(ctx, reg, s)
		if err != nil {
			reg.Close()
			return fmt.Errorf("compare: %w", err)
		}
		if seen[a.label()] {
			reg.Close()
			return usageError(fmt.Errorf("compare: %s is given twice", a.label()))
		}
		seen[a.label()] = true
		args = append(args, a)
	}
	reg.Close()

	// Fetch what is missing, one transport per host (one login for several runs).
	transports := map[string]transport.Transport{}
	defer func() {
		for _, t := range transports {
			t.Close()
		}
	}()
	fetched := map[string]bool{}
	var inputs []results.CompareInput
	for _, a := range args {
		in := compareInput(o.resultsDir, a)
		if !fetched[a.run.ID] && needsFetch(in) {
			t, ok := transports[a.run.Host]
			if !ok {
				t = e.newTransport(a.run.Host)
				transports[a.run.Host] = t
			}
			fmt.Fprintf(e.stderr, "hpctl: fetching %s\n", a.run.ID)
			if _, err := results.FetchResults(ctx, t, a.run, o.resultsDir, results.Options{NoCheckpoints: true}); err != nil {
				return err
			}
			fetched[a.run.ID] = true
		}
		inputs = append(inputs, in)
	}
	c, err := results.Compare(inputs)
	if err != nil {
		return err
	}
	png, svg, err := results.ComparePlot(ctx, c)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		c.PlotError = err.Error()
	case png != nil:
		base := o.plot
		if base == "" {
			base = filepath.Join(o.resultsDir, "compare", plotName(args))
		}
		base = strings.TrimSuffix(strings.TrimSuffix(base, ".png"), ".svg")
		c.Plot, c.PlotSVG = base+".png", base+".svg"
		if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
			return fmt.Errorf("compare: plot: %w", err)
		}
		if err := fsutil.WriteFileAtomic(c.Plot, png, 0o644); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(c.PlotSVG, svg, 0o644); err != nil {
			return err
		}
	}
	if o.json {
		return writeJSON(e.stdout, c)
	}
	printCompared(e.stdout, c)
	return nil
}

// findCompareArg finds RUN or RUN/K.
func findCompareArg(ctx context.Context, reg *registry.Registry, s string) (compareArg, error) {
	id, k, isTrial := strings.Cut(s, "/")
	run, err := reg.Find(ctx, id)
	if err != nil {
		return compareArg{}, err
	}
	if !isTrial {
		if run.Trials > 0 {
			return compareArg{}, fmt.Errorf("%w: %s is a sweep of %d trials: compare its trials as %s/K (hpctl status %s --trials lists them)",
				errkind.ErrUsage, run.ID, run.Trials, run.ID, run.ID)
		}
		return compareArg{run: run}, nil
	}
	n, err := strconv.Atoi(k)
	if err != nil || n < 0 || n >= run.Trials {
		if run.Trials == 0 {
			return compareArg{}, fmt.Errorf("%w: %s: run %s is not a sweep; give it as %s", errkind.ErrUsage, s, run.ID, run.ID)
		}
		return compareArg{}, fmt.Errorf("%w: %s: run %s has trials 0 to %d", errkind.ErrUsage, s, run.ID, run.Trials-1)
	}
	return compareArg{run: run, trial: &n}, nil
}

func compareInput(root string, a compareArg) results.CompareInput {
	in := results.CompareInput{Label: a.label(), Run: a.run, Trial: a.trial, Dir: filepath.Join(root, filepath.Base(a.run.ID))}
	if a.trial != nil {
		in.Run, _ = a.run.Trial(*a.trial)
		in.Dir = filepath.Join(in.Dir, filepath.FromSlash(experiment.TrialDir(*a.trial)))
	}
	return in
}

// needsFetch: never fetched, or fetched while a stage had not ended.
func needsFetch(in results.CompareInput) bool {
	if _, err := os.Stat(filepath.Join(in.Dir, experiment.ResolvedSpecFile)); err != nil {
		return true
	}
	f, err := results.Summarize(in.Dir, in.Run)
	if err != nil {
		return true
	}
	for _, s := range f.Stages {
		if !s.State.Terminal() {
			return true
		}
	}
	return false
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// plotName is the default plot's name: the labels of the runs compared.
func plotName(args []compareArg) string {
	var parts []string
	for i, a := range args {
		if i == 2 {
			parts = append(parts, fmt.Sprintf("%d-more", len(args)-2))
			break
		}
		parts = append(parts, unsafeName.ReplaceAllString(strings.ReplaceAll(a.label(), "/", "-trial"), "_"))
	}
	return strings.Join(parts, "_vs_") + ".png"
}

func printCompared(w io.Writer, c *results.Compared) {
	header := []any{""}
	for _, r := range c.Runs {
		header = append(header, r.Label)
	}
	tw := newTable(header...)
	tw.Style().Format.Header = text.FormatDefault // run ids as they are, not upper-cased
	if len(c.Differs) == 0 {
		row := []any{"spec"}
		for range c.Runs {
			row = append(row, "(same resolved spec)")
		}
		tw.AppendRow(row)
	}
	for _, d := range c.Differs {
		row := []any{d.Key}
		for _, v := range d.Values {
			switch {
			case v == nil:
				row = append(row, "(absent)")
			case *v == "":
				row = append(row, `""`)
			default:
				row = append(row, *v)
			}
		}
		tw.AppendRow(row)
	}
	tw.AppendSeparator()
	for _, name := range c.StageNames() {
		for _, m := range []struct {
			what string
			cell func(s *results.ComparedStage) string
		}{
			{"state", func(s *results.ComparedStage) string { return s.State }},
			{"best val acc", func(s *results.ComparedStage) string { return num.Text(s.BestValAccuracy, 4) }},
			{"final val acc", func(s *results.ComparedStage) string { return num.Text(s.FinalValAccuracy, 4) }},
			{"best val loss", func(s *results.ComparedStage) string { return num.Text(s.BestValLoss, 4) }},
			{"final val loss", func(s *results.ComparedStage) string { return num.Text(s.FinalValLoss, 4) }},
			{"epochs", func(s *results.ComparedStage) string { return results.EpochsOf(s.EpochsRun, s.Epochs) }},
			{"wall", func(s *results.ComparedStage) string { return results.Duration(s.WallTimeSeconds) }},
			{"img/s", func(s *results.ComparedStage) string { return results.Rate(s.ImagesPerSecond, 1) }},
		} {
			row := []any{name + " " + m.what}
			for i := range c.Runs {
				cell := ""
				if s := c.Stage(i, name); s != nil {
					cell = m.cell(s)
				}
				row = append(row, dash(cell))
			}
			tw.AppendRow(row)
		}
	}
	renderTable(w, tw)
	switch {
	case c.Plot != "":
		fmt.Fprintf(w, "\nplot: %s\n      %s\n", c.Plot, c.PlotSVG)
	case c.PlotError != "":
		fmt.Fprintf(w, "\nplot: none (it could not be drawn: %s)\n", c.PlotError)
	default:
		fmt.Fprintln(w, "\nplot: none yet (no stage has finished an epoch)")
	}
}
