package experiment

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/jobs"
)

// Load reads, decodes and validates a spec file. Every problem is reported at once.
func Load(file string) (*Loaded, error) {
	return load(file, nil)
}

func load(file string, site []SiteValue) (*Loaded, error) {
	src, err := readSpec(file)
	if err != nil {
		return nil, &SpecError{Problems: []Problem{{File: file, Msg: fmt.Sprintf("cannot read the spec: %v", unwrapPathError(err))}}}
	}
	l, err := Parse(file, src)
	if l == nil {
		return nil, err
	}
	var problems []Problem
	if se, ok := err.(*SpecError); ok {
		problems = se.Problems
	}
	if err := l.applySite(site); err != nil {
		return nil, err
	}
	if verr := l.Validate(); verr != nil {
		covered := decodedPaths(problems)
		for _, vp := range verr.(*SpecError).Problems {
			if !covered.covers(vp.path) {
				problems = append(problems, l.siteProblem(vp))
			}
		}
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, &SpecError{Problems: problems}
	}
	return l, nil
}

// readSpec reads a spec from a regular file of at most MaxSpecBytes. /dev/zero would be
// read without end and a FIFO would block until a writer came, so the file is opened
// without blocking and its type checked on the open descriptor (no window for a swap
// between a check by name and the open) before anything is read.
func readSpec(file string) ([]byte, error) {
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s); hpctl reads specs from files only", fileKind(fi.Mode()))
	}
	if fi.Size() > MaxSpecBytes {
		return nil, errors.New(tooBig(fi.Size()))
	}
	// The file may have grown since the Stat: read one byte past the cap to notice.
	src, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return nil, err
	}
	if len(src) > MaxSpecBytes {
		return nil, fmt.Errorf("the spec is over the limit of %d KiB for a spec file", MaxSpecBytes>>10)
	}
	return src, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

// pathSet holds the paths of decoding problems. It is a set, not a list scanned for each
// validation problem: a spec with tens of thousands of problems took seconds that way.
type pathSet struct {
	paths map[string]bool
	// all is set by a decoding problem about no path in particular (the whole spec).
	all bool
}

func decodedPaths(decoding []Problem) pathSet {
	s := pathSet{paths: make(map[string]bool, len(decoding))}
	for _, d := range decoding {
		if d.path == "" {
			s.all = true
		}
		s.paths[d.path] = true
	}
	return s
}

// covers reports whether a decoding problem already explains a problem at path: the value
// there (or above it) could not be decoded and kept its default. It looks up path and each
// of its parents ("stages[1].slurm.time", "stages[1].slurm", "stages[1]", "stages").
func (s pathSet) covers(path string) bool {
	if s.all {
		return true
	}
	for {
		if s.paths[path] {
			return true
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return false
		}
		path = path[:i]
	}
}

// sortProblems orders problems as they appear in the file, which is how people fix them.
func sortProblems(p []Problem) {
	slices.SortStableFunc(p, func(a, b Problem) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

type checker struct {
	l        *Loaded
	problems []Problem
}

func (c *checker) add(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: c.l.File, Pos: c.l.PosOf(path), Msg: displayPath(path) + ": " + fmt.Sprintf(format, args...), path: path})
}

var (
	nameRe      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	slurmNameRe = regexp.MustCompile(`^[A-Za-z0-9_.,-]*$`)
	// Slurm --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
	// days-hours:minutes, days-hours:minutes:seconds (sbatch(1)).
	slurmTimeRe = regexp.MustCompile(`^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2})$`)
	memRe       = regexp.MustCompile(`^\d+[KMGT]?$`)
	directiveRe = regexp.MustCompile(`^--([a-z][a-z0-9-]*)(=(.*))?$`)
)

// CheckName reports whether s can name an experiment, stage or run: it ends up in job
// names, file names and run directories.
func CheckName(s string) error {
	if !nameRe.MatchString(s) {
		return fmt.Errorf("%q is not a valid name: use letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit", s)
	}
	return nil
}

