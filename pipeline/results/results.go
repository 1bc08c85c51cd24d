// Package results gathers what a run's jobs wrote on the cluster into the user's results
// folder (results/<run-id>/, the run directory's own layout, see docs/run-directory.md)
// and makes sense of it: a summary per stage, learning-curve plots and a short report.
package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/fsutil"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/pipeline/stagestate"
	"github.com/hpctl/hpctl/transport"
)

// Names of what FetchResults writes next to the fetched files.
const (
	PlotFile    = "learning-curves.png"
	PlotSVGFile = "learning-curves.svg" // the same figure as PlotFile, as SVG
	ReportFile  = "report.md"
	SummaryFile = "summary.json"
)

// Options choose what FetchResults copies.
type Options struct {
	// AllCheckpoints also copies checkpoints/final.* and the resume state/ of each stage.
	AllCheckpoints bool
	// NoCheckpoints copies no checkpoints at all (metrics and logs only).
	NoCheckpoints bool
	// Progress receives bytes copied and bytes to copy (a progress bar).
	Progress func(done, total int64)
	// BWLimit caps the copy in bytes per second (0: no cap).
	BWLimit int64
}

// Excludes are the run-directory paths FetchResults leaves on the cluster: the trainer
// program always (it is in hpctl already); resume state and final checkpoints unless
// AllCheckpoints; every checkpoint with NoCheckpoints. Earlier attempts of retried
// stages (attempts/<n>/stages/<stage>) come with their history, metrics and logs, but
// their checkpoints and state only with AllCheckpoints.
func (o Options) Excludes() []string {
	every := experiment.PathsOf("*")
	// predict/: a running `hpctl predict --remote` job's scratch folder, never a result.
	ex := []string{experiment.TrainerDir + "/", experiment.PredictDir + "/"}
	switch {
	case o.NoCheckpoints:
		ex = append(ex, every.Checkpoints+"/", every.State+"/")
	case !o.AllCheckpoints:
		ex = append(ex, every.FinalCheckpoint+".*", every.State+"/")
	}
	if !o.AllCheckpoints {
		old := path.Join(experiment.AttemptsDir, "*")
		ex = append(ex, path.Join(old, every.Checkpoints)+"/", path.Join(old, every.State)+"/")
	}
	return ex
}

// Fetched is what one fetch did and found.
type Fetched struct {
	RunID    string              `json:"run_id"`
	SpecName string              `json:"spec_name"`
	Host     string              `json:"host,omitempty"`
	Dir      string              `json:"dir"`
	Transfer transport.PullStats `json:"transfer"`
	Stages   []StageSummary      `json:"stages"`
	// Trials are a sweep's, in trial order (Leaderboard ranks them); BestTrial indexes
	// the best, SweepKeys are the swept paths.
	Trials    []TrialResult `json:"trials,omitempty"`
	BestTrial *int          `json:"best_trial,omitempty"`
	SweepKeys []string      `json:"sweep_keys,omitempty"`
	Plot      string        `json:"plot,omitempty"`
	// PlotSVG is the same figure as Plot, as SVG, beside it.
	PlotSVG string `json:"plot_svg,omitempty"`
	// PlotError says why there is no plot although epochs have finished (gonum/plot
	// failed on these numbers); the summary and report are written all the same.
	PlotError string    `json:"plot_error,omitempty"`
	Report    string    `json:"report"`
	FetchedAt time.Time `json:"fetched_at"`
}

