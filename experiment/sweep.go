package experiment

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxTrials is the largest sweep hpctl accepts: the product of the grid's list lengths
// plus the explicit trials. Beyond it a sweep is a job for a sweep service, not a spec.
const MaxTrials = 10000

// trialLimit is MaxTrials, lowered by the fuzzer so that each of its inputs stays cheap
// (a 10,000-trial sweep validates 10,000 specs).
var trialLimit = MaxTrials

// Sweep is a spec's `sweep:` section, expanded: every trial is the spec with its values
// applied, decoded and (by Validate) validated as a whole spec.
type Sweep struct {
	// MaxParallel is how many trials run at once (the array throttle); 0 is no limit.
	MaxParallel int
	// Keys are the swept paths, in the order they were written (grid first).
	Keys   []string
	Trials []Trial
}

// Trial is one point of a sweep.
type Trial struct {
	Index int
	// Values are this trial's swept values, in the order of Sweep.Keys' first use.
	Values []TrialValue
	// Spec is the whole spec of the trial, with its values applied (not resolved).
	Spec Spec
	pos  map[string]Pos
}

// TrialValue is one swept key's value in a trial, as written in the spec.
type TrialValue struct {
	Key string
	// Value is the YAML text of the value (a scalar's text, or a flow rendering).
	Value string
	Pos   Pos
	node  *yaml.Node
}

// Label names the trial for messages: `trial 3 (seed=2, stages.finetune.unfreeze=30)`.
func (t Trial) Label() string {
	parts := make([]string, len(t.Values))
	for i, v := range t.Values {
		parts[i] = v.Key + "=" + v.Value
	}
	return fmt.Sprintf("trial %d (%s)", t.Index, strings.Join(parts, ", "))
}

// Data is the value as YAML decodes it (a number, string, list...), for the trial table.
func (v TrialValue) Data() any {
	var x any
	if v.node == nil || v.node.Decode(&x) != nil {
		return v.Value
	}
	return x
}

// fixedKeys cannot vary between trials, with why; checked on a swept path's first word.
var fixedKeys = map[string]string{
	"name":        "the trials are one run, with one name",
	"description": "the trials are one run",
	"workdir":     "the trials are one run in one run directory",
	"executor":    "the trials are one run on one executor",
	"cluster":     "the trials are one run on one cluster",
	"slurm":       "each stage is one Slurm array job, which asks the same resources for every trial",
	"container":   "each stage's job script launches one container for every trial",
	"sweep":       "a sweep cannot sweep itself",
}

// fixedStageKeys cannot vary within a stage.
var fixedStageKeys = map[string]string{
	"name":       "the stages are the same in every trial",
	"depends_on": "the stages' order is the same in every trial",
	"slurm":      "each stage is one Slurm array job, which asks the same resources for every trial",
	"command":    "a stage's command is the same in every trial (it finds its trial in $HPCTL_TRIAL)",
}

// override is one value to apply to the spec's YAML: the path's words, the node of the
// key as written in the sweep (for positions) and the value node.
type override struct {
	key   string
	segs  []string
	keyN  *yaml.Node
	value *yaml.Node
}

