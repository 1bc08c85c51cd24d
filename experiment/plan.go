package experiment

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/hpctl/hpctl/internal/homepath"
	"github.com/hpctl/hpctl/jobs"
)

// PlannedStage is one job to submit.
type PlannedStage struct {
	Name      string
	DependsOn []string
	// JobName is the Slurm job name, <spec name>-<stage name>; logs are named after it.
	JobName   string
	Resources jobs.Resources
	// Command is the argv the job runs (inside the container), already resolved.
	Command []string
	// Trainer is true when the stage runs hpctl's trainer rather than a user command.
	Trainer bool
	// Epochs is how many epochs status counts for the stage: the trainer's, or for a
	// stage that runs its own command only what the user wrote (the default of 10 would
	// show a command as "0/10" forever); 0 when unknown.
	Epochs int
	// Paths are where the stage's files live in the run directory.
	Paths StagePaths
	// ResourceKeys say where each resource a pre-flight check may refuse was set, by its
	// name under slurm: (ResourceFields): the stage's own override or the spec-wide key.
	ResourceKeys map[string]SpecKey
}

// ResourceFields are the slurm: keys whose values pre-flight checks against the cluster.
var ResourceFields = []string{"partition", "account", "qos", "time", "gpus", "cpus_per_task", "mem", "nodes"}

// SpecKey is where a value of the plan came from: its spec key ("slurm.mem",
// "stages[1].slurm.mem"), its position, and whether the user wrote it (else it is the
// default, and Pos is where the key would go). Pos is zero in a plan made from a Spec
// value rather than a file.
type SpecKey struct {
	Key string
	Pos Pos
	Set bool
}

// Where is "slurm.mem at urban.yaml:12:8" (or "slurm.mem, not set (hpctl's default)"),
// the way refusals found on the cluster point into the spec.
func (k SpecKey) Where(file string) string {
	switch {
	case k.Pos.Line == 0:
		return k.Key
	case !k.Set:
		return fmt.Sprintf("%s, not set (hpctl's default; set it at %s:%d:%d)", k.Key, file, k.Pos.Line, k.Pos.Col)
	}
	return fmt.Sprintf("%s at %s:%d:%d", k.Key, file, k.Pos.Line, k.Pos.Col)
}

// DataCheck is a data folder to check on the cluster before anything is staged, with
// the spec position a problem with it is reported at.
type DataCheck struct {
	Key  string // the spec key, data.train or data.val
	Path string // resolved
	Pos  Pos
}

// Plan is everything a run needs once the spec is read: the ordered jobs (every stage
// after the stages it depends on), the resolved spec, the source to stage, and the spec
// positions that problems found later (on the cluster) are reported at. Nothing after
// planning goes back to the loaded YAML. RunDir is absolute on the cluster.
type Plan struct {
	RunID  string
	RunDir string
	// Spec is the resolved spec: home-relative and relative paths made absolute.
	Spec   Spec
	Stages []PlannedStage
	// Source is the spec file exactly as read (staged as spec.yaml), SpecFile where it
	// was read from and SpecHash its digest; empty for a plan made from a Spec value.
	Source   []byte
	SpecFile string
	SpecHash string
	// DataChecks are the data folders to check on the cluster.
	DataChecks []DataCheck
	// RuntimePos and ImagePos are where container.runtime and container.image are set
	// (or would be), for what the cluster says about the runtime and its image.
	RuntimePos, ImagePos Pos
	// InitChecks are the stages' init_from checkpoints outside the run (a path, or
	// RUN:STAGE), to check (and resolve) on the cluster.
	InitChecks []InitCheck
	// Trials are a sweep's trials, in index order; nil when the spec runs once. Each
	// stage is then one array job over them.
	Trials []PlannedTrial
	// MaxParallel is how many trials run at once (0: no limit).
	MaxParallel int
	// SweepKeys are the swept paths, in the order written.
	SweepKeys []string
}

