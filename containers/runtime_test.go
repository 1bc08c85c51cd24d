package containers

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func line(ws []Word) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.Shell()
	}
	return strings.Join(s, " ")
}

func launch() Launch {
	return Launch{
		Image:  "$HOME/sqsh/nvidia+tensorflow+22.02-tf2-py3.sqsh",
		RunDir: "/home/u/runs/r 1",
		Mounts: []Mount{{Source: "$HOME/data", Target: "/data", Options: "ro"}, {Source: "/scratch", Target: "/scratch"}},
		GPUs:   1,
		Env:    []string{"HPCTL_RUN_DIR", "HPCTL_STAGE"},
		Argv:   []string{"python3", "/home/u/runs/r 1/trainer/train.py", "train", "--stage", "frozen"},
	}
}

// builtin is every runtime this package defines, with what it declares. The render
// package's tests register one more, from a test file.
var builtin = map[string]Capabilities{
	"pyxis": {NeedsImage: true, NeedsSrun: true, MountForbidden: ",:", MountListSeparator: ",",
		GPUs: GPUInherit, Signals: SignalDirect, Program: "srun", ProgramFlag: "--container-image",
		ImageFiles: []string{".sqsh", ".squashfs", ".sqfs"}},
	"apptainer": {NeedsImage: true, MountForbidden: ",:", MountListSeparator: ",", GPUs: GPUNvFlag, Signals: SignalDirect,
		Program: "apptainer", ImageFiles: []string{".sif", ".simg", ".img"}},
	"singularity": {NeedsImage: true, MountForbidden: ",:", MountListSeparator: ",", GPUs: GPUNvFlag, Signals: SignalDirect,
		Program: "singularity", ImageFiles: []string{".sif", ".simg", ".img"}},
	"docker": {NeedsImage: true, MountForbidden: ":", GPUs: GPUDevicesFlag, Signals: SignalViaCLI, Program: "docker"},
	"podman": {NeedsImage: true, MountForbidden: ":", GPUs: GPUCDI, Signals: SignalViaCLI, Program: "podman"},
	"none":   {GPUs: GPUInherit, Signals: SignalDirect},
}

func TestEveryRuntimeIsRegistered(t *testing.T) {
	for name, want := range builtin {
		r, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if r.Name() != name {
			t.Errorf("Lookup(%q).Name() = %q", name, r.Name())
		}
		if got := r.Capabilities(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: capabilities %+v, want %+v", name, got, want)
		}
	}
	if names := Names(); !slices.Equal(names, slices.Sorted(maps.Keys(builtin))) {
		t.Errorf("registered %v, built in %v", names, slices.Sorted(maps.Keys(builtin)))
	}
	if _, err := Lookup("dokcer"); err == nil || !strings.Contains(err.Error(), "known: apptainer") {
		t.Errorf("Lookup(dokcer) error = %v", err)
	}
}

// TestCapabilitiesMatchCommand checks the informational fields against the launch lines:
// what a runtime says about GPUs and signals is what its Command does.
func TestCapabilitiesMatchCommand(t *testing.T) {
	for _, name := range Names() {
		r, _ := Lookup(name)
		c := r.Capabilities()
		l := launch()
		l.Mounts = nil
		ws, err := r.Command(l)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var words []string
		for _, w := range ws[:len(ws)-len(l.Argv)] {
			words = append(words, w.String())
		}
		has := func(s string) bool { return slices.Contains(words, s) }
		if has("--nv") != (c.GPUs == GPUNvFlag) || has("--gpus") != (c.GPUs == GPUDevicesFlag) ||
			has("nvidia.com/gpu=all") != (c.GPUs == GPUCDI) {
			t.Errorf("%s declares GPUs %d but its line is %v", name, c.GPUs, words)
		}
		if has("--init") != (c.Signals == SignalViaCLI) {
			t.Errorf("%s declares Signals %d but its line is %v", name, c.Signals, words)
		}
		if has("srun") != c.NeedsSrun {
			t.Errorf("%s declares NeedsSrun %v but its line is %v", name, c.NeedsSrun, words)
		}
		l.GPUs = 0
		ws, _ = r.Command(l)
		for _, w := range ws {
			if s := w.String(); s == "--nv" || s == "--gpus" || s == "nvidia.com/gpu=all" {
				t.Errorf("%s: %s without GPUs", name, s)
			}
		}
	}
}

func TestRegisterRefusesDuplicatesAndInconsistentCapabilities(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    Runtime
		want string
	}{
		{"none", none{}, "registered twice"},
		{"bad-sep", fixed{Capabilities{MountForbidden: ":", MountListSeparator: ","}}, "not in MountForbidden"},
	} {
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), tt.want) {
					t.Errorf("Register(%s): panic %v, want %q", tt.name, p, tt.want)
				}
			}()
			Register(tt.name, func() Runtime { return tt.r })
		}()
	}
	if _, err := Lookup("bad-sep"); err == nil {
		t.Error("a refused runtime was registered")
	}
}

