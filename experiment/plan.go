package experiment

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/hpctl/hpctl/internal/homepath"
)

// Resources are a stage's effective Slurm settings: the spec's, overridden by the stage's.
type Resources struct {
	Partition    string
	Account      string
	QOS          string
	Time         string
	GPUs         int
	CPUsPerTask  int
	Mem          string
	Nodes        int
	SignalBefore int
	Requeue      bool
	Extra        []string
}

// PlannedStage is one job to submit.
type PlannedStage struct {
	Name      string
	DependsOn []string
	// JobName is the Slurm job name, <spec name>-<stage name>; logs are named after it.
	JobName   string
	Resources Resources
	// Command is the argv the job runs (inside the container), already resolved.
	Command []string
	// Trainer is true when the stage runs hpctl's trainer rather than a user command.
	Trainer bool
}

// Plan is the ordered list of jobs of one run: every stage comes after the stages it
// depends on. RunDir is absolute on the cluster.
type Plan struct {
	RunID  string
	RunDir string
	Spec   Spec
	Stages []PlannedStage
}

// Run-directory layout; docs/run-directory.md is the contract with the job scripts and
// the trainer.
const (
	SpecFile         = "spec.yaml"
	ResolvedSpecFile = "spec.resolved.json"
	TrainerDir       = "trainer"
	StagesDir        = "stages"
	LogsDir          = "logs"
	ScriptFile       = "job.sh"
	MarkerDir        = ".hpctl"
	StartedMarker    = "started"
	FinishedMarker   = "finished"
	HistoryFile      = "history.csv"
	MetricsFile      = "metrics.json"
	EvaluationFile   = "evaluation.json"
)

