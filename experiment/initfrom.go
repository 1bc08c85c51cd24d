package experiment

import (
	"path"
	"strconv"
	"strings"

	"github.com/hpctl/hpctl/internal/homepath"
)

// InitSource is what a stage's init_from names: one of its own run's stages (Stage), a
// checkpoint file on the cluster (Path), or a stage of another run in the registry
// (Run and RunStage: `RUN:STAGE`, which submit resolves to that stage's best checkpoint).
type InitSource struct {
	Stage    string
	Path     string
	Run      string
	RunStage string
}

// ParseInitFrom reads an init_from value. A path starts with "/", "~/" or "$HOME/" (or
// holds a "/": a relative path, which validation refuses); RUN:STAGE holds a ":"; any
// other value is a stage name.
func ParseInitFrom(s string) InitSource {
	switch {
	case s == "":
		return InitSource{}
	case isHomeOrAbs(s) || strings.Contains(s, "/"):
		return InitSource{Path: s}
	case strings.Contains(s, ":"):
		run, stage, _ := strings.Cut(s, ":")
		return InitSource{Run: run, RunStage: stage}
	}
	return InitSource{Stage: s}
}

func isHomeOrAbs(s string) bool {
	_, home := homepath.Split(s)
	return home || path.IsAbs(s)
}

// CheckpointExts are the checkpoint files' extensions the trainer loads (Keras 3 and
// Keras 2).
var CheckpointExts = []string{".keras", ".h5"}

// InitCheck is a stage's init_from that names a checkpoint outside the run: checked (and
// for RUN:STAGE resolved to a path) on the cluster at submit, with the spec position a
// problem with it is reported at.
type InitCheck struct {
	Key   string // the spec key, stages[i].init_from
	Stage string // the stage that starts from it
	InitSource
	Pos Pos
}

// checkInitFrom validates the checkpoint forms of stage i's init_from (the stage form
// is validated with the dependencies).
func (c *checker) checkInitFrom(i int, st Stage) {
	key := "stages[" + strconv.Itoa(i) + "].init_from"
	src := ParseInitFrom(st.InitFrom)
	switch {
	case src.Path != "":
		if !isHomeOrAbs(src.Path) {
			c.add(key, "checkpoint path %q must be absolute (a path on the cluster, or under ~/)", src.Path)
			return
		}
		ok := false
		for _, ext := range CheckpointExts {
			ok = ok || strings.HasSuffix(src.Path, ext)
		}
		if !ok {
			c.add(key, "checkpoint path %q must name a .keras or .h5 file", src.Path)
		}
	case src.Run != "" || src.RunStage != "" || strings.Contains(st.InitFrom, ":"):
		switch {
		case !nameRe.MatchString(src.Run) || strings.Contains(src.RunStage, ":"):
			c.add(key, "%q is neither a stage, a checkpoint path nor RUN:STAGE (a run id from hpctl runs, a colon, a stage of that run)", st.InitFrom)
		case !nameRe.MatchString(src.RunStage):
			c.add(key, "%q: after the colon comes a stage name of run %s", st.InitFrom, src.Run)
		}
	}
}