// Validate checks the semantics of a decoded spec and reports every problem together.
func (l *Loaded) Validate() error {
	c := &checker{l: l}
	s := &l.Spec
	c.strings()

	if s.Name == "" {
		c.add("name", "required: a short name for the experiment, such as urban-rural")
	} else if !nameRe.MatchString(s.Name) {
		c.add("name", "%q is not a valid name: use letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit", s.Name)
	}
	c.path("workdir", s.Workdir, true)
	if strings.ContainsAny(s.Workdir, "\"%\\") {
		c.add("workdir", "%q contains \", %% or \\, which Slurm's #SBATCH --output cannot carry; choose another directory", s.Workdir)
	}
	if !slices.Contains(jobs.ExecutorNames, s.Executor) {
		c.oneOf("executor", s.Executor, jobs.ExecutorNames)
	}
	if strings.HasPrefix(s.Cluster.Host, "-") || strings.ContainsAny(s.Cluster.Host, " \t") {
		c.add("cluster.host", "%q is not an ssh destination", s.Cluster.Host)
	}

	c.path("data.train", s.Data.Train, true)
	c.path("data.val", s.Data.Val, true)
	if len(s.Data.ImageSize) != 2 {
		c.add("data.image_size", "expected [height, width], found %d values", len(s.Data.ImageSize))
	} else if minSide, ok := Backbones[s.Model.Backbone]; ok {
		for i, side := range s.Data.ImageSize {
			if side < minSide {
				c.add(fmt.Sprintf("data.image_size[%d]", i), "%d is below %s's minimum of %d pixels", side, s.Model.Backbone, minSide)
			} else if side > 4096 {
				c.add(fmt.Sprintf("data.image_size[%d]", i), "%d is above the maximum of 4096 pixels", side)
			}
		}
	}
	c.intRange("data.batch_size", s.Data.BatchSize, 1, 65536)
	c.intRange("data.shuffle_buffer", s.Data.ShuffleBuffer, 1, 10_000_000)
	c.intRange("seed", s.Seed, 0, 1<<31-1)

	if _, ok := Backbones[s.Model.Backbone]; !ok {
		c.oneOf("model.backbone", s.Model.Backbone, slices.Sorted(maps.Keys(Backbones)))
	}
	if s.Model.Weights == "" {
		c.add("model.weights", "required: imagenet, none, or the path of a weights file")
	} else if s.Model.Weights != "imagenet" && s.Model.Weights != "none" {
		c.path("model.weights", s.Model.Weights, true)
	}
	c.path("model.weights_cache", s.Model.WeightsCache, s.Model.Weights == "imagenet")
	if s.Model.Dropout < 0 || s.Model.Dropout >= 1 {
		c.add("model.dropout", "%g is outside [0, 1)", s.Model.Dropout)
	}

	if s.Augment.Rotation < 0 || s.Augment.Rotation > 180 {
		c.add("augment.rotation", "%g degrees is outside [0, 180]", s.Augment.Rotation)
	}
	for _, f := range []struct {
		path string
		v    float64
	}{{"augment.zoom", s.Augment.Zoom}, {"augment.width_shift", s.Augment.WidthShift}, {"augment.height_shift", s.Augment.HeightShift}} {
		if f.v < 0 || f.v >= 1 {
			c.add(f.path, "%g is outside [0, 1): a fraction of the image", f.v)
		}
	}

	c.slurm(&s.Slurm)
	c.container(&s.Container)
	c.mountable()
	c.stages()
	c.problems = append(c.problems, l.validateSweep(c.problems)...)

	if len(c.problems) > 0 {
		return &SpecError{Problems: c.problems}
	}
	return nil
}

// strings rejects control characters anywhere: no real value has them, and a newline in a
// value that reaches an #SBATCH line would start a line of its own.
func (c *checker) strings() {
	for path, v := range stringFields(&c.l.Spec) {
		if i := strings.IndexFunc(v, unicode.IsControl); i >= 0 {
			c.add(path, "contains the control character %q at byte %d", v[i], i)
		}
	}
}

