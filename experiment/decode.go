package experiment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/hpctl/hpctl/internal/suggest"

	"gopkg.in/yaml.v3"
)

// Pos is a place in a spec file, 1-based.
type Pos struct {
	Line int
	Col  int
}

// Problem is one thing wrong with a spec, with where it is.
type Problem struct {
	File string
	Pos  Pos
	Msg  string
	// path is the spec path the problem is about, so that a value that failed to decode
	// is not reported a second time by validation.
	path string
}

func (p Problem) String() string {
	if p.Pos.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Pos.Line, p.Pos.Col, p.Msg)
}

// SpecError carries every problem found in a spec, not just the first, so a user fixes
// them in one go. The command layer maps it to the usage/spec exit code.
type SpecError struct {
	Problems []Problem
}

func (e *SpecError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Loaded is a decoded spec with the position of every key the user wrote, so that
// validation can point at the offending line.
type Loaded struct {
	Spec Spec
	File string
	// Source is the file exactly as read; it is staged as spec.yaml.
	Source []byte
	// Sweep is the expanded `sweep:` section; nil for a spec that runs one trial.
	Sweep *Sweep
	// Site are the site settings the spec took (LoadWith), in the order given.
	Site []SiteValue
	pos  map[string]Pos
}

// PosOf returns where path (for example "stages[1].epochs") was written, falling back to
// its closest written parent, then to the top of the file.
func (l *Loaded) PosOf(path string) Pos {
	for {
		if p, ok := l.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return Pos{Line: 1, Col: 1}
		}
		path = path[:i]
	}
}

// Has reports whether the user wrote path (for example "stages[0].epochs") rather than
// leaving it to its default.
func (l *Loaded) Has(path string) bool {
	_, ok := l.pos[path]
	return ok
}

// MaxSpecBytes caps the size of a spec file. Real specs are a few kilobytes; the cap keeps
// a stray multi-gigabyte file (or /dev/zero behind a symlink) from being read into memory,
// and bounds the YAML node tree that decoding builds. docs/spec.md states it.
const MaxSpecBytes = 256 << 10

// minAliasBudget is the number of values that aliases may expand to in any spec, however
// small; a larger spec may expand to as many values as it has nodes of its own. Like
// go-yaml's and Kubernetes' guards against "billion laughs" documents, this bounds the
// decoded spec to a small multiple of the file: a 100 KB list of `- *st` aliases to a
// stage with a long command otherwise decodes to hundreds of millions of strings.
const minAliasBudget = 10_000

type decoder struct {
	file     string
	pos      map[string]Pos
	problems []Problem
	// aliasBudget is how many more nodes may be decoded through aliases; outerAlias is the
	// alias written outside any other alias's expansion that is being decoded now (nil when
	// none), the position reported when the budget runs out; exhausted stops decoding.
	aliasBudget, startBudget int
	outerAlias               *yaml.Node
	exhausted                bool
}

// expand charges one node decoded through an alias against the budget. It reports false,
// once, with a problem at the outermost alias being expanded, when the budget is spent.
func (d *decoder) expand() bool {
	if d.exhausted {
		return false
	}
	if d.outerAlias == nil {
		return true
	}
	d.aliasBudget--
	if d.aliasBudget >= 0 {
		return true
	}
	d.exhausted = true
	d.problems = append(d.problems, Problem{File: d.file, Pos: Pos{d.outerAlias.Line, d.outerAlias.Column},
		Msg: fmt.Sprintf("too many alias expansions (the aliases of this spec expand to more than %d values); write the values out, or alias fewer of them", d.startBudget)})
	return false
}

// countNodes counts the nodes of a YAML tree as written, without following aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Pos: Pos{n.Line, n.Column}, Msg: fmt.Sprintf(format, args...), path: path})
}