// sweep decodes the `sweep:` mapping n and expands its trials from root, the spec's
// top mapping without the sweep key. Problems go to d.
func (d *decoder) sweep(root, keyN, n *yaml.Node, base *Spec) *Sweep {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "sweep", "sweep: expected a mapping with grid, trials and max_parallel, found %s", kindName(n))
		return nil
	}
	sw := &Sweep{}
	var grid [][]override // one list of choices per grid key
	var explicit [][]override
	seenKey := map[string]bool{}
	addKey := func(k string) {
		if !seenKey[k] {
			seenKey[k] = true
			sw.Keys = append(sw.Keys, k)
		}
	}
	stageNames := make([]string, len(base.Stages))
	for i, st := range base.Stages {
		stageNames[i] = st.Name
	}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		switch k.Value {
		case "max_parallel":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
				d.errorf(v, "sweep.max_parallel", "sweep.max_parallel: expected an integer, found %s", kindName(v))
				ok = false
				continue
			}
			mp, err := strconv.Atoi(v.Value)
			if err != nil || mp < 0 || mp > MaxTrials {
				d.errorf(v, "sweep.max_parallel", "sweep.max_parallel: %s is not between 0 (no limit) and %d", v.Value, MaxTrials)
				ok = false
				continue
			}
			sw.MaxParallel = mp
		case "grid":
			if v.Kind != yaml.MappingNode {
				d.errorf(v, "sweep.grid", "sweep.grid: expected a mapping of spec keys to lists of values, found %s", kindName(v))
				ok = false
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				gk, gv := v.Content[j], v.Content[j+1]
				segs, good := d.sweepPath(gk, "sweep.grid."+gk.Value, stageNames)
				if gv.Kind == yaml.AliasNode {
					gv = gv.Alias
				}
				if gv.Kind != yaml.SequenceNode || len(gv.Content) == 0 {
					what := kindName(gv)
					if gv.Kind == yaml.SequenceNode {
						what = "an empty list"
					}
					d.errorf(gv, "sweep.grid."+gk.Value, "sweep.grid.%s: expected a list of at least one value to try, found %s", gk.Value, what)
					good = false
				}
				if seenKey[gk.Value] {
					d.errorf(gk, "sweep.grid."+gk.Value, "sweep.grid.%s: duplicate key", gk.Value)
					good = false
				}
				if !good {
					ok = false
					continue
				}
				addKey(gk.Value)
				choices := make([]override, len(gv.Content))
				for c, item := range gv.Content {
					choices[c] = override{key: gk.Value, segs: segs, keyN: gk, value: item}
				}
				grid = append(grid, choices)
			}
		case "trials":
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "sweep.trials", "sweep.trials: expected a list of mappings of spec keys to values, found %s", kindName(v))
				ok = false
				continue
			}
			for t, item := range v.Content {
				p := fmt.Sprintf("sweep.trials[%d]", t)
				if item.Kind == yaml.AliasNode {
					item = item.Alias
				}
				if item.Kind != yaml.MappingNode || len(item.Content) == 0 {
					d.errorf(item, p, "%s: expected a mapping of spec keys to values, found %s", p, kindName(item))
					ok = false
					continue
				}
				var ovs []override
				seen := map[string]bool{}
				for j := 0; j+1 < len(item.Content); j += 2 {
					tk, tv := item.Content[j], item.Content[j+1]
					segs, good := d.sweepPath(tk, p+"."+tk.Value, stageNames)
					if seen[tk.Value] {
						d.errorf(tk, p+"."+tk.Value, "%s.%s: duplicate key", p, tk.Value)
						good = false
					}
					seen[tk.Value] = true
					if !good {
						ok = false
						continue
					}
					addKey(tk.Value)
					ovs = append(ovs, override{key: tk.Value, segs: segs, keyN: tk, value: tv})
				}
				explicit = append(explicit, ovs)
			}
		default:
			msg := fmt.Sprintf("sweep.%s: unknown key", k.Value)
			if s := suggestKey(k.Value, []string{"grid", "trials", "max_parallel"}); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += " (known here: grid, max_parallel, trials)"
			}
			d.errorf(k, "sweep."+k.Value, "%s", msg)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	total := len(explicit)
	if len(grid) > 0 {
		prod := 1
		for _, g := range grid {
			prod *= len(g)
			if prod > trialLimit {
				break
			}
		}
		total += prod
	}
	switch {
	case total == 0:
		d.errorf(keyN, "sweep", "sweep: give a grid of values to try or a list of trials")
		return nil
	case total > trialLimit:
		d.errorf(keyN, "sweep", "sweep: more than %d trials; sweep fewer values, or split the sweep into several specs", trialLimit)
		return nil
	}
	var combos [][]override
	if len(grid) > 0 {
		idx := make([]int, len(grid))
		for {
			c := make([]override, len(grid))
			for g := range grid {
				c[g] = grid[g][idx[g]]
			}
			combos = append(combos, c)
			// The last key varies fastest, as nested loops written in order would.
			g := len(grid) - 1
			for g >= 0 {
				idx[g]++
				if idx[g] < len(grid[g]) {
					break
				}
				idx[g] = 0
				g--
			}
			if g < 0 {
				break
			}
		}
	}
	combos = append(combos, explicit...)
	// A problem the spec has without the sweep is reported once, for the spec, not again
	// for every trial.
	known := map[string]bool{}
	for _, p := range d.problems {
		known[p.String()] = true
	}
	var shared sharedProblems
	for k, ovs := range combos {
		tr, problems := d.trial(root, k, ovs)
		sw.Trials = append(sw.Trials, tr)
		for _, p := range problems {
			if !known[p.String()] {
				shared.add(p, tr)
			}
		}
	}
	d.problems = append(d.problems, shared.list()...)
	return sw
}