func (c *checker) path(path, v string, required bool) {
	if v == "" {
		if required {
			c.add(path, "required: a path")
		}
		return
	}
	if strings.HasPrefix(v, "~") && !strings.HasPrefix(v, "~/") && v != "~" {
		c.add(path, "%q: only ~/ (your own home) is expanded; write the full path", v)
	}
}

func (c *checker) oneOf(path, v string, allowed []string) {
	msg := fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", "))
	if s := suggestKey(v, allowed); s != "" && v != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	c.add(path, "%s", msg)
}

func (c *checker) intRange(path string, v, lo, hi int) {
	if v < lo || v > hi {
		c.add(path, "%d is outside [%d, %d]", v, lo, hi)
	}
}

func (c *checker) slurm(sl *Slurm) {
	for _, f := range []struct{ path, v string }{{"slurm.partition", sl.Partition}, {"slurm.account", sl.Account}, {"slurm.qos", sl.QOS}} {
		if !slurmNameRe.MatchString(f.v) {
			c.add(f.path, "%q is not a Slurm name (letters, digits, '_', '.', ',', '-')", f.v)
		}
	}
	c.slurmTime("slurm.time", sl.Time, true)
	c.intRange("slurm.gpus", sl.GPUs, 0, 16)
	c.intRange("slurm.cpus_per_task", sl.CPUsPerTask, 1, 1024)
	c.mem("slurm.mem", sl.Mem, true)
	c.nodes("slurm.nodes", sl.Nodes)
	c.intRange("slurm.signal_before", sl.SignalBefore, 0, 65535)
	for i, e := range sl.Extra {
		if msg := checkExtra(e); msg != "" {
			c.add(fmt.Sprintf("slurm.extra[%d]", i), "%q %s", e, msg)
		}
	}
}

// ownedOptions are the sbatch options that hpctl writes into every job script, with the
// spec key that sets each ("" when hpctl alone decides it). The same option in slurm.extra
// would override hpctl's or clash with it: a second --job-name renames the job and `hpctl
// logs` no longer finds its log.
var ownedOptions = map[string]string{
	"job-name": "", "chdir": "", "output": "", "error": "", "open-mode": "",
	"array": "", "dependency": "",
	"partition": "slurm.partition", "account": "slurm.account", "qos": "slurm.qos",
	"time": "slurm.time", "gres": "slurm.gpus", "gpus": "slurm.gpus",
	"cpus-per-task": "slurm.cpus_per_task", "mem": "slurm.mem", "nodes": "slurm.nodes",
	"signal": "slurm.signal_before", "requeue": "slurm.requeue", "no-requeue": "slurm.requeue",
	// sbatch refuses --mem-per-cpu or --mem-per-gpu next to hpctl's --mem.
	"mem-per-cpu": "slurm.mem", "mem-per-gpu": "slurm.mem",
}

// shortOptions are sbatch's one-letter forms of the owned options.
var shortOptions = map[byte]string{
	'J': "job-name", 'o': "output", 'e': "error", 'D': "chdir", 'a': "array", 'd': "dependency",
	'p': "partition", 'A': "account", 'q': "qos", 't': "time", 'N': "nodes", 'c': "cpus-per-task",
	'G': "gpus",
}