// PlannedTrial is one trial of a sweep: its own resolved spec and directory.
type PlannedTrial struct {
	Index  int
	Values []TrialValue
	// Spec is the trial's whole spec, resolved.
	Spec Spec
	// Dir is the trial's directory, relative to the run directory (trials/<index>):
	// a run directory of its own for the trial's stages (PathsOf, relative to it).
	Dir string
}

// TrialPlaceholder stands for the trial's index in the trainer's arguments of a sweep's
// stage; the trainer replaces it with $HPCTL_TRIAL, which the job script sets from the
// array task. (One job script serves every trial; no shell text is built from it.)
const TrialPlaceholder = "{trial}"

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
	for i, st := range r.Stages {
		if src := ParseInitFrom(st.InitFrom); src.Path != "" {
			r.Stages[i].InitFrom = abs(src.Path)
		}
	}
	return r
}

// Plan resolves the loaded (valid) spec against the cluster's home and base directory
// (see Spec.Resolve) and plans run runID: NewPlan, plus what only the file knows: its
// source, which epoch counts the user wrote, and where each data path was written.
func (l *Loaded) Plan(home, base, runID string) (*Plan, error) {
	p, err := NewPlan(l.Spec.Resolve(home, base), runID)
	if err != nil {
		return nil, err
	}
	p.Source, p.SpecFile, p.SpecHash = l.Source, l.File, Hash(l.Source)
	for i := range p.Stages {
		ps := &p.Stages[i]
		for j, st := range l.Spec.Stages {
			if st.Name == ps.Name && !ps.Trainer && !l.Has(fmt.Sprintf("stages[%d].epochs", j)) {
				ps.Epochs = 0
			}
		}
	}
	for i := range p.DataChecks {
		p.DataChecks[i].Pos = l.PosOf(p.DataChecks[i].Key)
	}
	p.RuntimePos, p.ImagePos = l.PosOf("container.runtime"), l.PosOf("container.image")
	for i := range p.Stages {
		for f, k := range p.Stages[i].ResourceKeys {
			k.Pos, k.Set = l.PosOf(k.Key), l.Has(k.Key)
			p.Stages[i].ResourceKeys[f] = k
		}
	}
	for j, st := range p.Spec.Stages {
		if src := ParseInitFrom(st.InitFrom); src.Stage == "" && st.InitFrom != "" {
			key := fmt.Sprintf("stages[%d].init_from", j)
			p.InitChecks = append(p.InitChecks, InitCheck{Key: key, Stage: st.Name, InitSource: src, Pos: l.PosOf(key)})
		}
	}
	if l.Sweep != nil {
		p.planTrials(l, home, base)
	}
	return p, nil
}

// planTrials resolves every trial, points the trainer's arguments at the trial's own
// directory, and adds the data folders trials sweep to the checks, at the swept value.
func (p *Plan) planTrials(l *Loaded, home, base string) {
	p.MaxParallel, p.SweepKeys = l.Sweep.MaxParallel, l.Sweep.Keys
	checked := map[string]bool{}
	for _, c := range p.DataChecks {
		checked[c.Path] = true
	}
	for _, t := range l.Sweep.Trials {
		pt := PlannedTrial{Index: t.Index, Values: t.Values, Spec: t.Spec.Resolve(home, base), Dir: TrialDir(t.Index)}
		for _, c := range []DataCheck{{Key: "data.train", Path: pt.Spec.Data.Train}, {Key: "data.val", Path: pt.Spec.Data.Val}} {
			if !checked[c.Path] {
				checked[c.Path] = true
				c.Pos = l.trialLoaded(t).PosOf(c.Key)
				p.DataChecks = append(p.DataChecks, c)
			}
		}
		p.Trials = append(p.Trials, pt)
	}
	trialDir := path.Join(p.RunDir, TrialsDir, TrialPlaceholder)
	for i := range p.Stages {
		st := &p.Stages[i]
		if !st.Trainer {
			continue
		}
		for j, a := range st.Command {
			switch a {
			case path.Join(p.RunDir, ResolvedSpecFile):
				st.Command[j] = path.Join(trialDir, ResolvedSpecFile)
			case p.RunDir:
				st.Command[j] = trialDir
			}
		}
	}
}