// ParseMarker reads a marker file's key=value lines (docs/run-directory.md). Lines
// without '=' are skipped, so a marker from a newer hpctl still reads.
func ParseMarker(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// StageDir is a stage's directory inside the run directory.
func StageDir(runDir, stage string) string { return path.Join(runDir, StagesDir, stage) }

// ScriptPath is where a stage's job script is staged.
func ScriptPath(runDir, stage string) string {
	return path.Join(StageDir(runDir, stage), ScriptFile)
}

// LogPath is a job's stdout (ext "out") or stderr (ext "err") file.
func LogPath(runDir, jobName, jobID, ext string) string {
	return path.Join(runDir, LogsDir, jobName+"-"+jobID+"."+ext)
}

// Resolve returns a copy of the spec with home-relative paths made absolute and relative
// data paths joined to base (the directory hpctl treats as the user's project on the
// cluster).
func (s Spec) Resolve(home, base string) Spec {
	r := s
	abs := func(p string) string {
		p = homepath.Expand(p, home)
		if p != "" && !path.IsAbs(p) && base != "" {
			p = path.Join(base, p)
		}
		return p
	}
	r.Workdir = abs(s.Workdir)
	r.Data.Train = abs(s.Data.Train)
	r.Data.Val = abs(s.Data.Val)
	r.Data.ImageSize = append([]int(nil), s.Data.ImageSize...)
	if s.Model.Weights != "imagenet" && s.Model.Weights != "none" {
		r.Model.Weights = abs(s.Model.Weights)
	}
	r.Model.WeightsCache = abs(s.Model.WeightsCache)
	if _, home := homepath.Split(s.Container.Image); home || strings.HasPrefix(s.Container.Image, "/") ||
		strings.HasPrefix(s.Container.Image, "./") {
		r.Container.Image = abs(s.Container.Image)
	}
	r.Container.Mounts = make([]string, len(s.Container.Mounts))
	for i, m := range s.Container.Mounts {
		parts := strings.SplitN(m, ":", 2)
		if len(parts) == 2 {
			m = abs(parts[0]) + ":" + parts[1]
		}
		r.Container.Mounts[i] = m
	}
	r.Stages = make([]Stage, len(s.Stages))
	copy(r.Stages, s.Stages)
	return r
}

// NewPlan orders the stages and computes each one's resources and command. The spec must
// be valid and resolved (absolute paths).
func NewPlan(s Spec, runID string) (*Plan, error) {
	if !path.IsAbs(s.Workdir) {
		return nil, fmt.Errorf("plan: workdir %q is not absolute; resolve the spec first", s.Workdir)
	}
	p := &Plan{RunID: runID, RunDir: path.Join(s.Workdir, runID), Spec: s}
	order, err := topoOrder(s.Stages)
	if err != nil {
		return nil, err
	}
	for _, i := range order {
		st := s.Stages[i]
		ps := PlannedStage{
			Name:      st.Name,
			DependsOn: append([]string(nil), st.DependsOn...),
			JobName:   s.Name + "-" + st.Name,
			Resources: stageResources(s.Slurm, st.Slurm),
		}
		if len(st.Command) > 0 {
			ps.Command = append([]string(nil), st.Command...)
		} else {
			ps.Trainer = true
			ps.Command = []string{
				s.Container.Python, path.Join(p.RunDir, TrainerDir, "train.py"), "train",
				"--spec", path.Join(p.RunDir, ResolvedSpecFile),
				"--stage", st.Name,
				"--run-dir", p.RunDir,
			}
		}
		p.Stages = append(p.Stages, ps)
	}
	return p, nil
}

func stageResources(g Slurm, o StageSlurm) Resources {
	r := Resources{
		Partition: g.Partition, Account: g.Account, QOS: g.QOS, Time: g.Time, GPUs: g.GPUs,
		CPUsPerTask: g.CPUsPerTask, Mem: g.Mem, Nodes: g.Nodes, SignalBefore: g.SignalBefore,
		Requeue: g.Requeue, Extra: append([]string(nil), g.Extra...),
	}
	if o.Partition != "" {
		r.Partition = o.Partition
	}
	if o.Time != "" {
		r.Time = o.Time
	}
	if o.GPUs != nil {
		r.GPUs = *o.GPUs
	}
	if o.CPUsPerTask != nil {
		r.CPUsPerTask = *o.CPUsPerTask
	}
	if o.Mem != "" {
		r.Mem = o.Mem
	}
	return r
}

// topoOrder keeps the user's order where dependencies allow it (Kahn's algorithm, always
// taking the earliest ready stage), so plans are stable.
func topoOrder(stages []Stage) ([]int, error) {
	index := map[string]int{}
	for i, st := range stages {
		index[st.Name] = i
	}
	done := make([]bool, len(stages))
	var order []int
	for len(order) < len(stages) {
		progressed := false
		for i, st := range stages {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range st.DependsOn {
				j, ok := index[d]
				if !ok {
					return nil, fmt.Errorf("plan: stage %q depends on unknown stage %q", st.Name, d)
				}
				if !done[j] {
					ready = false
					break
				}
			}
			if ready {
				done[i] = true
				order = append(order, i)
				progressed = true
				break
			}
		}
		if !progressed {
			return nil, fmt.Errorf("plan: the stages' dependencies form a cycle")
		}
	}
	return order, nil
}

// resolvedSpec is the JSON the trainer reads (docs/run-directory.md).
type resolvedSpec struct {
	Name     string          `json:"name"`
	Seed     int             `json:"seed"`
	Data     Data            `json:"data"`
	Model    Model           `json:"model"`
	Augment  Augment         `json:"augment"`
	Training Training        `json:"training"`
	Stages   []resolvedStage `json:"stages"`
}

type resolvedStage struct {
	Name            string    `json:"name"`
	DependsOn       []string  `json:"depends_on"`
	InitFrom        string    `json:"init_from"`
	UnfreezeLayers  int       `json:"unfreeze_layers"`
	Epochs          int       `json:"epochs"`
	StepsPerEpoch   int       `json:"steps_per_epoch"`
	ValidationSteps int       `json:"validation_steps"`
	Optimizer       Optimizer `json:"optimizer"`
	GPUs            int       `json:"gpus"`
	Command         []string  `json:"command"`
}

// ResolvedJSON is spec.resolved.json: every default filled in, in plan order.
func (p *Plan) ResolvedJSON() ([]byte, error) {
	r := resolvedSpec{Name: p.Spec.Name, Seed: p.Spec.Seed, Data: p.Spec.Data, Model: p.Spec.Model,
		Augment: p.Spec.Augment, Training: p.Spec.Training}
	for _, ps := range p.Stages {
		st := p.Spec.StageByName(ps.Name)
		rs := resolvedStage{
			Name: st.Name, DependsOn: nonNil(st.DependsOn), InitFrom: st.InitFrom,
			UnfreezeLayers: st.Unfreeze.LayerCount(), Epochs: st.Epochs,
			StepsPerEpoch: st.StepsPerEpoch, ValidationSteps: st.ValidationSteps,
			Optimizer: st.Optimizer, GPUs: ps.Resources.GPUs, Command: nonNil(st.Command),
		}
		r.Stages = append(r.Stages, rs)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode resolved spec: %w", err)
	}
	return append(b, '\n'), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Hash identifies the spec's content; the registry records it with every run.
func Hash(src []byte) string {
	sum := sha256.Sum256(src)
	return hex.EncodeToString(sum[:])
}