// fixed is a runtime that declares caps and runs nothing.
type fixed struct{ caps Capabilities }

func (fixed) Name() string                   { return "fixed" }
func (fixed) Command(Launch) ([]Word, error) { return nil, fmt.Errorf("fixed runs nothing") }
func (f fixed) Capabilities() Capabilities   { return f.caps }

func TestCommand(t *testing.T) {
	const argv = `python3 '/home/u/runs/r 1/trainer/train.py' train --stage frozen`
	tests := []struct {
		runtime string
		edit    func(*Launch)
		want    string
	}{
		{"pyxis", nil, `srun --container-image="$HOME"/sqsh/nvidia+tensorflow+22.02-tf2-py3.sqsh ` +
			`'--container-mounts=/home/u/runs/r 1:/home/u/runs/r 1,'"$HOME"/data:/data:ro,/scratch:/scratch ` +
			`'--container-workdir=/home/u/runs/r 1' ` + argv},
		{"pyxis", func(l *Launch) { l.Image = "nvcr.io#nvidia/tensorflow:22.02-tf2-py3"; l.Mounts = nil },
			`srun '--container-image=nvcr.io#nvidia/tensorflow:22.02-tf2-py3' ` +
				`'--container-mounts=/home/u/runs/r 1:/home/u/runs/r 1' '--container-workdir=/home/u/runs/r 1' ` + argv},
		{"apptainer", nil, `apptainer exec --nv --bind '/home/u/runs/r 1:/home/u/runs/r 1' --bind "$HOME"/data:/data:ro ` +
			`--bind /scratch:/scratch --pwd '/home/u/runs/r 1' "$HOME"/sqsh/nvidia+tensorflow+22.02-tf2-py3.sqsh ` + argv},
		{"singularity", func(l *Launch) { l.GPUs = 0; l.Mounts = nil; l.Image = "/img/tf.sif" },
			`singularity exec --bind '/home/u/runs/r 1:/home/u/runs/r 1' --pwd '/home/u/runs/r 1' /img/tf.sif ` + argv},
		{"docker", func(l *Launch) { l.Image = "nvcr.io/nvidia/tensorflow:22.02-tf2-py3" },
			`docker run --rm --init --network host --gpus "\"device=${CUDA_VISIBLE_DEVICES:-all}\"" --user "$(id -u):$(id -g)" ` +
				`-e HPCTL_RUN_DIR -e HPCTL_STAGE -v '/home/u/runs/r 1:/home/u/runs/r 1' -v "$HOME"/data:/data:ro ` +
				`-v /scratch:/scratch -w '/home/u/runs/r 1' nvcr.io/nvidia/tensorflow:22.02-tf2-py3 ` + argv},
		{"podman", func(l *Launch) { l.Image = "tf"; l.Mounts = nil; l.Env = nil },
			`podman run --rm --init --network host --device nvidia.com/gpu=all ` +
				`-e CUDA_VISIBLE_DEVICES ` +
				`-v '/home/u/runs/r 1:/home/u/runs/r 1' -w '/home/u/runs/r 1' tf ` + argv},
		{"podman", func(l *Launch) {
			l.Image, l.Mounts, l.Env, l.GPUs = "tf", nil, nil, 0
			l.Name = ContainerName("exp 1/x", "frozen")
		},
			`podman run --rm --init --network host --name hpctl-exp-1-x-frozen-"$HPCTL_JOB_ID" ` +
				`-v '/home/u/runs/r 1:/home/u/runs/r 1' -w '/home/u/runs/r 1' tf ` + argv},
		{"docker", func(l *Launch) { l.Image = "tf"; l.Mounts = nil; l.Env = nil; l.GPUs = 0 },
			`docker run --rm --init --network host --user "$(id -u):$(id -g)" -v '/home/u/runs/r 1:/home/u/runs/r 1' -w '/home/u/runs/r 1' tf ` + argv},
		{"none", nil, argv},
	}
	for _, tt := range tests {
		l := launch()
		if tt.edit != nil {
			tt.edit(&l)
		}
		r, err := Lookup(tt.runtime)
		if err != nil {
			t.Fatal(err)
		}
		ws, err := r.Command(l)
		if err != nil {
			t.Fatalf("%s: %v", tt.runtime, err)
		}
		if got := line(ws); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.runtime, got, tt.want)
		}
	}
}