// sharedProblems collects trials' problems, each once: a bad value in a grid list is in
// many trials, and is reported for the first with how many more have it.
type sharedProblems struct {
	order []string
	seen  map[string]*Problem
	more  map[string]int
}

func (s *sharedProblems) add(p Problem, t Trial) {
	if s.seen == nil {
		s.seen, s.more = map[string]*Problem{}, map[string]int{}
	}
	key := p.String()
	if _, ok := s.seen[key]; ok {
		s.more[key]++
		return
	}
	// Not the path the spec's own problems are matched by: a trial's problem must not
	// hide the spec's, nor the other way round.
	q := p
	q.Msg, q.path = "sweep "+t.Label()+": "+p.Msg, "sweep#"+p.path
	s.seen[key] = &q
	s.order = append(s.order, key)
}

func (s *sharedProblems) list() []Problem {
	out := make([]Problem, 0, len(s.order))
	for _, k := range s.order {
		p := *s.seen[k]
		if n := s.more[k]; n > 0 {
			p.Msg += fmt.Sprintf(" (and %d more trial(s) with this value)", n)
		}
		out = append(out, p)
	}
	return out
}

// sweepPath checks a swept key: a dotted path to a spec key that may vary, stages named
// by their name. It reports a problem at k and returns false when it is not one.
func (d *decoder) sweepPath(k *yaml.Node, where string, stages []string) ([]string, bool) {
	segs := strings.Split(k.Value, ".")
	for _, s := range segs {
		if s == "" {
			d.errorf(k, where, "sweep: %q is not a dotted path to a spec key, such as stages.finetune.optimizer.learning_rate", k.Value)
			return nil, false
		}
	}
	if why, fixed := fixedKeys[segs[0]]; fixed {
		d.errorf(k, where, "sweep: %s cannot vary: %s", k.Value, why)
		return nil, false
	}
	t := reflect.TypeOf(Spec{})
	for i := 0; i < len(segs); i++ {
		seg := segs[i]
		if t == unfreezeType || t.Kind() != reflect.Struct {
			d.errorf(k, where, "sweep: %s: %s has no keys below it", k.Value, strings.Join(segs[:i], "."))
			return nil, false
		}
		f, names := fieldByTag(t, seg)
		if f == nil {
			msg := fmt.Sprintf("sweep: %s: unknown key %q", k.Value, seg)
			if s := suggestKey(seg, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", strings.Join(append(append([]string{}, segs[:i]...), s), "."))
			}
			d.errorf(k, where, "%s", msg)
			return nil, false
		}
		t = f.Type
		if seg == "stages" && i == 0 {
			if len(segs) < 3 {
				d.errorf(k, where, "sweep: %s cannot vary: the stages are the same in every trial; sweep a key inside one, such as stages.%s.epochs", k.Value, firstOr(stages, "frozen"))
				return nil, false
			}
			name := segs[1]
			found := false
			for _, s := range stages {
				found = found || s == name
			}
			if !found {
				msg := fmt.Sprintf("sweep: %s: the spec has no stage %q", k.Value, name)
				if s := suggestKey(name, stages); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", "stages."+s)
				} else {
					msg += " (stages: " + strings.Join(stages, ", ") + ")"
				}
				d.errorf(k, where, "%s", msg)
				return nil, false
			}
			if why, fixed := fixedStageKeys[segs[2]]; fixed {
				d.errorf(k, where, "sweep: %s cannot vary: %s", k.Value, why)
				return nil, false
			}
			t = t.Elem()
			i++ // the stage name
		}
	}
	return segs, true
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// fieldByTag finds the struct field whose yaml tag is name; names lists all of them.
func fieldByTag(t reflect.Type, name string) (*reflect.StructField, []string) {
	var names []string
	var hit *reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		names = append(names, tag)
		if tag == name {
			hit = &f
		}
	}
	sort.Strings(names)
	return hit, names
}

