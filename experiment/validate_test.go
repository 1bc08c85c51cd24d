package experiment

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each case is a whole spec file and the exact problems it must produce, in order. The
// positions were read off the YAML by hand: line and column of the offending value (or
// key, for unknown and duplicate keys).
var malformed = []struct {
	name string
	src  string
	want []string
}{
	{"unknown top-level key with suggestion", "name: x\nstagez: []\nstages: [{name: a}]\n",
		[]string{"2:1: stagez: unknown key; did you mean \"stages\"?"}},
	{"unknown nested key with suggestion", "name: x\nslurm:\n  gpu: 2\nstages: [{name: a}]\n",
		[]string{"3:3: slurm.gpu: unknown key; did you mean \"gpus\"?"}},
	{"unknown key without suggestion lists known keys", "name: x\ndata:\n  colour: red\nstages: [{name: a}]\n",
		[]string{"3:3: data.colour: unknown key (known here: batch_size, cache, image_size, shuffle_buffer, train, val)"}},
	{"unknown key inside a stage", "name: x\nstages:\n  - name: a\n    epoch: 3\n",
		[]string{"4:5: stages[0].epoch: unknown key; did you mean \"epochs\"?"}},
	{"duplicate key", "name: x\nname: y\nstages: [{name: a}]\n",
		[]string{"2:1: name: duplicate key"}},
	{"string where integer expected", "name: x\nslurm:\n  gpus: two\nstages: [{name: a}]\n",
		[]string{"3:9: slurm.gpus: expected an integer, found the string \"two\""}},
	{"float where integer expected", "name: x\ndata:\n  batch_size: 8.5\nstages: [{name: a}]\n",
		[]string{"3:15: data.batch_size: expected an integer, found a number"}},
	{"mapping where list expected", "name: x\nstages:\n  name: a\n",
		[]string{"3:3: stages: expected a list, found a mapping"}},
	{"string where boolean expected", "name: x\naugment:\n  horizontal_flip: yes\nstages: [{name: a}]\n",
		[]string{"3:20: augment.horizontal_flip: expected true or false, found the string \"yes\""}},
	{"list where string expected", "name: [a, b]\nstages: [{name: a}]\n",
		[]string{"1:7: name: expected a string, found a list"}},
	{"top level is a list", "- name: x\n",
		[]string{"1:1: spec: expected a mapping of keys at the top of the spec, found a list"}},
	{"missing name", "stages: [{name: a}]\n",
		[]string{"1:1: name: required: a short name for the experiment, such as urban-rural"}},
	{"bad name characters", "name: 'my run'\nstages: [{name: a}]\n",
		[]string{"1:7: name: \"my run\" is not a valid name: use letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit"}},
	{"bad Slurm time", "name: x\nslurm:\n  time: 12h\nstages: [{name: a}]\n",
		[]string{"3:9: slurm.time: \"12h\" is not a Slurm time (for example 12:00:00, 90, 1-12:00:00)"}},
	{"zero Slurm time", "name: x\nslurm:\n  time: '0:00:00'\nstages: [{name: a}]\n",
		[]string{"3:9: slurm.time: \"0:00:00\" is a zero time limit"}},
	{"bad memory size", "name: x\nslurm:\n  mem: 32GB\nstages: [{name: a}]\n",
		[]string{"3:8: slurm.mem: \"32GB\" is not a Slurm memory size (for example 32G, 8000M; 0 means all of the node)"}},
	{"negative GPUs", "name: x\nslurm:\n  gpus: -1\nstages: [{name: a}]\n",
		[]string{"3:9: slurm.gpus: -1 is outside [0, 16]"}},
	{"zero CPUs", "name: x\nslurm:\n  cpus_per_task: 0\nstages: [{name: a}]\n",
		[]string{"3:18: slurm.cpus_per_task: 0 is outside [1, 1024]"}},
	{"zero nodes", "name: x\nslurm:\n  nodes: 0\nstages: [{name: a}]\n",
		[]string{"3:10: slurm.nodes: 0 is not a node count: 1 to 256 (more than 1 runs one trainer per node, MultiWorkerMirroredStrategy)"}},
	{"several nodes with docker", "name: x\ncontainer: {runtime: docker, image: tf}\nslurm:\n  nodes: 2\nstages: [{name: a}]\n",
		[]string{"4:10: slurm.nodes: 2 nodes with container.runtime docker: docker's bridge network hides each node's trainer port from the others, and its containers do not see Slurm's task variables; use pyxis, apptainer, singularity or none"}},
	{"stage asks for too many nodes", "name: x\nstages:\n  - name: a\n    slurm: {nodes: 1000}\n",
		[]string{"4:20: stages[0].slurm.nodes: 1000 is not a node count: 1 to 256 (more than 1 runs one trainer per node, MultiWorkerMirroredStrategy)"}},
	{"stage on several nodes with podman", "name: x\ncontainer: {runtime: podman, image: tf}\nstages:\n  - name: a\n    slurm: {nodes: 2}\n",
		[]string{"5:20: stages[0].slurm.nodes: 2 nodes with container.runtime podman: podman's network hides each node's trainer port from the others, and its containers do not see Slurm's task variables; use pyxis, apptainer, singularity or none"}},
	{"bad partition", "name: x\nslurm:\n  partition: 'gpu;rm'\nstages: [{name: a}]\n",
		[]string{"3:14: slurm.partition: \"gpu;rm\" is not a Slurm name (letters, digits, '_', '.', ',', '-')"}},
	{"extra directive not an option", "name: x\nslurm:\n  extra: [constraint=a100]\nstages: [{name: a}]\n",
		[]string{"3:11: slurm.extra[0]: \"constraint=a100\" is not an sbatch option of the form --name or --name=value"}},
	{"learning rate zero", "name: x\nstages:\n  - name: a\n    optimizer: {name: adam, learning_rate: 0}\n",
		[]string{"4:44: stages[0].optimizer.learning_rate: 0 is not a learning rate in (0, 10]"}},
	{"unknown optimizer with suggestion", "name: x\nstages:\n  - name: a\n    optimizer: {name: adamw}\n",
		[]string{"4:23: stages[0].optimizer.name: \"adamw\" is not one of rmsprop, adam, sgd; did you mean \"adam\"?"}},
	{"zero epochs", "name: x\nstages:\n  - name: a\n    epochs: 0\n",
		[]string{"4:13: stages[0].epochs: 0 is outside [1, 100000]"}},
	{"image below backbone minimum", "name: x\ndata:\n  image_size: [16, 224]\nstages: [{name: a}]\n",
		[]string{"3:16: data.image_size[0]: 16 is below resnet50's minimum of 32 pixels"}},
	{"image size wrong length", "name: x\ndata:\n  image_size: [224]\nstages: [{name: a}]\n",
		[]string{"3:15: data.image_size: expected [height, width], found 1 values"}},
	{"unknown backbone with suggestion", "name: x\nmodel:\n  backbone: resnet5\nstages: [{name: a}]\n",
		[]string{"3:13: model.backbone: \"resnet5\" is not one of efficientnetb0, mobilenetv2, resnet50, tinycnn; did you mean \"resnet50\"?"}},
	{"dropout out of range", "name: x\nmodel:\n  dropout: 1.5\nstages: [{name: a}]\n",
		[]string{"3:12: model.dropout: 1.5 is outside [0, 1)"}},
	{"unknown runtime with suggestion", "name: x\ncontainer:\n  runtime: apptainr\nstages: [{name: a}]\n",
		[]string{"3:12: container.runtime: \"apptainr\" is not one of apptainer, docker, none, podman, pyxis, singularity; did you mean \"apptainer\"?"}},
	{"image required for a container runtime", "name: x\ncontainer:\n  image: ''\nstages: [{name: a}]\n",
		[]string{"3:10: container.image: required for runtime pyxis: a .sqsh/.sif path or a registry reference"}},
	{"bad mount", "name: x\ncontainer:\n  mounts: [/data]\nstages: [{name: a}]\n",
		[]string{"3:12: container.mounts[0]: \"/data\" is not SOURCE:TARGET or SOURCE:TARGET:OPTIONS"}},
	{"unknown executor", "name: x\nexecutor: kubernetes\nstages: [{name: a}]\n",
		[]string{"2:11: executor: \"kubernetes\" is not one of auto, slurm, local"}},
	{"no stages", "name: x\nstages: []\n",
		[]string{"2:9: stages: required: at least one stage (see configs/urban.yaml)"}},
	{"duplicate stage names", "name: x\nstages:\n  - name: a\n  - name: a\n",
		[]string{"4:11: stages[1].name: \"a\" is already the name of stages[0]"}},
	{"dependency on a missing stage", "name: x\nstages:\n  - name: frozen\n  - name: b\n    depends_on: [frozn]\n",
		[]string{"5:18: stages[1].depends_on[0]: no stage is called \"frozn\"; did you mean \"frozen\"?"}},
	{"dependency cycle", "name: x\nstages:\n  - name: a\n    depends_on: [b]\n  - name: b\n    depends_on: [a]\n",
		[]string{"4:17: stages[0].depends_on: dependency cycle: a -> b -> a"}},
	{"init_from not a dependency", "name: x\nstages:\n  - name: a\n  - name: b\n    init_from: a\n",
		[]string{"5:16: stages[1].init_from: stage \"b\" must depend on \"a\" (directly or not) to start from its checkpoint"}},
	{"init_from a relative checkpoint path", "name: x\nstages:\n  - name: a\n    init_from: ckpt/best.keras\n",
		[]string{"4:16: stages[0].init_from: checkpoint path \"ckpt/best.keras\" must be absolute (a path on the cluster, or under ~/)"}},
	{"init_from a path that is no checkpoint", "name: x\nstages:\n  - name: a\n    init_from: /runs/r1/stages/frozen/history.csv\n",
		[]string{"4:16: stages[0].init_from: checkpoint path \"/runs/r1/stages/frozen/history.csv\" must name a .keras or .h5 file"}},
	{"init_from RUN:STAGE without a stage", "name: x\nstages:\n  - name: a\n  - name: b\n    init_from: 'urban-20261201-101010-ab12:'\n",
		[]string{"5:16: stages[1].init_from: \"urban-20261201-101010-ab12:\": after the colon comes a stage name of run urban-20261201-101010-ab12"}},
	{"init_from RUN:STAGE with a bad run", "name: x\nstages:\n  - name: a\n    init_from: ':frozen'\n",
		[]string{"4:16: stages[0].init_from: \":frozen\" is neither a stage, a checkpoint path nor RUN:STAGE (a run id from hpctl runs, a colon, a stage of that run)"}},
	{"bad unfreeze", "name: x\nstages:\n  - name: a\n    unfreeze: some\n",
		[]string{"4:15: stages[0].unfreeze: expected none, all, or a number of layers, found the string \"some\""}},
	{"time no longer than signal_before", "name: x\nslurm:\n  time: '5:00'\nstages: [{name: a}]\n",
		[]string{"3:9: slurm.time: \"5:00\" (300 s) is not longer than slurm.signal_before (300 s): the stop signal would come as the job starts; raise the time or lower signal_before"}},
	{"stage time no longer than signal_before", "name: x\nslurm:\n  signal_before: 600\nstages:\n  - name: a\n    slurm: {time: '0-0:10'}\n",
		[]string{"6:19: stages[0].slurm.time: \"0-0:10\" (600 s) is not longer than slurm.signal_before (600 s): the stop signal would come as the job starts; raise the time or lower signal_before"}},
	{"stage Slurm override time", "name: x\nstages:\n  - name: a\n    slurm: {time: forever}\n",
		[]string{"4:19: stages[0].slurm.time: \"forever\" is not a Slurm time (for example 12:00:00, 90, 1-12:00:00)"}},
	{"newline in a value", "name: x\ndata:\n  train: \"a\\nb\"\nstages: [{name: a}]\n",
		[]string{"3:10: data.train: contains the control character '\\n' at byte 1"}},
	{"workdir with a double quote", "name: x\nworkdir: '/scratch/a\"b'\nstages: [{name: a}]\n",
		[]string{"2:10: workdir: \"/scratch/a\\\"b\" contains \", % or \\, which Slurm's #SBATCH --output cannot carry; choose another directory"}},
	{"tilde user path", "name: x\ndata:\n  train: ~bob/data\nstages: [{name: a}]\n",
		[]string{"3:10: data.train: \"~bob/data\": only ~/ (your own home) is expanded; write the full path"}},
	{"data path a container runtime cannot mount", "name: x\ndata:\n  val: /d/a:b\nstages: [{name: a}]\n",
		[]string{"3:8: data.val: \"/d/a:b\" holds ',' or ':', which runtime pyxis cannot mount; rename the directory or use runtime none"}},
	{"data path docker cannot mount names only ':'", "name: x\ncontainer: {runtime: docker, image: tf}\ndata:\n  val: /d/a:b,c\nstages: [{name: a}]\n",
		[]string{"4:8: data.val: \"/d/a:b,c\" holds ':', which runtime docker cannot mount; rename the directory or use runtime none"}},
	{"two mounts in one entry for apptainer", "name: x\ncontainer: {runtime: apptainer, image: tf.sif, mounts: ['/a:/a,/b:/b']}\nstages: [{name: a}]\n",
		[]string{"2:57: container.mounts[0]: \"/a:/a,/b:/b\": ',' separates mounts for apptainer; give one mount per entry"}},
	{"invalid YAML", "name: x\nstages: [\n",
		[]string{"2:1: invalid YAML: did not find expected node content"}},
	{"empty file", "",
		[]string{"the spec is empty; `hpctl init NAME` writes a starter"}},
	{"two documents", "name: x\nstages: [{name: a}]\n---\nname: y\n",
		[]string{"3:1: a spec holds one YAML document; remove the second `---`"}},
	{"several problems reported together", "name: x\nslurm:\n  time: soon\n  gpus: 99\nstages:\n  - name: a\n    epochs: -2\n",
		[]string{
			"3:9: slurm.time: \"soon\" is not a Slurm time (for example 12:00:00, 90, 1-12:00:00)",
			"4:9: slurm.gpus: 99 is outside [0, 16]",
			"7:13: stages[0].epochs: -2 is outside [1, 100000]",
		}},
}