// Parse decodes a spec from YAML source. Unknown keys, wrong types and malformed YAML are
// reported as a *SpecError with positions; semantic checks are Validate's job. When the
// YAML itself parsed, the returned *Loaded is non-nil even with problems (keys in error
// keep their defaults), so Load can report decoding and semantic problems together.
func Parse(file string, src []byte) (*Loaded, error) {
	if len(src) > MaxSpecBytes {
		return nil, &SpecError{Problems: []Problem{{File: file, Msg: tooBig(int64(len(src)))}}}
	}
	l := &Loaded{Spec: Default(), File: file, Source: src, pos: map[string]Pos{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &SpecError{Problems: []Problem{{File: file, Msg: "the spec is empty; `hpctl init NAME` writes a starter"}}}
		}
		return nil, &SpecError{Problems: []Problem{yamlProblem(file, err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &SpecError{Problems: []Problem{{File: file, Pos: Pos{extra.Line, extra.Column}, Msg: "a spec holds one YAML document; remove the second `---`"}}}
	}
	budget := max(minAliasBudget, countNodes(&doc))
	d := &decoder{file: file, pos: l.pos, aliasBudget: budget, startBudget: budget}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root, sweepKey, sweepVal := withoutKey(root, "sweep")
	d.value(root, reflect.ValueOf(&l.Spec).Elem(), "")
	if d.exhausted {
		// The half-decoded spec is not worth validating: its problems would be artefacts
		// of where decoding stopped.
		return nil, &SpecError{Problems: d.problems}
	}
	if sweepVal != nil {
		d.pos["sweep"] = Pos{sweepVal.Line, sweepVal.Column}
		l.Sweep = d.sweep(root, sweepKey, sweepVal, &l.Spec)
	}
	if len(d.problems) > 0 {
		return l, &SpecError{Problems: d.problems}
	}
	return l, nil
}

// withoutKey returns mapping n without key (a copy; n is left as it is), and the key's
// and value's nodes when it was there.
func withoutKey(n *yaml.Node, key string) (*yaml.Node, *yaml.Node, *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return n, nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			cp := *n
			cp.Content = append(append([]*yaml.Node(nil), n.Content[:i]...), n.Content[i+2:]...)
			return &cp, n.Content[i], n.Content[i+1]
		}
	}
	return n, nil, nil
}

// yamlProblem turns yaml.v3's "yaml: line N: msg" into a positioned problem.
func yamlProblem(file string, err error) Problem {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if strings.HasPrefix(msg, "line ") {
		rest := msg[len("line "):]
		if i := strings.Index(rest, ":"); i > 0 {
			if n, convErr := strconv.Atoi(rest[:i]); convErr == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	if line == 0 {
		return Problem{File: file, Msg: "invalid YAML: " + msg}
	}
	return Problem{File: file, Pos: Pos{Line: line, Col: 1}, Msg: "invalid YAML: " + msg}
}

var unfreezeType = reflect.TypeOf(Unfreeze{})

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!bool":
		return "a boolean"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	}
	return fmt.Sprintf("the string %q", n.Value)
}

func tooBig(size int64) string {
	return fmt.Sprintf("the spec is %d bytes, over the limit of %d KiB for a spec file", size, MaxSpecBytes>>10)
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		if d.outerAlias == nil {
			d.outerAlias = n
			defer func() { d.outerAlias = nil }()
		}
		n = n.Alias
	}
	if !d.expand() {
		return
	}
	if v.Type() == unfreezeType {
		d.unfreeze(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		nv := reflect.New(v.Type().Elem())
		d.value(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag == "!!null" {
				v.Set(reflect.Zero(v.Type()))
				return
			}
			d.errorf(n, path, "%s: expected a list, found %s", displayPath(path), kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.pos[p] = Pos{item.Line, item.Column}
			if v.Type().Elem() == reflect.TypeOf(Stage{}) {
				s.Index(i).Set(reflect.ValueOf(defaultStage()))
			}
			d.value(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if !d.scalar(n, path, "a string") {
			return
		}
		if n.Tag == "!!null" || n.Tag == "!!bool" {
			d.errorf(n, path, "%s: expected a string, found %s", displayPath(path), kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		if n.Tag != "!!bool" {
			d.errorf(n, path, "%s: expected true or false, found %s", displayPath(path), kindName(n))
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int:
		if !d.scalar(n, path, "an integer") {
			return
		}
		if n.Tag != "!!int" {
			d.errorf(n, path, "%s: expected an integer, found %s", displayPath(path), kindName(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
			d.errorf(n, path, "%s: integer %s is out of range", displayPath(path), n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if !d.scalar(n, path, "a number") {
			return
		}
		if n.Tag != "!!int" && n.Tag != "!!float" {
			d.errorf(n, path, "%s: expected a number, found %s", displayPath(path), kindName(n))
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errorf(n, path, "%s: %q is not a finite number", displayPath(path), n.Value)
			return
		}
		v.SetFloat(f)
	default:
		panic("jobs: spec field of unsupported kind " + v.Kind().String())
	}
}

func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "%s: expected %s, found %s", displayPath(path), want, kindName(n))
		return false
	}
	return true
}

func (d *decoder) unfreeze(n *yaml.Node, v reflect.Value, path string) {
	const want = "none, all, or a number of layers"
	if !d.scalar(n, path, want) {
		return
	}
	switch {
	case n.Tag == "!!int":
		i, err := strconv.Atoi(n.Value)
		if err != nil || i < 0 {
			d.errorf(n, path, "%s: expected %s, found %s", displayPath(path), want, n.Value)
			return
		}
		v.Set(reflect.ValueOf(Unfreeze{Layers: i}))
	case n.Tag == "!!str" && n.Value == "all":
		v.Set(reflect.ValueOf(Unfreeze{All: true}))
	case n.Tag == "!!str" && n.Value == "none":
		v.Set(reflect.ValueOf(Unfreeze{}))
	default:
		d.errorf(n, path, "%s: expected %s, found %s", displayPath(path), want, kindName(n))
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" && path != "" {
			return // `slurm:` with nothing under it keeps the defaults
		}
		what := "a mapping of keys"
		if path == "" {
			what = "a mapping of keys at the top of the spec"
		}
		d.errorf(n, path, "%s: expected %s, found %s", displayPath(path), what, kindName(n))
		return
	}
	fields := map[string]int{}
	names := make([]string, 0, v.NumField())
	for i := 0; i < v.NumField(); i++ {
		tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
		fields[tag] = i
		names = append(names, tag)
	}
	if path == "" {
		names = append(names, "sweep") // decoded on its own (sweep.go)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		// A key charges the budget too: unknown keys of an aliased mapping are reported
		// once per alias and are never decoded through value.
		if !d.expand() {
			return
		}
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		p := key
		if path != "" {
			p = path + "." + key
		}
		if seen[key] {
			d.errorf(k, p, "%s: duplicate key", displayPath(p))
			continue
		}
		seen[key] = true
		idx, ok := fields[key]
		if !ok {
			msg := fmt.Sprintf("%s: unknown key", displayPath(p))
			if s := suggestKey(key, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				sort.Strings(names)
				msg += " (known here: " + strings.Join(names, ", ") + ")"
			}
			d.errorf(k, p, "%s", msg)
			continue
		}
		d.pos[p] = Pos{val.Line, val.Column}
		d.value(val, v.Field(idx), p)
	}
}

func displayPath(p string) string {
	if p == "" {
		return "spec"
	}
	return p
}

// suggestKey returns the known name closest to key when it is close enough to be a typo.
func suggestKey(key string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := suggest.Distance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	limit := 2
	if len(key) > 8 {
		limit = 3
	}
	if bestD <= limit {
		return best
	}
	return ""
}