// FetchResults copies run's directory from the cluster into <localRoot>/<run-id>/
// (incrementally: an unchanged run copies nothing), then writes summary.json, the
// learning-curve plot (when any epoch has finished) and report.md there.
func FetchResults(ctx context.Context, tr transport.Transport, run registry.Run, localRoot string, opts Options) (*Fetched, error) {
	if opts.AllCheckpoints && opts.NoCheckpoints {
		return nil, fmt.Errorf("%w: --all-checkpoints and --no-checkpoints contradict each other", errkind.ErrUsage)
	}
	if run.ID == "" || run.ID != filepath.Base(run.ID) || strings.HasPrefix(run.ID, ".") {
		return nil, fmt.Errorf("fetch: run id %q cannot name a folder", run.ID)
	}
	if run.RunDir == "" {
		return nil, fmt.Errorf("fetch %s: the registry has no run directory for it", run.ID)
	}
	dir := filepath.Join(localRoot, run.ID)
	if run.Trials > 0 {
		return fetchSweep(ctx, tr, run, dir, opts)
	}
	st, err := tr.Pull(ctx, run.RunDir, dir, transport.PullOptions{
		Exclude:  opts.Excludes(),
		Progress: opts.Progress,
		BWLimit:  opts.BWLimit,
	})
	if err != nil {
		if errors.Is(err, errkind.ErrNotFound) {
			return nil, fmt.Errorf("fetch %s: run directory %s is not on the cluster (removed, or a different cluster?): %w", run.ID, run.RunDir, err)
		}
		return nil, fmt.Errorf("fetch %s: %w", run.ID, err)
	}
	f, err := Summarize(dir, run)
	if err != nil {
		return nil, err
	}
	f.Transfer = st
	if err := f.write(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// Summarize reads a fetched run directory and writes nothing. Stages come from the run
// record, then any other stage folder found, so a stage that has not started still has
// a row.
func Summarize(dir string, run registry.Run) (*Fetched, error) {
	f := &Fetched{RunID: run.ID, SpecName: run.SpecName, Host: run.Host, Dir: dir, FetchedAt: time.Now().UTC()}
	seen := map[string]int{}
	for _, rs := range run.Stages {
		s, err := readStage(dir, rs, true)
		if err != nil {
			return nil, err
		}
		// A stage that never started because a dependency failed or was cancelled is
		// CANCELLED, "dependency failed", as hpctl status says. Dependencies come first.
		var deps []stagestate.View
		for _, d := range rs.DependsOn {
			if i, ok := seen[d]; ok {
				deps = append(deps, f.Stages[i].view)
			}
		}
		s.view = s.view.AfterDependencies(deps...)
		s.State, s.Reason = s.view.State, s.view.Reason
		f.Stages = append(f.Stages, s)
		seen[rs.Name] = len(f.Stages) - 1
	}
	entries, err := os.ReadDir(filepath.Join(dir, experiment.StagesDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("summary: %w", err)
	}
	for _, e := range entries {
		if _, ok := seen[e.Name()]; e.IsDir() && !ok {
			s, err := readStage(dir, registry.RunStage{Name: e.Name()}, false)
			if err != nil {
				return nil, err
			}
			f.Stages = append(f.Stages, s)
		}
	}
	return f, nil
}

// write puts summary.json, the plot (PNG and SVG) and report.md beside the fetched files, each
// atomically, so a reader never opens half of one. All three are made before any is
// written: an interrupt (ctx) or a failure while making them writes none, and a
// fetch's files never mix two summaries. A sweep gets its comparison plot and its
// leaderboard report.
func (f *Fetched) write(ctx context.Context) error {
	f.Plot, f.PlotSVG, f.PlotError = "", "", ""
	plotFile, svgFile, report := PlotFile, PlotSVGFile, Report
	var png, svg []byte
	var err error
	if f.Trials != nil {
		plotFile, svgFile, report = SweepPlotFile, SweepPlotSVGFile, sweepReport
		png, svg, err = SweepPlot(f)
	} else {
		var fig *Figures
		if fig, err = Plot(ctx, ReadCurveInfo(f.Dir, f.RunID), f.Stages); fig != nil {
			png, svg = fig.PNG, fig.SVG
		}
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("fetch %s: %w", f.RunID, ctx.Err())
	case err != nil:
		// The numbers are in the summary and the report; a plot gonum cannot draw of
		// them costs the plot only.
		png, svg, f.PlotError = nil, nil, err.Error()
	case png != nil:
		f.Plot = filepath.Join(f.Dir, plotFile)
		if svg != nil {
			f.PlotSVG = filepath.Join(f.Dir, svgFile)
		}
	}
	f.Report = filepath.Join(f.Dir, ReportFile)
	text := []byte(report(f))
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("summary: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fetch %s: %w", f.RunID, err)
	}
	if png != nil {
		if err := fsutil.WriteFileAtomic(f.Plot, png, 0o644); err != nil {
			return err
		}
	}
	if svg != nil {
		if err := fsutil.WriteFileAtomic(f.PlotSVG, svg, 0o644); err != nil {
			return err
		}
	}
	if err := fsutil.WriteFileAtomic(f.Report, text, 0o644); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(f.Dir, SummaryFile), append(b, '\n'), 0o644)
}