// NewPlan orders the stages and computes each one's resources, command, epoch count and
// paths. The spec must be valid and resolved (absolute paths).
func NewPlan(s Spec, runID string) (*Plan, error) {
	if !path.IsAbs(s.Workdir) {
		return nil, fmt.Errorf("plan: workdir %q is not absolute; resolve the spec first", s.Workdir)
	}
	p := &Plan{RunID: runID, RunDir: path.Join(s.Workdir, runID), Spec: s, DataChecks: []DataCheck{
		{Key: "data.train", Path: s.Data.Train}, {Key: "data.val", Path: s.Data.Val},
	}}
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
			Epochs:    st.Epochs,
			Paths:     PathsOf(st.Name),
		}
		ps.ResourceKeys = resourceKeys(i, st.Slurm)
		if len(st.Command) > 0 {
			ps.Command = append([]string(nil), st.Command...)
		} else {
			ps.Trainer = true
			ps.Command = []string{
				s.Container.Python, path.Join(p.RunDir, TrainerDir, TrainerMain), "train",
				"--spec", path.Join(p.RunDir, ResolvedSpecFile),
				"--stage", st.Name,
				"--run-dir", p.RunDir,
			}
		}
		p.Stages = append(p.Stages, ps)
	}
	return p, nil
}

// resourceKeys names, for stage i, the key each of ResourceFields comes from: the
// stage's override where it has one (stageResources takes it), else the spec-wide one.
func resourceKeys(i int, o StageSlurm) map[string]SpecKey {
	own := map[string]bool{"partition": o.Partition != "", "time": o.Time != "", "gpus": o.GPUs != nil,
		"cpus_per_task": o.CPUsPerTask != nil, "mem": o.Mem != "", "nodes": o.Nodes != nil}
	m := map[string]SpecKey{}
	for _, f := range ResourceFields {
		if own[f] {
			m[f] = SpecKey{Key: fmt.Sprintf("stages[%d].slurm.%s", i, f)}
		} else {
			m[f] = SpecKey{Key: "slurm." + f}
		}
	}
	return m
}

func stageResources(g Slurm, o StageSlurm) jobs.Resources {
	r := jobs.Resources{
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
	if o.Nodes != nil {
		r.Nodes = *o.Nodes
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
	Name            string     `json:"name"`
	DependsOn       []string   `json:"depends_on"`
	InitFrom        string     `json:"init_from"`
	UnfreezeLayers  int        `json:"unfreeze_layers"`
	Epochs          int        `json:"epochs"`
	StepsPerEpoch   int        `json:"steps_per_epoch"`
	ValidationSteps int        `json:"validation_steps"`
	Optimizer       Optimizer  `json:"optimizer"`
	GPUs            int        `json:"gpus"`
	Command         []string   `json:"command"`
	Paths           StagePaths `json:"paths"`
}

// ResolvedJSON is spec.resolved.json: every default filled in, in plan order.
func (p *Plan) ResolvedJSON() ([]byte, error) { return p.resolvedJSON(p.Spec) }

// TrialJSON is trial t's spec.resolved.json (in its trial directory, which its paths are
// relative to).
func (p *Plan) TrialJSON(t PlannedTrial) ([]byte, error) { return p.resolvedJSON(t.Spec) }

func (p *Plan) resolvedJSON(spec Spec) ([]byte, error) {
	r := resolvedSpec{Name: spec.Name, Seed: spec.Seed, Data: spec.Data, Model: spec.Model,
		Augment: spec.Augment, Training: spec.Training}
	for _, ps := range p.Stages {
		st := spec.StageByName(ps.Name)
		rs := resolvedStage{
			Name: st.Name, DependsOn: nonNil(st.DependsOn), InitFrom: st.InitFrom,
			UnfreezeLayers: st.Unfreeze.LayerCount(), Epochs: st.Epochs,
			StepsPerEpoch: st.StepsPerEpoch, ValidationSteps: st.ValidationSteps,
			Optimizer: st.Optimizer, GPUs: ps.Resources.GPUs, Command: nonNil(st.Command),
			Paths: ps.Paths,
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
