// Package containers is the seam between a stage's command and the way it runs on a node:
// pyxis/enroot, apptainer or singularity, docker or podman, or the host itself. Each
// runtime lives in one file and registers itself; adding one is adding a file.
//
// Each runtime also declares its Capabilities: what it needs (an image, an srun step) and
// which characters it cannot mount. Spec validation (package experiment) and submission
// (package pipeline) consult them rather than naming runtimes, so a new runtime is checked
// by the rules it declares. Register is exported so that a runtime can be added from
// outside this package too, as the render package's tests do; the built-in runtimes call
// it from their init functions.
//
// A runtime never writes shell text. It returns Words, and the renderer quotes them, so
// no value from a spec can change the shape of a script. The one exception, a word that
// the shell must expand on the node (docker's GPU list from CUDA_VISIBLE_DEVICES), is a
// separate part kind that only this package can create, from constants written here.
package containers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hpctl/hpctl/internal/homepath"
	"github.com/hpctl/hpctl/internal/shell"
)

// Runtime turns a Launch into the words of the command line that runs it.
type Runtime interface {
	// Name is the value of the spec's container.runtime.
	Name() string
	// Command returns the launch line for l. It fails when l cannot be expressed for
	// this runtime (for example a path holding the runtime's mount separator).
	Command(l Launch) ([]Word, error)
	// Capabilities says what the runtime needs and what it can express.
	Capabilities() Capabilities
}

// Capabilities is what a runtime declares about itself. The first four fields are rules
// that validation, submission and Command enforce; GPUs and Signals are informational (a
// person choosing a runtime reads them, tests check them against Command) and change
// nothing that hpctl does.
type Capabilities struct {
	// NeedsImage: container.image is required (every runtime but none).
	NeedsImage bool
	// NeedsSrun: the launch line is an srun step (pyxis is srun --container-image), so
	// the stage can only run inside a Slurm job; submission refuses the local executor.
	NeedsSrun bool
	// MountForbidden holds the characters that a mounted path (source, target, options)
	// cannot contain, because the runtime reads them as separators. Validation refuses
	// spec paths holding one, and CheckedMounts refuses them when the line is built.
	MountForbidden string
	// MountListSeparator, when set, separates mounts inside one argument (pyxis's
	// --container-mounts, apptainer's --bind); a container.mounts entry holding it would
	// be read as several mounts and is refused. It is also in MountForbidden.
	MountListSeparator string
	// GPUs says how the job's GPUs reach the command (informational).
	GPUs GPUAccess
	// Signals says how the job shell's TERM and USR2 reach the command (informational).
	Signals SignalPath
	// Program is the command the launch line starts, which submission checks is on PATH
	// where the jobs are submitted ("" for none).
	Program string
	// ProgramFlag, when set, is a flag that `Program --help` must list: pyxis is a Slurm
	// plugin that adds --container-image to srun, and srun without it fails every stage.
	ProgramFlag string
	// ImageFiles are the suffixes of the image files the runtime reads (.sqsh, .sif). An
	// image that is such a file (see ImageFile) is checked to exist at submission.
	ImageFiles []string
}

// ImageFile says whether image is a file that must exist where the jobs run, rather
// than a reference the runtime resolves (docker://..., nvcr.io#nvidia/..., a name in a
// local image store): a path (absolute, or from ~ or $HOME) or a name with one of the
// runtime's image file suffixes, for a runtime that reads image files.
func ImageFile(c Capabilities, image string) bool {
	if len(c.ImageFiles) == 0 || image == "" || strings.Contains(image, "://") || strings.Contains(image, "#") {
		return false
	}
	if _, home := homepath.Split(image); home || strings.HasPrefix(image, "/") || strings.HasPrefix(image, "./") {
		return true
	}
	for _, suffix := range c.ImageFiles {
		if strings.HasSuffix(image, suffix) {
			return true
		}
	}
	return false
}

// GPUAccess is how a runtime gives the command the job's GPUs.
type GPUAccess int