// TestHostileLaunch: whatever a spec puts in a launch, no Expansion part carries it.
func TestHostileLaunch(t *testing.T) {
	const h = "x$(touch PWNED)`id`'\"*"
	allowed := []string{dockerGPUs, dockerUser, `"$HPCTL_JOB_ID"`}
	for _, name := range Names() {
		r, _ := Lookup(name)
		l := Launch{Image: h, RunDir: "/r/" + h, Mounts: []Mount{{Source: "/" + h, Target: h}}, GPUs: 2, Name: ContainerName(h, h),
			Env: []string{"HPCTL_STAGE"}, Argv: []string{h, h}}
		ws, err := r.Command(l)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, w := range ws {
			for _, p := range w.Parts() {
				if p.Kind == Expansion && !slices.Contains(allowed, p.Text) {
					t.Errorf("%s: unexpected expansion %q", name, p.Text)
				}
				if p.Kind != Literal && strings.Contains(p.Text, "PWNED") {
					t.Errorf("%s: spec text outside a literal part: %+v", name, p)
				}
			}
		}
		if got := ws[len(ws)-1].Shell(); got != `'x$(touch PWNED)`+"`id`"+`'\''"*'` {
			t.Errorf("%s: last word = %s", name, got)
		}
	}
}

func TestSeparatorsRejected(t *testing.T) {
	for _, tt := range []struct{ runtime, dir string }{
		{"pyxis", "/runs/a,b"}, {"pyxis", "/runs/a:b"}, {"apptainer", "/runs/a,b"},
		{"singularity", "/runs/a:b"}, {"docker", "/runs/a:b"}, {"podman", "/runs/a:b"},
	} {
		r, _ := Lookup(tt.runtime)
		l := launch()
		l.RunDir = tt.dir
		if _, err := r.Command(l); err == nil || !strings.Contains(err.Error(), "separator") {
			t.Errorf("%s with run dir %q: err = %v", tt.runtime, tt.dir, err)
		}
	}
	// docker's -v has no list separator: a comma is an ordinary character there.
	r, _ := Lookup("docker")
	l := launch()
	l.RunDir = "/runs/a,b"
	if _, err := r.Command(l); err != nil {
		t.Errorf("docker with a comma: %v", err)
	}
}

func TestEmpty(t *testing.T) {
	for _, name := range Names() {
		r, _ := Lookup(name)
		if _, err := r.Command(Launch{Image: "i", RunDir: "/r"}); err == nil {
			t.Errorf("%s accepted an empty argv", name)
		}
		_, err := r.Command(Launch{RunDir: "/r", Argv: []string{"x"}})
		if needs := r.Capabilities().NeedsImage; needs != (err != nil) {
			t.Errorf("%s: NeedsImage %v, but without an image Command returned %v", name, needs, err)
		}
	}
}

func TestWordShell(t *testing.T) {
	for _, tt := range []struct {
		w    Word
		want string
	}{
		{Lit(""), "''"},
		{Concat(Lit(""), Lit("")), "''"},
		{Path("~"), `"$HOME"`},
		{Path("~/a b"), `"$HOME"'/a b'`},
		{Path("${HOME}/x"), `"$HOME"/x`},
		{Path("$HOMEX/y"), `'$HOMEX/y'`},
		{Path("~user/y"), `'~user/y'`},
		{Concat(Lit("--x="), Path("$HOME/y")), `--x="$HOME"/y`},
	} {
		if got := tt.w.Shell(); got != tt.want {
			t.Errorf("%v.Shell() = %s, want %s", tt.w, got, tt.want)
		}
	}
	if _, err := ParseMount("a:b:ro"); err != nil {
		t.Error(err)
	}
	if _, err := ParseMount("a"); err == nil {
		t.Error("ParseMount(a) succeeded")
	}
}

func TestImageFile(t *testing.T) {
	pyxis, _ := Lookup("pyxis")
	app, _ := Lookup("apptainer")
	dock, _ := Lookup("docker")
	for _, tt := range []struct {
		c     Capabilities
		image string
		want  bool
	}{
		{pyxis.Capabilities(), "/img/tf.sqsh", true},
		{pyxis.Capabilities(), "~/tf.sqsh", true},
		{pyxis.Capabilities(), "tf.sqsh", true},
		{pyxis.Capabilities(), "nvcr.io#nvidia/tensorflow:22.02-tf2-py3", false},
		{pyxis.Capabilities(), "ubuntu:22.04", false},
		{app.Capabilities(), "$HOME/tf.sif", true},
		{app.Capabilities(), "docker://nvcr.io/nvidia/tensorflow:22.02-tf2-py3", false},
		{app.Capabilities(), "library://alpine", false},
		{dock.Capabilities(), "/img/tf.tar", false},
	} {
		if got := ImageFile(tt.c, tt.image); got != tt.want {
			t.Errorf("ImageFile(%s, %q) = %v", tt.c.Program, tt.image, got)
		}
	}
}
