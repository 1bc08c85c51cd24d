// Package render turns a plan into the files a submission stages in the run directory:
// the spec as written, the resolved spec, the trainer, and one job script per stage.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"text/template"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/shell"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/templates"
	"github.com/hpctl/hpctl/trainer"
	"github.com/hpctl/hpctl/transport"
)

var stageTmpl = template.Must(template.New("stage.sh.tmpl").Funcs(template.FuncMap{
	"q": shell.Quote,
	// dq writes an #SBATCH value that may hold spaces; sbatch reads double quotes there.
	// Validation keeps ", \ and % out of the run directory, the only such value.
	"dq": func(s string) string { return `"` + s + `"` },
}).ParseFS(templates.FS, "stage.sh.tmpl"))

// Render returns every file of the plan's run directory, in a stable order: spec.yaml
// (the plan's source, byte for byte), spec.resolved.json, logs/.keep, the trainer, and
// stages/<name>/job.sh. The files go as they are to WriteDir or a transport's Stage.
func Render(p *experiment.Plan) ([]transport.File, error) {
	resolved, err := p.ResolvedJSON()
	if err != nil {
		return nil, err
	}
	files := []transport.File{
		{Path: experiment.SpecFile, Mode: 0o644, Data: p.Source},
		{Path: experiment.ResolvedSpecFile, Mode: 0o644, Data: resolved},
		// Slurm opens --output and --error before the script runs and does not create
		// their directory: without it the job fails with no log at all. An empty file
		// rather than a directory entry, so every transport carries it as it is.
		{Path: path.Join(experiment.LogsDir, experiment.LogsKeep), Mode: 0o644, Data: []byte{}},
	}
	err = fs.WalkDir(trainer.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(trainer.FS, name)
		if err != nil {
			return err
		}
		files = append(files, transport.File{Path: path.Join(experiment.TrainerDir, name), Mode: 0o644, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("render: read the embedded trainer: %w", err)
	}
	if p.Trials != nil {
		table, err := trialTable(p)
		if err != nil {
			return nil, err
		}
		files = append(files, transport.File{Path: experiment.TrialTable, Mode: 0o644, Data: table})
		for _, t := range p.Trials {
			b, err := p.TrialJSON(t)
			if err != nil {
				return nil, err
			}
			files = append(files, transport.File{Path: path.Join(t.Dir, experiment.ResolvedSpecFile), Mode: 0o644, Data: b})
		}
	}
	for _, st := range p.Stages {
		script, err := Script(p, st)
		if err != nil {
			return nil, err
		}
		files = append(files, transport.File{Path: st.Paths.Script, Mode: 0o755, Data: script})
	}
	return files, nil
}

// trialTable is trials.json: which values each trial of a sweep runs with.
func trialTable(p *experiment.Plan) ([]byte, error) {
	type row struct {
		Trial  int            `json:"trial"`
		Dir    string         `json:"dir"`
		Values map[string]any `json:"values"`
	}
	t := struct {
		MaxParallel int   `json:"max_parallel"`
		Trials      []row `json:"trials"`
	}{MaxParallel: p.MaxParallel}
	for _, tr := range p.Trials {
		r := row{Trial: tr.Index, Dir: tr.Dir, Values: map[string]any{}}
		for _, v := range tr.Values {
			r.Values[v.Key] = v.Data()
		}
		t.Trials = append(t.Trials, r)
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render: trial table: %w", err)
	}
	return append(b, '\n'), nil
}

// Script renders the job script of one stage of the plan.
func Script(p *experiment.Plan, st experiment.PlannedStage) ([]byte, error) {
	words, err := LaunchWords(p, st)
	if err != nil {
		return nil, err
	}
	data := struct {
		RunID, RunDir, Stage, JobName, Runtime, LogOut, LogErr, Launch string
		// Container is the container's name (shell text) for a runtime whose client only
		// forwards signals (docker, podman), and Program that client.
		Container, Program string
		// Sweep: the script serves every trial, as one array job; TrialsDir holds them.
		Sweep     bool
		TrialsDir string
		// The layout, from experiment's constants.
		StagesDir, MarkerDir, LogsDir, Started, Finished string
		R                                                jobs.Resources
		MakeDirs                                         []string
	}{
		RunID: p.RunID, RunDir: p.RunDir, Stage: st.Name, JobName: st.JobName,
		Runtime: p.Spec.Container.Runtime,
		LogOut:  experiment.LogPattern(p.RunDir, "out"), LogErr: experiment.LogPattern(p.RunDir, "err"),
		Launch: wrap(words, len(st.Command)), R: st.Resources,
		StagesDir: experiment.StagesDir, MarkerDir: experiment.MarkerDir, LogsDir: experiment.LogsDir,
		Started: experiment.StartedMarker, Finished: experiment.FinishedMarker,
		Sweep: p.Trials != nil, TrialsDir: experiment.TrialsDir,
	}
	if rt, err := containers.Lookup(p.Spec.Container.Runtime); err == nil && rt.Capabilities().Signals == containers.SignalViaCLI {
		data.Container = containers.ContainerName(p.RunID, st.Name).Shell()
		data.Program = rt.Capabilities().Program
	}
	if data.Sweep {
		data.LogOut = experiment.ArrayLogPattern(p.RunDir, "out")
		data.LogErr = experiment.ArrayLogPattern(p.RunDir, "err")
	}
	if st.Trainer && p.Spec.Model.WeightsCache != "" {
		// enroot and apptainer refuse to mount a directory that does not exist yet.
		data.MakeDirs = append(data.MakeDirs, containers.Path(p.Spec.Model.WeightsCache).Shell())
	}
	var b bytes.Buffer
	if err := stageTmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render stage %s: %w", st.Name, err)
	}
	return b.Bytes(), nil
}

// LaunchWords is the command line that runs the stage under the spec's container runtime.
func LaunchWords(p *experiment.Plan, st experiment.PlannedStage) ([]containers.Word, error) {
	c := p.Spec.Container
	rt, err := containers.Lookup(c.Runtime)
	if err != nil {
		return nil, fmt.Errorf("render stage %s: %w", st.Name, err)
	}
	l := containers.Launch{
		Image:  c.Image,
		RunDir: p.RunDir,
		GPUs:   st.Resources.GPUs,
		Env:    []string{"HPCTL_RUN_DIR", "HPCTL_STAGE", "HPCTL_JOB_ID", "HPCTL_ATTEMPT"},
		Argv:   st.Command,
	}
	if rt.Capabilities().Signals == containers.SignalViaCLI {
		l.Name = containers.ContainerName(p.RunID, st.Name)
	}
	if p.Trials != nil {
		l.Env = append(l.Env, "HPCTL_TRIAL", "HPCTL_TRIAL_DIR")
	}
	if st.Resources.Nodes > 1 {
		l.Env = append(l.Env, "HPCTL_WORKERS", "HPCTL_NODES", "HPCTL_PREEMPTED_MARK")
	}
	if st.Trainer {
		l.Mounts = trainerMounts(p.Spec)
		// A sweep's trials may read other data or weights: the one launch line mounts
		// what any of them needs.
		for _, t := range p.Trials {
			l.Mounts = addMounts(l.Mounts, trainerMounts(t.Spec))
		}
	}
	for _, m := range c.Mounts {
		mount, err := containers.ParseMount(m)
		if err != nil {
			return nil, fmt.Errorf("render stage %s: %w", st.Name, err)
		}
		l.Mounts = append(l.Mounts, mount)
	}
	words, err := rt.Command(l)
	if err != nil {
		return nil, fmt.Errorf("render stage %s: %w", st.Name, err)
	}
	if n := st.Resources.Nodes; n > 1 {
		words = multiNode(words, n, p.RunDir, p.Trials != nil)
	}
	return words, nil
}

// multiNode makes the launch line an srun step of one task per node: a runtime that is
// already an srun step (pyxis) gets the options on its own srun, any other runs under
// one. --kill-on-bad-exit ends the other tasks when one fails, so that a dead worker
// fails the stage rather than leave the others waiting in a collective. Each task writes
// its own logs, logs/<job name>-<job id>.task<K>.{out,err}, appended to across requeues.
func multiNode(words []containers.Word, nodes int, runDir string, sweep bool) []containers.Word {
	job := "%j"
	if sweep {
		job = "%A_%a"
	}
	logs := path.Join(runDir, experiment.LogsDir, "%x-"+job+".task%t.")
	opts := containers.Lits(
		fmt.Sprintf("--nodes=%d", nodes), fmt.Sprintf("--ntasks=%d", nodes), "--ntasks-per-node=1",
		"--kill-on-bad-exit=1", "--open-mode=append", "--output="+logs+"out", "--error="+logs+"err")
	out := []containers.Word{containers.Lit("srun")}
	if len(words) > 0 && words[0].Shell() == "srun" {
		words = words[1:]
	}
	out = append(out, opts...)
	return append(out, words...)
}

// trainerMounts makes the data and weights visible at the same paths inside the
// container, so the resolved spec's paths hold there too.
func trainerMounts(s experiment.Spec) []containers.Mount {
	var ms []containers.Mount
	seen := map[string]bool{}
	add := func(p, opts string) {
		if p == "" || seen[p] {
			return
		}
		seen[p] = true
		ms = append(ms, containers.Mount{Source: p, Target: p, Options: opts})
	}
	add(s.Data.Train, "ro")
	add(s.Data.Val, "ro")
	if w := s.Model.Weights; w != "imagenet" && w != "none" {
		add(w, "ro")
	}
	// The trainer may download into the cache, so it stays writable.
	add(s.Model.WeightsCache, "")
	return ms
}

// addMounts appends the mounts of more that ms does not have yet.
func addMounts(ms, more []containers.Mount) []containers.Mount {
	have := map[string]bool{}
	for _, m := range ms {
		have[m.Target] = true
	}
	for _, m := range more {
		if !have[m.Target] {
			have[m.Target] = true
			ms = append(ms, m)
		}
	}
	return ms
}

// wrap lays the launch line out over several lines of at most about 80 columns, keeping
// an option and its value together and starting the command (the last nArgv words) on a
// line of its own, so a person can read which option carries what.
func wrap(words []containers.Word, nArgv int) string {
	const width = 80
	var groups []string
	argvAt := -1
	for i := 0; i < len(words); i++ {
		if i == len(words)-nArgv && i > 0 {
			argvAt = len(groups)
		}
		g := words[i].Shell()
		if isOption(g) && !strings.Contains(g, "=") && i+1 < len(words) && !isOption(words[i+1].Shell()) {
			i++
			g += " " + words[i].Shell()
		}
		groups = append(groups, g)
	}
	var lines []string
	cur := ""
	for i, g := range groups {
		switch {
		case i == 0:
			cur = g
		case len(cur)+1+len(g) > width || i == argvAt:
			lines = append(lines, cur)
			cur = "\t" + g
		default:
			cur += " " + g
		}
	}
	lines = append(lines, cur)
	return strings.Join(lines, " \\\n")
}

func isOption(s string) bool { return strings.HasPrefix(s, "-") || strings.HasPrefix(s, "'-") }

var predictTmpl = template.Must(template.New("predict.sh.tmpl").Funcs(template.FuncMap{
	"q":  shell.Quote,
	"dq": func(s string) string { return `"` + s + `"` },
}).ParseFS(templates.FS, "predict.sh.tmpl"))

// PredictJob is a short job that runs `train.py predict` in a stage's container: what
// `hpctl predict --remote` queues. Dir is its scratch folder inside the run directory
// (mounted with it), which holds the script, the images and the job's logs.
type PredictJob struct {
	RunID, Stage, JobName, Runtime string
	// RunDir is mounted in the container; Dir, inside it, is where the job runs.
	RunDir, Dir string
	R           jobs.Resources
	// Mounts are the spec's container.mounts; Image the container image.
	Mounts []string
	Image  string
	Env    []string
	// Argv is the trainer's command line, run inside the container.
	Argv []string
}

// PredictScript renders a PredictJob's sbatch script. Its logs are
// experiment.LogPath(Dir, JobName, <job id>, out|err), as the local executor writes them.
func PredictScript(j PredictJob) ([]byte, error) {
	rt, err := containers.Lookup(j.Runtime)
	if err != nil {
		return nil, fmt.Errorf("render predict job: %w", err)
	}
	l := containers.Launch{Image: j.Image, RunDir: j.RunDir, GPUs: j.R.GPUs, Env: j.Env, Argv: j.Argv}
	for _, m := range j.Mounts {
		mount, err := containers.ParseMount(m)
		if err != nil {
			return nil, fmt.Errorf("render predict job: %w", err)
		}
		l.Mounts = append(l.Mounts, mount)
	}
	words, err := rt.Command(l)
	if err != nil {
		return nil, fmt.Errorf("render predict job: %w", err)
	}
	data := struct {
		PredictJob
		LogOut, LogErr, Launch string
	}{PredictJob: j, LogOut: experiment.LogPattern(j.Dir, "out"), LogErr: experiment.LogPattern(j.Dir, "err"),
		Launch: wrap(words, len(j.Argv))}
	var b bytes.Buffer
	if err := predictTmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render predict job: %w", err)
	}
	return b.Bytes(), nil
}
