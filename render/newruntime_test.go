package render

import (
	"errors"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/containers"
	"github.com/hpctl/hpctl/experiment"
)

// crate is a made-up runtime that only this file knows. It shows that adding a runtime is
// a registration, with no change to validation, planning or rendering: each of them
// follows what the runtime declares.
func init() { containers.Register("crate", func() containers.Runtime { return crate{} }) }

type crate struct{}

func (crate) Name() string { return "crate" }

// Capabilities: crate writes a mount SOURCE=TARGET[=OPTIONS] and joins mounts with ';'.
// Neither ',' nor ':' means anything to it.
func (crate) Capabilities() containers.Capabilities {
	return containers.Capabilities{NeedsImage: true, MountForbidden: "=;", MountListSeparator: ";"}
}

func (c crate) Command(l containers.Launch) ([]containers.Word, error) {
	ms, err := containers.CheckedMounts(c, l)
	if err != nil {
		return nil, err
	}
	binds := containers.Lit("--binds=")
	for i, m := range ms {
		if i > 0 {
			binds = containers.Concat(binds, containers.Lit(";"))
		}
		binds = containers.Concat(binds, containers.Path(m.Source), containers.Lit("="), containers.Path(m.Target))
		if m.Options != "" {
			binds = containers.Concat(binds, containers.Lit("="+m.Options))
		}
	}
	words := append(containers.Lits("crate", "run", "--image"), containers.Path(l.Image), binds,
		containers.Lit("--chdir"), containers.Path(l.RunDir), containers.Lit("--"))
	return append(words, containers.Lits(l.Argv...)...), nil
}

// crateSpec holds paths with ',' and ':', which pyxis cannot mount and crate can.
const crateSpec = `name: crate-demo
workdir: /scratch/runs
data:
  train: /data/train
  val: /data/val,2024
model:
  weights_cache: /cache/w:1
slurm: {time: "1:00:00", gpus: 0}
container:
  runtime: crate
  image: /images/tf.crate
  mounts: ["/opt/tools:/tools:ro"]
stages: [{name: frozen}]
`

func loadSpec(t *testing.T, src string) *experiment.Loaded {
	t.Helper()
	l, err := experiment.Parse("crate.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRegisteredRuntimeRenders(t *testing.T) {
	l := loadSpec(t, crateSpec)
	if err := l.Validate(); err != nil {
		t.Fatalf("crate's spec: %v", err)
	}
	p := planOf(t, l, "/home/u", "/home/u")
	files, err := Render(p)
	if err != nil {
		t.Fatal(err)
	}
	var script []byte
	for _, f := range files {
		if f.Path == "stages/frozen/"+experiment.ScriptFile {
			script = f.Data
		}
	}
	if script == nil {
		t.Fatalf("no job script among %d files", len(files))
	}
	// The launch line as one line: wrap continues it with " \" and a tab.
	flat := strings.ReplaceAll(string(script), " \\\n\t", " ")
	rd := p.RunDir
	for _, want := range []string{
		"runtime crate.",
		"crate run --image /images/tf.crate '--binds=" + rd + "=" + rd + ";/data/train=/data/train=ro;" +
			"/data/val,2024=/data/val,2024=ro;/cache/w:1=/cache/w:1;/opt/tools=/tools=ro' --chdir " + rd + " -- python3 ",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("the job script lacks %q:\n%s", want, script)
		}
	}
	lint(t, "crate", script)
}

func TestRegisteredRuntimeRulesValidate(t *testing.T) {
	for _, tt := range []struct{ from, to, want string }{
		{"val: /data/val,2024", "val: /data/a=b",
			`data.val: "/data/a=b" holds '=' or ';', which runtime crate cannot mount`},
		{"workdir: /scratch/runs", "workdir: /scratch/r;1",
			`workdir: "/scratch/r;1" holds '=' or ';', which runtime crate cannot mount`},
		{`mounts: ["/opt/tools:/tools:ro"]`, `mounts: ["/a:/a;/b:/b"]`,
			`container.mounts[0]: "/a:/a;/b:/b": ';' separates mounts for crate; give one mount per entry`},
		{`mounts: ["/opt/tools:/tools:ro"]`, `mounts: ["/a=1:/a"]`,
			`container.mounts[0]: "/a=1:/a" holds '=' or ';', which runtime crate cannot mount`},
		{"image: /images/tf.crate", "image: ''",
			"container.image: required for runtime crate"},
		// The same spec under pyxis meets pyxis's rules, not crate's.
		{"runtime: crate", "runtime: pyxis",
			`data.val: "/data/val,2024" holds ',' or ':', which runtime pyxis cannot mount`},
	} {
		src := strings.Replace(crateSpec, tt.from, tt.to, 1)
		if src == crateSpec {
			t.Fatalf("%q is not in the spec", tt.from)
		}
		err := loadSpec(t, src).Validate()
		var se *experiment.SpecError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("with %s: %v, want a problem %q", tt.to, err, tt.want)
			continue
		}
		if len(se.Problems) != 1 && tt.to != "runtime: pyxis" {
			t.Errorf("with %s: %d problems, want 1: %v", tt.to, len(se.Problems), err)
		}
	}
}