const (
	// GPUInherit: nothing is passed; the command sees the GPUs of its process, the job's
	// (none runs on the host with CUDA_VISIBLE_DEVICES; pyxis's srun step inherits the
	// job's gres).
	GPUInherit GPUAccess = iota
	// GPUNvFlag: --nv adds the NVIDIA driver and devices when the stage has GPUs; the
	// host's CUDA_VISIBLE_DEVICES comes in with the environment (apptainer, singularity).
	GPUNvFlag
	// GPUDevicesFlag: --gpus names the devices, from CUDA_VISIBLE_DEVICES expanded on the
	// node (docker's device= list, through the NVIDIA Container Toolkit); without it,
	// every GPU.
	GPUDevicesFlag
	// GPUCDI: --device nvidia.com/gpu=all, a CDI device (podman: its --gpus adds no
	// devices before podman 5.0); the job's CUDA_VISIBLE_DEVICES comes in with -e and
	// picks the granted ones. Needs a CDI spec (nvidia-ctk cdi generate) where it runs.
	GPUCDI
)

// SignalPath is how a signal sent to the launch line's process reaches the command.
type SignalPath int

const (
	// SignalDirect: the job shell's child is the command itself (none) or a launcher
	// that passes signals on as part of its own job (srun to its step, apptainer's
	// starter to the contained process).
	SignalDirect SignalPath = iota
	// SignalViaCLI: the child is a client (docker, podman) that forwards the signal to a
	// container the daemon runs; the command needs an init in front (--init) to act on
	// TERM as PID 1, and killing the client with KILL leaves the container running.
	SignalViaCLI
)

// Launch is what a stage runs and what it needs to see.
type Launch struct {
	// Image is a container image: a file (.sqsh, .sif), which may start with $HOME/ or
	// ~/, or a registry reference. Unused by the none runtime.
	Image string
	// RunDir is the absolute run directory: the working directory, mounted at the same
	// path so every path in the resolved spec means the same inside and out.
	RunDir string
	// Mounts are the data, weights and user mounts, in order.
	Mounts []Mount
	// GPUs is the number of GPUs the job was given; 0 runs without GPU support.
	GPUs int
	// Env names variables of the job's environment the command must see (docker and
	// podman pass only what they are told).
	Env []string
	// Argv is the command to run, inside the container when there is one.
	Argv []string
	// Name, when set, names the container (docker, podman), so that the job script can
	// signal it and remove it: see ContainerName.
	Name Word
}

// ContainerName is the name of the container of one job of a run's stage:
// hpctl-RUN-STAGE-JOBID, the job id expanded on the node from HPCTL_JOB_ID (which the job
// script sets), so that a requeued job's container has the same name and two jobs never
// share one. Characters a container name cannot hold become '-'.
func ContainerName(runID, stage string) Word {
	b := []byte("hpctl-" + runID + "-" + stage + "-")
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			b[i] = '-'
		}
	}
	return Concat(Lit(string(b)), expansion(`"$HPCTL_JOB_ID"`))
}

// Mount makes Source on the node visible at Target. Options are the runtime's (ro, rw).
type Mount struct {
	Source, Target, Options string
}

// ParseMount reads the spec's SOURCE:TARGET[:OPTIONS] form.
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Mount{}, fmt.Errorf("mount %q is not SOURCE:TARGET or SOURCE:TARGET:OPTIONS", s)
	}
	m := Mount{Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		m.Options = parts[2]
	}
	return m, nil
}

var registry = map[string]func() Runtime{}

// Register makes a runtime known under name, the value of the spec's container.runtime.
// Call it from an init function (the registry is not locked). A duplicate name, or
// capabilities whose list separator is not forbidden in paths, is a programming error.
func Register(name string, f func() Runtime) {
	if _, dup := registry[name]; dup {
		panic("containers: runtime " + name + " registered twice")
	}
	c := f().Capabilities()
	if !strings.Contains(c.MountForbidden, c.MountListSeparator) {
		panic("containers: runtime " + name + ": MountListSeparator " + c.MountListSeparator + " is not in MountForbidden")
	}
	registry[name] = f
}

// Lookup returns the runtime called name.
func Lookup(name string) (Runtime, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown container runtime %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return f(), nil
}

// Names lists the registered runtimes, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// PartKind says how the renderer writes one part of a word.
type PartKind int