// trial applies ovs to a copy of root and decodes the result as a whole spec. Only the
// nodes on each override's path are copied; the rest is shared with the spec as read.
func (d *decoder) trial(root *yaml.Node, k int, ovs []override) (Trial, []Problem) {
	tr := Trial{Index: k, pos: map[string]Pos{}}
	r := root
	for _, o := range ovs {
		r = setPath(r, o.segs, o.keyN, o.value)
		tr.Values = append(tr.Values, TrialValue{Key: o.key, Value: nodeText(o.value), Pos: Pos{o.value.Line, o.value.Column}, node: o.value})
	}
	td := &decoder{file: d.file, pos: tr.pos, aliasBudget: d.startBudget, startBudget: d.startBudget}
	tr.Spec = Default()
	td.value(r, reflect.ValueOf(&tr.Spec).Elem(), "")
	return tr, td.problems
}

// setPath returns a copy of n (a mapping, or for "stages" a list of stages found by name)
// with the value at segs set to v. Keys it has to add carry keyN's position.
func setPath(n *yaml.Node, segs []string, keyN, v *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	cp := *n
	cp.Content = append([]*yaml.Node(nil), n.Content...)
	if n.Kind == yaml.SequenceNode {
		// A stage, by name; sweepPath made sure it exists.
		for i, item := range cp.Content {
			st := item
			if st.Kind == yaml.AliasNode {
				st = st.Alias
			}
			if st.Kind == yaml.MappingNode && mappingValue(st, "name") == segs[0] {
				cp.Content[i] = setPath(st, segs[1:], keyN, v)
			}
		}
		return &cp
	}
	if n.Kind != yaml.MappingNode {
		// `optimizer:` left empty, or a value of the wrong kind (decoding reports it):
		// start a mapping here.
		cp = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: keyN.Line, Column: keyN.Column}
	}
	for i := 0; i+1 < len(cp.Content); i += 2 {
		if cp.Content[i].Value == segs[0] {
			if len(segs) == 1 {
				cp.Content[i+1] = v
			} else {
				cp.Content[i+1] = setPath(cp.Content[i+1], segs[1:], keyN, v)
			}
			return &cp
		}
	}
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: segs[0], Line: keyN.Line, Column: keyN.Column}
	val := v
	if len(segs) > 1 {
		empty := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: keyN.Line, Column: keyN.Column}
		val = setPath(empty, segs[1:], keyN, v)
	}
	cp.Content = append(cp.Content, key, val)
	return &cp
}

func mappingValue(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1].Value
		}
	}
	return ""
}

// nodeText is how a value is shown in a trial's label and the trial table: a scalar as
// written, anything else in YAML flow style on one line.
func nodeText(n *yaml.Node) string {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	c := *n
	c.Style = yaml.FlowStyle
	b, err := yaml.Marshal(&c)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// trialLoaded is a trial as a Loaded spec, for validation.
func (l *Loaded) trialLoaded(t Trial) *Loaded {
	return &Loaded{Spec: t.Spec, File: l.File, Source: l.Source, pos: t.pos}
}

// validateSweep validates every trial as a whole spec. Problems the spec without the
// sweep already has are not repeated; a problem several trials share is reported once,
// for the first of them, with how many more have it.
func (l *Loaded) validateSweep(base []Problem) []Problem {
	if l.Sweep == nil {
		return nil
	}
	known := map[string]bool{}
	for _, p := range base {
		known[p.String()] = true
	}
	var shared sharedProblems
	for _, t := range l.Sweep.Trials {
		err := l.trialLoaded(t).Validate()
		if err == nil {
			continue
		}
		for _, p := range err.(*SpecError).Problems {
			if !known[p.String()] {
				shared.add(p, t)
			}
		}
	}
	return shared.list()
}