// checkExtra returns why e cannot be one slurm.extra line, or "". The line is written as
// `#SBATCH e`, where sbatch reads one word per option (a space ends it, quotes and
// backslashes are removed, '#' starts a comment: checked with sbatch 22.05), so an entry must
// be exactly one long option whose value sbatch reads as written. sbatch also takes any unambiguous prefix of a long option
// (--job=x is --job-name=x), so prefixes of the options hpctl owns are refused too.
func checkExtra(e string) string {
	const form = "; write one option per entry, as --name or --name=value"
	lower := strings.ToLower(e)
	if strings.Contains(lower, "hetjob") || strings.Contains(lower, "packjob") {
		return "would split the job script into heterogeneous job components (sbatch reads hetjob/packjob on an #SBATCH line as a separator); hpctl submits one job per stage"
	}
	if len(e) >= 2 && e[0] == '-' && e[1] != '-' {
		if long, ok := shortOptions[e[1]]; ok {
			return ownedMsg("-"+e[1:2], long)
		}
		return "is a short option" + form
	}
	m := directiveRe.FindStringSubmatch(e)
	if m == nil {
		return "is not an sbatch option of the form --name or --name=value"
	}
	name, hasValue, value := m[1], m[2] != "", m[3]
	if _, ok := ownedOptions[name]; ok {
		return ownedMsg("--"+name, name)
	}
	var owned []string
	for _, opt := range slices.Sorted(maps.Keys(ownedOptions)) {
		if strings.HasPrefix(opt, name) {
			owned = append(owned, "--"+opt)
		}
	}
	switch {
	case len(owned) == 1:
		return ownedMsg("--"+name, owned[0][2:])
	case len(owned) > 1:
		return fmt.Sprintf("abbreviates %s, options that hpctl writes itself", strings.Join(owned, ", "))
	}
	if hasValue && value == "" {
		return "has an empty value" + form
	}
	if i := strings.IndexFunc(value, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("'\"\\#", r)
	}); i >= 0 {
		return fmt.Sprintf("holds %q, which sbatch does not read as written on an #SBATCH line (a space ends the option; quotes and '\\' are removed; '#' starts a comment)%s", value[i:i+1], form)
	}
	return ""
}

func ownedMsg(written, opt string) string {
	which := written
	if written != "--"+opt {
		which = fmt.Sprintf("%s (sbatch reads it as --%s)", written, opt)
	}
	if key := ownedOptions[opt]; key != "" {
		return fmt.Sprintf("sets %s, which hpctl writes itself; use %s instead", which, key)
	}
	return fmt.Sprintf("sets %s, which hpctl writes itself and a job must keep", which)
}

func (c *checker) slurmTime(path, v string, required bool) {
	if v == "" && !required {
		return
	}
	if !slurmTimeRe.MatchString(v) {
		c.add(path, "%q is not a Slurm time (for example 12:00:00, 90, 1-12:00:00)", v)
		return
	}
	if v == "0" || strings.Trim(v, "0:-") == "" {
		c.add(path, "%q is a zero time limit", v)
		return
	}
	// Slurm sends USR2 signal_before seconds ahead of the limit: with a limit no longer
	// than that, the job is told to stop the moment it starts and never trains.
	if sec := slurmSeconds(v); sec <= int64(c.l.Spec.Slurm.SignalBefore) {
		c.add(path, "%q (%d s) is not longer than slurm.signal_before (%d s): the stop signal would come as the job starts; raise the time or lower signal_before",
			v, sec, c.l.Spec.Slurm.SignalBefore)
	}
}

// slurmSeconds reads a time that slurmTimeRe accepted, in sbatch's forms: minutes,
// minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes,
// days-hours:minutes:seconds.
func slurmSeconds(v string) int64 {
	var days int64
	rest := v
	if d, r, ok := strings.Cut(v, "-"); ok {
		days, _ = strconv.ParseInt(d, 10, 64)
		rest = r
	}
	var n []int64
	for _, f := range strings.Split(rest, ":") {
		x, _ := strconv.ParseInt(f, 10, 64)
		n = append(n, x)
	}
	if strings.Contains(v, "-") { // days-hours[:minutes[:seconds]]
		for len(n) < 3 {
			n = append(n, 0)
		}
		return days*86400 + n[0]*3600 + n[1]*60 + n[2]
	}
	switch len(n) {
	case 1:
		return n[0] * 60
	case 2:
		return n[0]*60 + n[1]
	}
	return n[0]*3600 + n[1]*60 + n[2]
}

func (c *checker) mem(path, v string, required bool) {
	if v == "" && !required {
		return
	}
	if !memRe.MatchString(v) {
		c.add(path, "%q is not a Slurm memory size (for example 32G, 8000M; 0 means all of the node)", v)
	}
}

