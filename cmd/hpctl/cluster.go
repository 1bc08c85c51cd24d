package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/config"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/local"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
)

// The shared wiring of the commands that reach the cluster: registry, transport,
// executor, tables.

// openRegistry opens <state-dir>/registry.db.
func (e *env) openRegistry(ctx context.Context) (*registry.Registry, error) {
	r, err := registry.Open(ctx, e.settings.StateDir)
	if err != nil {
		return nil, fmt.Errorf("open the run registry: %w", err)
	}
	return r, nil
}

// loadSpec loads and validates a spec with the site settings (partition, account,
// image, ...) filling the keys it leaves out: the spec wins over settings. A --host flag
// is not a default but an override, applied by newTransport.
func (e *env) loadSpec(file string) (*experiment.Loaded, error) {
	var site []experiment.SiteValue
	values := e.settings.Site()
	for _, key := range slices.Sorted(maps.Keys(config.SiteSpecKeys)) {
		if key == "host" && e.settings.IsFlag(key) {
			continue
		}
		site = append(site, experiment.SiteValue{Key: config.SiteSpecKeys[key], Value: values[key], From: e.settings.From(key)})
	}
	l, err := experiment.LoadWith(file, site)
	if err != nil {
		return nil, err
	}
	for _, sv := range l.Site {
		e.log.Debug().Str("key", sv.Key).Str("value", sv.Value).Str("from", sv.From).Msg("site setting fills a key the spec leaves out")
	}
	return l, nil
}

// newTransport reaches the cluster: over ssh when host is set, else on this machine.
// host is the spec's cluster.host (which the host setting fills when the spec has none)
// or a run's recorded host; a --host flag wins over both.
func (e *env) newTransport(host string) transport.Transport {
	if e.settings.IsFlag("host") {
		host = e.settings.Host
	}
	var t transport.Transport
	if host == "" {
		t = transport.NewLocal()
	} else {
		// KeepMaster: the next hpctl command reuses this login (two-factor sites).
		t = transport.NewSSH(host, transport.SSHOptions{ControlDir: e.settings.ControlDir, ConfigFile: e.settings.SSHConfig, KeepMaster: true})
	}
	if e.wrapTransport != nil {
		t = e.wrapTransport(t)
	}
	return t
}

// newExecutor returns the executor kind (see pipeline.NewExecutor) running jobs through t.
func (e *env) newExecutor(ctx context.Context, kind string, t transport.Transport) (jobs.Executor, error) {
	return pipeline.NewExecutor(ctx, kind, t, pipeline.ExecutorOptions{
		Slurm:  e.slurm,
		Local:  local.Options{StateDir: filepath.Join(e.settings.StateDir, "local-jobs")},
		Picked: func(name string) { e.log.Debug().Str("executor", name).Msg("executor auto-detected") },
	})
}

// runGroup is runs reached through the same host with the same executor.
type runGroup struct {
	host, executor string
	runs           []registry.Run
}

func groupRuns(runs []registry.Run) []runGroup {
	idx := map[[2]string]int{}
	var out []runGroup
	for _, r := range runs {
		k := [2]string{r.Host, r.Executor}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, runGroup{host: r.Host, executor: r.Executor})
		}
		out[i].runs = append(out[i].runs, r)
	}
	return out
}

// statusOf resolves runs, one transport and executor per host and executor kind: one
// squeue and one sacct per cluster whatever the number of runs. The result keeps the
// order of runs.
func (e *env) statusOf(ctx context.Context, runs []registry.Run, opts pipeline.StatusOptions) ([]pipeline.RunStatus, error) {
	byID := map[string]pipeline.RunStatus{}
	for _, g := range groupRuns(runs) {
		t := e.newTransport(g.host)
		ex, err := e.newExecutor(ctx, g.executor, t)
		if err != nil {
			t.Close()
			return nil, err
		}
		runs, err := e.reconcile(ctx, t, ex, g.runs)
		if err != nil {
			t.Close()
			return nil, err
		}
		st, err := pipeline.Status(ctx, t, ex, runs, opts)
		t.Close()
		if err != nil {
			return nil, err
		}
		for _, s := range st {
			byID[s.Run.ID] = s
		}
	}
	out := make([]pipeline.RunStatus, 0, len(runs))
	for _, r := range runs {
		out = append(out, byID[r.ID])
	}
	return out, nil
}

// reconcile settles runs whose submitter died mid-way (pipeline.Reconcile); the registry
// is opened only when a run is still recorded as submitting.
func (e *env) reconcile(ctx context.Context, t transport.Transport, ex jobs.Executor, runs []registry.Run) ([]registry.Run, error) {
	for _, r := range runs {
		if r.Status != registry.RunSubmitting {
			continue
		}
		reg, err := e.openRegistry(ctx)
		if err != nil {
			return nil, err
		}
		defer reg.Close()
		return pipeline.Reconcile(ctx, t, ex, reg, runs)
	}
	return runs, nil
}

// newTable is the plain, borderless table every command prints (go-pretty: column
// widths from the content, unicode-aware, no hand padding). Print it with renderTable.
func newTable(header ...any) table.Writer {
	t := table.NewWriter()
	style := table.StyleDefault
	style.Options = table.OptionsNoBordersAndSeparators
	style.Box.PaddingLeft = ""
	style.Box.PaddingRight = "  "
	t.SetStyle(style)
	t.AppendHeader(table.Row(header))
	return t
}

// renderTable prints t without the padding go-pretty leaves after the last column.
func renderTable(w io.Writer, t table.Writer) { renderTableWidth(w, t, 0) }

// renderTableWidth is renderTable with every line cut to width columns, ending in "…"
// where it was cut (as gh cuts tables on a terminal); width 0 keeps full lines.
func renderTableWidth(w io.Writer, t table.Writer, width int) {
	for _, line := range strings.Split(t.Render(), "\n") {
		fmt.Fprintln(w, fitWidth(strings.TrimRight(line, " "), width))
	}
}

// fitWidth cuts line to width terminal columns (wide runes count two), the last being
// "…" when anything was cut; width 0 keeps it whole.
func fitWidth(line string, width int) string {
	if width <= 0 || text.StringWidthWithoutEscSequences(line) <= width {
		return line
	}
	return text.Trim(line, width-1) + "…"
}