func TestMalformedSpecs(t *testing.T) {
	if len(malformed) < 30 {
		t.Fatalf("only %d malformed cases; the issue asks for at least 30", len(malformed))
	}
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "spec.yaml")
			if err := os.WriteFile(file, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(file)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Load returned %v, want a *SpecError", err)
			}
			var got []string
			for _, p := range se.Problems {
				got = append(got, strings.TrimSpace(strings.TrimPrefix(p.String(), file+":")))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n got: %q\nwant: %q", got, tc.want)
			}
			for _, p := range se.Problems {
				if p.File != file {
					t.Errorf("problem names file %q, want %q", p.File, file)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("validation wrote files: %v", entries)
			}
		})
	}
}

// TestMountRulesComeFromTheRuntime: what a runtime does not forbid passes; docker's -v has
// no list separator and none mounts nothing, so a comma is an ordinary character there.
func TestMountRulesComeFromTheRuntime(t *testing.T) {
	for _, src := range []string{
		"name: x\ncontainer: {runtime: docker, image: tf, mounts: ['/a,b:/a,b:ro']}\ndata: {val: '/d/a,b'}\nstages: [{name: a}]\n",
		"name: x\ncontainer: {runtime: none, mounts: ['/a,b:/a,b']}\ndata: {val: '/d/a:b,c'}\nstages: [{name: a}]\n",
	} {
		l, err := Parse("spec.yaml", []byte(src))
		if err == nil {
			err = l.Validate()
		}
		if err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}

func TestShippedConfigsValidate(t *testing.T) {
	files, _ := filepath.Glob("../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs found")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestUrbanMatchesPublishedExperiment(t *testing.T) {
	l, err := Load("../configs/urban.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := l.Spec
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("backbone", s.Model.Backbone, "resnet50")
	check("weights", s.Model.Weights, "imagenet")
	check("image height", s.Data.ImageSize[0], 224)
	check("image width", s.Data.ImageSize[1], 224)
	check("batch", s.Data.BatchSize, 8)
	check("rotation", s.Augment.Rotation, 10.0)
	check("zoom", s.Augment.Zoom, 0.1)
	check("width shift", s.Augment.WidthShift, 0.1)
	check("height shift", s.Augment.HeightShift, 0.1)
	check("hflip", s.Augment.HorizontalFlip, true)
	check("vflip", s.Augment.VerticalFlip, false)
	check("gpus", s.Slurm.GPUs, 1)
	check("time", s.Slurm.Time, "12:00:00")
	check("runtime", s.Container.Runtime, "pyxis")
	check("stages", len(s.Stages), 2)
	f, ft := s.Stages[0], s.Stages[1]
	check("frozen name", f.Name, "frozen")
	check("frozen unfreeze", f.Unfreeze.LayerCount(), 0)
	check("frozen epochs", f.Epochs, 20)
	check("frozen steps", f.StepsPerEpoch, 12)
	check("frozen val steps", f.ValidationSteps, 4)
	check("frozen optimizer", f.Optimizer, Optimizer{Name: "rmsprop", LearningRate: 1e-3})
	check("finetune name", ft.Name, "finetune")
	check("finetune depends", strings.Join(ft.DependsOn, ","), "frozen")
	check("finetune init", ft.InitFrom, "frozen")
	check("finetune unfreeze", ft.Unfreeze.LayerCount(), -1)
	check("finetune epochs", ft.Epochs, 10)
	check("finetune optimizer", ft.Optimizer, Optimizer{Name: "rmsprop", LearningRate: 1e-5})
}

func TestPlanOrdersByDependencies(t *testing.T) {
	src := "name: x\nworkdir: /w\nstages:\n  - name: c\n    depends_on: [b]\n  - name: a\n  - name: b\n    depends_on: [a]\n"
	l, err := Parse("s.yaml", []byte(src))
	if err == nil {
		err = l.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(l.Spec.Resolve("/home/u", "/home/u"), "r1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range p.Stages {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c" {
		t.Errorf("order %s, want a,b,c", got)
	}
	if p.RunDir != "/w/r1" {
		t.Errorf("run dir %s", p.RunDir)
	}
}

func TestResolveExpandsOnlyHome(t *testing.T) {
	for in, want := range map[string]string{
		"~/d":          "/home/u/d",
		"$HOME/d":      "/home/u/d",
		"${HOME}/d":    "/home/u/d",
		"$SCRATCH/d":   "/proj/$SCRATCH/d",
		"rel/d":        "/proj/rel/d",
		"/abs/$(id)/d": "/abs/$(id)/d",
	} {
		s := Default()
		s.Data.Train = in
		if got := s.Resolve("/home/u", "/proj").Data.Train; got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasTellsWrittenFromDefault(t *testing.T) {
	l, err := Parse("s.yaml", []byte("name: x\nstages:\n  - name: a\n    epochs: 3\n  - name: b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !l.Has("stages[0].epochs") || l.Has("stages[1].epochs") || l.Spec.Stages[1].Epochs != 10 {
		t.Errorf("Has: %v %v, default epochs %d", l.Has("stages[0].epochs"), l.Has("stages[1].epochs"), l.Spec.Stages[1].Epochs)
	}
}

func TestParseMarker(t *testing.T) {
	m := ParseMarker([]byte("job_id=12\n host = node 1 \nnoise\nexit_code=0\n"))
	if m["job_id"] != "12" || m["host"] != "node 1" || m["exit_code"] != "0" || len(m) != 3 {
		t.Errorf("ParseMarker: %v", m)
	}
}

func TestSlurmSeconds(t *testing.T) {
	for v, want := range map[string]int64{"90": 5400, "5:00": 300, "1:30": 90, "12:00:00": 43200,
		"1-0": 86400, "1-2": 93600, "1-2:03": 93780, "1-2:03:04": 93784, "0-0:10": 600} {
		if got := slurmSeconds(v); got != want {
			t.Errorf("slurmSeconds(%q) = %d, want %d", v, got, want)
		}
	}
}