func (c *checker) container(ct *Container) {
	rt, err := containers.Lookup(ct.Runtime)
	if err != nil {
		c.oneOf("container.runtime", ct.Runtime, containers.Names())
		return
	}
	caps := rt.Capabilities()
	if caps.NeedsImage && ct.Image == "" {
		c.add("container.image", "required for runtime %s: a .sqsh/.sif path or a registry reference", ct.Runtime)
	}
	for i, m := range ct.Mounts {
		p := fmt.Sprintf("container.mounts[%d]", i)
		parts := strings.Split(m, ":")
		switch {
		case len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "":
			c.add(p, "%q is not SOURCE:TARGET or SOURCE:TARGET:OPTIONS", m)
		case caps.MountListSeparator != "" && strings.Contains(m, caps.MountListSeparator):
			c.add(p, "%q: '%s' separates mounts for %s; give one mount per entry", m, caps.MountListSeparator, ct.Runtime)
		default:
			// ':' was read above as the field separator; any other forbidden character
			// would split a field.
			if cs := forbiddenIn(m, strings.ReplaceAll(caps.MountForbidden, ":", "")); cs != "" {
				c.add(p, "%q holds %s, which runtime %s cannot mount; rename the directory or use runtime none", m, cs, ct.Runtime)
			}
		}
	}
	if ct.Python == "" {
		c.add("container.python", "required: the python interpreter inside the container, such as python3")
	}
}

// mountable rejects paths that the container runtime must mount but cannot express: those
// holding a character of its Capabilities().MountForbidden (pyxis and apptainer separate
// mounts with ',' and fields with ':', docker fields with ':').
func (c *checker) mountable() {
	s := &c.l.Spec
	rt, err := containers.Lookup(s.Container.Runtime)
	if err != nil {
		return // container() reported it
	}
	forbidden := rt.Capabilities().MountForbidden
	fields := []struct{ path, v string }{
		{"workdir", s.Workdir}, {"data.train", s.Data.Train}, {"data.val", s.Data.Val},
		{"model.weights_cache", s.Model.WeightsCache},
	}
	if s.Model.Weights != "imagenet" && s.Model.Weights != "none" {
		fields = append(fields, struct{ path, v string }{"model.weights", s.Model.Weights})
	}
	for _, f := range fields {
		if cs := forbiddenIn(f.v, forbidden); cs != "" {
			c.add(f.path, "%q holds %s, which runtime %s cannot mount; rename the directory or use runtime none", f.v, cs, s.Container.Runtime)
		}
	}
}

