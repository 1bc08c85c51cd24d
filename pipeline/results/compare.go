package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
)

// CompareInput is one run (or one trial of a sweep) to compare, already fetched.
type CompareInput struct {
	// Label names it in tables and the plot: the run id, or <run id>/<trial>.
	Label string
	// Run is the run's record (for a trial, registry.Run.Trial's view of it).
	Run registry.Run
	// Trial is the sweep trial compared, nil for a run of one trial.
	Trial *int
	// Dir is its fetched folder: results/<run-id>, or results/<run-id>/trials/<k>.
	Dir string
}

// Compared is hpctl compare's answer: the runs side by side, the resolved-spec keys
// whose values differ between them, and where their validation-accuracy plot went.
type Compared struct {
	Runs    []ComparedRun `json:"runs"`
	Differs []SpecDiff    `json:"differs"`
	// Plot and PlotSVG are the validation-accuracy curves, as PNG and SVG.
	Plot    string `json:"plot,omitempty"`
	PlotSVG string `json:"plot_svg,omitempty"`
	// PlotError says why there is no plot although some stage has finished an epoch.
	PlotError string `json:"plot_error,omitempty"`
}

// ComparedRun is one run's side of a comparison.
type ComparedRun struct {
	Label  string          `json:"label"`
	RunID  string          `json:"run_id"`
	Trial  *int            `json:"trial,omitempty"`
	Dir    string          `json:"dir"`
	Stages []ComparedStage `json:"stages"`
	// spec is the flattened resolved spec.
	spec map[string]string
}

// ComparedStage is one stage's numbers, as fetch-results summarises them.
type ComparedStage struct {
	Name             string     `json:"name"`
	State            string     `json:"state"`
	EpochsRun        int        `json:"epochs_run"`
	Epochs           int        `json:"epochs,omitempty"`
	BestValAccuracy  *num.Float `json:"best_val_accuracy,omitempty"`
	BestValLoss      *num.Float `json:"best_val_loss,omitempty"`
	FinalValAccuracy *num.Float `json:"final_val_accuracy,omitempty"`
	FinalValLoss     *num.Float `json:"final_val_loss,omitempty"`
	WallTimeSeconds  *float64   `json:"wall_time_s,omitempty"`
	ImagesPerSecond  *float64   `json:"images_per_second,omitempty"`
	history          []Epoch
}

// SpecDiff is one resolved-spec key whose value differs between the runs: Values[i]
// is run i's, as written in spec.resolved.json (strings bare, other values as JSON),
// null where run i's spec has no such key.
type SpecDiff struct {
	Key    string    `json:"key"`
	Values []*string `json:"values"`
}

// Compare reads each input's fetched files (writing nothing) and lines them up.
func Compare(inputs []CompareInput) (*Compared, error) {
	c := &Compared{Differs: []SpecDiff{}}
	for _, in := range inputs {
		f, err := Summarize(in.Dir, in.Run)
		if err != nil {
			return nil, err
		}
		cr := ComparedRun{Label: in.Label, RunID: in.Run.ID, Trial: in.Trial, Dir: in.Dir, Stages: []ComparedStage{}}
		for _, s := range f.Stages {
			cr.Stages = append(cr.Stages, ComparedStage{Name: s.Name, State: string(s.State), EpochsRun: s.EpochsRun, Epochs: s.Epochs,
				BestValAccuracy: s.BestValAccuracy, BestValLoss: s.BestValLoss, FinalValAccuracy: s.FinalValAccuracy,
				FinalValLoss: s.FinalValLoss, WallTimeSeconds: s.WallTimeSeconds, ImagesPerSecond: s.ImagesPerSecond, history: s.History})
		}
		b, err := os.ReadFile(filepath.Join(in.Dir, experiment.ResolvedSpecFile))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("compare %s: no %s in %s (was it fetched?)", in.Label, experiment.ResolvedSpecFile, in.Dir)
			}
			return nil, fmt.Errorf("compare %s: %w", in.Label, err)
		}
		if cr.spec, err = FlattenSpec(b); err != nil {
			return nil, fmt.Errorf("compare %s: %s: %w", in.Label, experiment.ResolvedSpecFile, err)
		}
		c.Runs = append(c.Runs, cr)
	}
	keys := map[string]bool{}
	for _, r := range c.Runs {
		for k := range r.spec {
			keys[k] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		d := SpecDiff{Key: k}
		differs := false
		for i, r := range c.Runs {
			var v *string
			if s, ok := r.spec[k]; ok {
				v = &s
			}
			d.Values = append(d.Values, v)
			if i > 0 && !equalPtr(v, d.Values[0]) {
				differs = true
			}
		}
		if differs {
			c.Differs = append(c.Differs, d)
		}
	}
	return c, nil
}

func equalPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// StageNames are the stages of every run compared, in order of first appearance.
func (c *Compared) StageNames() []string {
	var names []string
	for _, r := range c.Runs {
		for _, s := range r.Stages {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	return names
}

// Stage is run i's stage name, nil when it has none.
func (c *Compared) Stage(i int, name string) *ComparedStage {
	for j := range c.Runs[i].Stages {
		if c.Runs[i].Stages[j].Name == name {
			return &c.Runs[i].Stages[j]
		}
	}
	return nil
}

// FlattenSpec reads a resolved spec into key paths and values: objects' keys joined with
// "." ("model.backbone"), a list of named objects (stages) by name
// ("stages.finetune.epochs", as sweeps name them), other lists as one JSON value
// ("data.image_size" = "[64,64]"). Strings are bare, other values JSON.
func FlattenSpec(b []byte) (map[string]string, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	out := map[string]string{}
	flatten("", v, out)
	return out, nil
}

func flatten(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			flatten(join(k), x, out)
		}
		if len(t) == 0 {
			out[prefix] = "{}"
		}
		return
	case []any:
		if names, ok := namedList(t); ok {
			for i, x := range t {
				flatten(join(names[i]), x, out)
			}
			return
		}
	case string:
		out[prefix] = t
		return
	}
	b, _ := json.Marshal(v)
	out[prefix] = string(b)
}

// namedList: every element is an object with a distinct, dot-free "name".
func namedList(l []any) ([]string, bool) {
	if len(l) == 0 {
		return nil, false
	}
	names := make([]string, len(l))
	for i, x := range l {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, false
		}
		n, ok := m["name"].(string)
		if !ok || n == "" || strings.Contains(n, ".") || slices.Contains(names[:i], n) {
			return nil, false
		}
		names[i] = n
	}
	return names, true
}

// TrialLabel is how compare names trial k of run id.
func TrialLabel(id string, k int) string { return id + "/" + strconv.Itoa(k) }