const (
	// Literal text, single-quoted where needed: it reaches the program exactly.
	Literal PartKind = iota
	// HomePath is a path whose leading ~/ or $HOME/ is expanded on the node; the rest
	// is literal.
	HomePath
	// Expansion is shell text written in this package and reviewed as such, expanded
	// by the shell on the node. Never built from spec values.
	Expansion
)

// Part is one piece of a word.
type Part struct {
	Kind PartKind
	Text string
}

// Word is one argument of a command line, made of parts that the shell concatenates.
// Its parts are unexported so that an Expansion part can only come from this package.
type Word struct {
	parts []Part
}

// Lit is a word that reaches the program exactly as s.
func Lit(s string) Word { return Word{parts: []Part{{Literal, s}}} }

// Lits makes one literal word per string.
func Lits(ss ...string) []Word {
	w := make([]Word, len(ss))
	for i, s := range ss {
		w[i] = Lit(s)
	}
	return w
}

// Path is a path word: a leading ~ or $HOME (alone or followed by /) is expanded on the
// node, as docs/run-directory.md promises for paths in a spec; the rest is literal.
func Path(p string) Word { return Word{parts: pathParts(p)} }

// Concat joins words into one, as the shell joins adjacent quoted strings.
func Concat(ws ...Word) Word {
	var w Word
	for _, x := range ws {
		w.parts = append(w.parts, x.parts...)
	}
	return w
}

// expansion is deliberately unexported: its text must be a constant of this package.
func expansion(text string) Word { return Word{parts: []Part{{Expansion, text}}} }

// Parts returns a copy of the word's parts (for tests that check what a word becomes).
func (w Word) Parts() []Part { return slices.Clone(w.parts) }

// Shell renders the word as bash text. Adjacent literal parts are quoted together, so
// the line reads as a person would have written it.
func (w Word) Shell() string {
	var b, lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			b.WriteString(shell.Quote(lit.String()))
			lit.Reset()
		}
	}
	for _, p := range w.parts {
		switch p.Kind {
		case Literal:
			lit.WriteString(p.Text)
		case HomePath:
			flush()
			// Only a bare $HOME is written; the rest of a HomePath part is literal.
			b.WriteString(`"$HOME"`)
			lit.WriteString(p.Text)
		case Expansion:
			flush()
			b.WriteString(p.Text)
		}
	}
	flush()
	if b.Len() == 0 {
		return "''"
	}
	return b.String()
}

// String shows the word for error messages and debugging, not for a shell.
func (w Word) String() string {
	var b strings.Builder
	for _, p := range w.parts {
		if p.Kind == HomePath {
			b.WriteString("$HOME")
		}
		b.WriteString(p.Text)
	}
	return b.String()
}

// pathParts splits a leading home reference from the rest. A HomePath part's Text is
// what follows $HOME (empty or starting with /).
func pathParts(p string) []Part {
	if rest, ok := homepath.Split(p); ok {
		return []Part{{HomePath, rest}}
	}
	return []Part{{Literal, p}}
}

// checkPath rejects a path that would be read as two when joined by sep, the runtime's
// separator between mount fields or mounts.
func checkPath(runtime, what, p, seps string) error {
	if i := strings.IndexAny(p, seps); i >= 0 {
		return fmt.Errorf("%s: %s %q contains %q, which %s reads as a separator; use a path without it", runtime, what, p, p[i], runtime)
	}
	return nil
}

// mountWord renders src:dst[:opts] as one word, keeping home references expandable.
func mountWord(m Mount) Word {
	w := Concat(Path(m.Source), Lit(":"), Path(m.Target))
	if m.Options != "" {
		w = Concat(w, Lit(":"+m.Options))
	}
	return w
}

// CheckedMounts is the run directory followed by the launch's mounts, each refused when
// it holds one of r's Capabilities().MountForbidden characters.
func CheckedMounts(r Runtime, l Launch) ([]Mount, error) {
	seps := r.Capabilities().MountForbidden
	ms := append([]Mount{{Source: l.RunDir, Target: l.RunDir}}, l.Mounts...)
	for _, m := range ms {
		for _, p := range []string{m.Source, m.Target, m.Options} {
			if err := checkPath(r.Name(), "mount", p, seps); err != nil {
				return nil, err
			}
		}
	}
	return ms, nil
}