// forbiddenIn names the characters of chars as a message lists them: "',' or ':'". It
// names them all when v holds any (the user learns every character to avoid at once),
// and returns "" when v holds none.
func forbiddenIn(v, chars string) string {
	if !strings.ContainsAny(v, chars) {
		return ""
	}
	var q []string
	for _, r := range chars {
		q = append(q, "'"+string(r)+"'")
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func (c *checker) stages() {
	s := &c.l.Spec
	if len(s.Stages) == 0 {
		c.add("stages", "required: at least one stage (see configs/urban.yaml)")
		return
	}
	index := map[string]int{}
	for i, st := range s.Stages {
		p := fmt.Sprintf("stages[%d]", i)
		switch {
		case st.Name == "":
			c.add(p+".name", "required: a name such as frozen or finetune")
		case !nameRe.MatchString(st.Name):
			c.add(p+".name", "%q is not a valid stage name: letters, digits, '.', '_' and '-'", st.Name)
		default:
			if j, dup := index[st.Name]; dup {
				c.add(p+".name", "%q is already the name of stages[%d]", st.Name, j)
			} else {
				index[st.Name] = i
			}
		}
		c.intRange(p+".epochs", st.Epochs, 1, 100000)
		c.intRange(p+".steps_per_epoch", st.StepsPerEpoch, 0, 1<<30)
		c.intRange(p+".validation_steps", st.ValidationSteps, 0, 1<<30)
		if !slices.Contains(Optimizers, st.Optimizer.Name) {
			c.oneOf(p+".optimizer.name", st.Optimizer.Name, Optimizers)
		}
		if lr := st.Optimizer.LearningRate; !(lr > 0 && lr <= 10) {
			c.add(p+".optimizer.learning_rate", "%g is not a learning rate in (0, 10]", lr)
		}
		c.slurmTime(p+".slurm.time", st.Slurm.Time, false)
		c.mem(p+".slurm.mem", st.Slurm.Mem, false)
		if !slurmNameRe.MatchString(st.Slurm.Partition) {
			c.add(p+".slurm.partition", "%q is not a Slurm name", st.Slurm.Partition)
		}
		if st.Slurm.GPUs != nil {
			c.intRange(p+".slurm.gpus", *st.Slurm.GPUs, 0, 16)
		}
		if st.Slurm.CPUsPerTask != nil {
			c.intRange(p+".slurm.cpus_per_task", *st.Slurm.CPUsPerTask, 1, 1024)
		}
		if st.Slurm.Nodes != nil {
			c.nodes(p+".slurm.nodes", *st.Slurm.Nodes)
		}
		for j, arg := range st.Command {
			if arg == "" && j == 0 {
				c.add(fmt.Sprintf("%s.command[0]", p), "the program to run is empty")
			}
		}
	}
	// A misspelt dependency gets a "did you mean" among the stage names: sorted once, and
	// only among a pipeline's worth of names, as each suggestion compares with all of them
	// (thousands of stages each naming a missing one took seconds).
	names := slices.Sorted(maps.Keys(index))
	if len(names) > maxSuggestAmong {
		names = nil
	}
	for i, st := range s.Stages {
		p := fmt.Sprintf("stages[%d]", i)
		for j, dep := range st.DependsOn {
			dp := fmt.Sprintf("%s.depends_on[%d]", p, j)
			if _, ok := index[dep]; !ok {
				msg := fmt.Sprintf("no stage is called %q", dep)
				if sug := suggestKey(dep, names); sug != "" {
					msg += fmt.Sprintf("; did you mean %q?", sug)
				}
				c.add(dp, "%s", msg)
			} else if dep == st.Name {
				c.add(dp, "stage %q depends on itself", dep)
			}
		}
		if src := ParseInitFrom(st.InitFrom); src.Stage == "" {
			c.checkInitFrom(i, st)
		} else {
			if _, ok := index[st.InitFrom]; !ok {
				c.add(p+".init_from", "no stage is called %q", st.InitFrom)
			} else if !c.reaches(st.Name, st.InitFrom, index, map[string]bool{}) {
				c.add(p+".init_from", "stage %q must depend on %q (directly or not) to start from its checkpoint", st.Name, st.InitFrom)
			}
		}
	}
	if cyc := c.cycle(index); cyc != nil {
		first := index[cyc[0]]
		c.add(fmt.Sprintf("stages[%d].depends_on", first), "dependency cycle: %s", strings.Join(cyc, " -> "))
	}
}

// MaxNodes is the most nodes one stage may ask for: far beyond what a test or a
// transfer-learning stage needs, low enough that a typo is caught.
const MaxNodes = 256

// multiNodeRefused are the runtimes that cannot run a stage on several nodes, and why.
var multiNodeRefused = map[string]string{
	"docker": "docker's bridge network hides each node's trainer port from the others, and its " +
		"containers do not see Slurm's task variables; use pyxis, apptainer, singularity or none",
	"podman": "podman's network hides each node's trainer port from the others, and its " +
		"containers do not see Slurm's task variables; use pyxis, apptainer, singularity or none",
}

// nodes checks a node count: 1 to MaxNodes, and more than 1 only with a runtime that
// can run one trainer per node (srun launching the runtime on each).
func (c *checker) nodes(path string, n int) {
	if n < 1 || n > MaxNodes {
		c.add(path, "%d is not a node count: 1 to %d (more than 1 runs one trainer per node, "+
			"MultiWorkerMirroredStrategy)", n, MaxNodes)
		return
	}
	if why, bad := multiNodeRefused[c.l.Spec.Container.Runtime]; n > 1 && bad {
		c.add(path, "%d nodes with container.runtime %s: %s", n, c.l.Spec.Container.Runtime, why)
	}
}

// maxSuggestAmong is the most stage names a missing dependency is compared with for a
// suggestion; real pipelines have a handful of stages.
const maxSuggestAmong = 256

// reaches reports whether stage from depends on target, directly or through others.
func (c *checker) reaches(from, target string, index map[string]int, seen map[string]bool) bool {
	if seen[from] {
		return false
	}
	seen[from] = true
	i, ok := index[from]
	if !ok {
		return false
	}
	for _, d := range c.l.Spec.Stages[i].DependsOn {
		if d == target || c.reaches(d, target, index, seen) {
			return true
		}
	}
	return false
}

// cycle returns one dependency cycle as a path of stage names, or nil.
func (c *checker) cycle(index map[string]int) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range c.l.Spec.Stages[index[n]].DependsOn {
			if _, ok := index[d]; !ok || d == n {
				continue
			}
			switch color[d] {
			case grey:
				k := slices.Index(stack, d)
				found = append(append([]string{}, stack[k:]...), d)
				return true
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, st := range c.l.Spec.Stages {
		if _, ok := index[st.Name]; ok && color[st.Name] == white && visit(st.Name) {
			return found
		}
	}
	return nil
}

// stringFields lists every string value of the spec by its path, for checks that apply to
// all of them (and for the injection tests, which fill each one with hostile text).
func stringFields(s *Spec) map[string]string {
	out := map[string]string{}
	for _, f := range StringFieldPointers(s) {
		out[f.Path] = *f.Ptr
	}
	return out
}

// StringField is a settable string of a spec, by path.
type StringField struct {
	Path string
	Ptr  *string
}

// StringFieldPointers returns every string in the spec that the user can write, with its
// path, so tests can fill each with hostile text without listing them by hand.
func StringFieldPointers(s *Spec) []StringField {
	f := []StringField{
		{"name", &s.Name}, {"description", &s.Description}, {"workdir", &s.Workdir},
		{"executor", &s.Executor}, {"cluster.host", &s.Cluster.Host},
		{"data.train", &s.Data.Train}, {"data.val", &s.Data.Val},
		{"model.backbone", &s.Model.Backbone}, {"model.weights", &s.Model.Weights},
		{"model.weights_cache", &s.Model.WeightsCache},
		{"slurm.partition", &s.Slurm.Partition}, {"slurm.account", &s.Slurm.Account},
		{"slurm.qos", &s.Slurm.QOS}, {"slurm.time", &s.Slurm.Time}, {"slurm.mem", &s.Slurm.Mem},
		{"container.runtime", &s.Container.Runtime}, {"container.image", &s.Container.Image},
		{"container.python", &s.Container.Python},
	}
	for i := range s.Slurm.Extra {
		f = append(f, StringField{fmt.Sprintf("slurm.extra[%d]", i), &s.Slurm.Extra[i]})
	}
	for i := range s.Container.Mounts {
		f = append(f, StringField{fmt.Sprintf("container.mounts[%d]", i), &s.Container.Mounts[i]})
	}
	for i := range s.Stages {
		st := &s.Stages[i]
		p := "stages[" + strconv.Itoa(i) + "]"
		f = append(f,
			StringField{p + ".name", &st.Name}, StringField{p + ".init_from", &st.InitFrom},
			StringField{p + ".optimizer.name", &st.Optimizer.Name},
			StringField{p + ".slurm.partition", &st.Slurm.Partition},
			StringField{p + ".slurm.time", &st.Slurm.Time}, StringField{p + ".slurm.mem", &st.Slurm.Mem})
		for j := range st.DependsOn {
			f = append(f, StringField{fmt.Sprintf("%s.depends_on[%d]", p, j), &st.DependsOn[j]})
		}
		for j := range st.Command {
			f = append(f, StringField{fmt.Sprintf("%s.command[%d]", p, j), &st.Command[j]})
		}
	}
	return f
}
