// Package experiment holds the experiment spec (decoded with positions), its validation,
// and the plan of stages that hpctl renders and submits. Nothing downstream of the plan
// goes back to the YAML.
package experiment

import (
	"strconv"

	"github.com/hpctl/hpctl/trainer"
)

// Spec is one experiment: a transfer-learning pipeline of ordered stages. The YAML keys are
// documented key by key in docs/spec.md; every key has a default (see Default).
type Spec struct {
	Name        string    `yaml:"name" json:"name"`
	Description string    `yaml:"description" json:"description,omitempty"`
	Workdir     string    `yaml:"workdir" json:"workdir"`
	Executor    string    `yaml:"executor" json:"executor"`
	Cluster     Cluster   `yaml:"cluster" json:"cluster"`
	Seed        int       `yaml:"seed" json:"seed"`
	Data        Data      `yaml:"data" json:"data"`
	Model       Model     `yaml:"model" json:"model"`
	Augment     Augment   `yaml:"augment" json:"augment"`
	Training    Training  `yaml:"training" json:"training"`
	Slurm       Slurm     `yaml:"slurm" json:"slurm"`
	Container   Container `yaml:"container" json:"container"`
	Stages      []Stage   `yaml:"stages" json:"stages"`
}

// Cluster says where the cluster is reached. An empty host means hpctl runs on the
// cluster's login node (local transport).
type Cluster struct {
	Host string `yaml:"host" json:"host"`
}

// Data names the class-per-folder training and validation sets on the cluster.
type Data struct {
	Train         string `yaml:"train" json:"train"`
	Val           string `yaml:"val" json:"val"`
	ImageSize     []int  `yaml:"image_size" json:"image_size"`
	BatchSize     int    `yaml:"batch_size" json:"batch_size"`
	Cache         bool   `yaml:"cache" json:"cache"`
	ShuffleBuffer int    `yaml:"shuffle_buffer" json:"shuffle_buffer"`
}

// Model is the backbone and the new head.
type Model struct {
	Backbone      string  `yaml:"backbone" json:"backbone"`
	Weights       string  `yaml:"weights" json:"weights"`
	WeightsCache  string  `yaml:"weights_cache" json:"weights_cache"`
	AllowDownload bool    `yaml:"allow_download" json:"allow_download"`
	Dropout       float64 `yaml:"dropout" json:"dropout"`
}

// Augment mirrors the published ImageDataGenerator settings; the trainer maps them to
// Keras preprocessing layers.
type Augment struct {
	Rotation       float64 `yaml:"rotation" json:"rotation"`
	Zoom           float64 `yaml:"zoom" json:"zoom"`
	WidthShift     float64 `yaml:"width_shift" json:"width_shift"`
	HeightShift    float64 `yaml:"height_shift" json:"height_shift"`
	HorizontalFlip bool    `yaml:"horizontal_flip" json:"horizontal_flip"`
	VerticalFlip   bool    `yaml:"vertical_flip" json:"vertical_flip"`
}

// Training holds options that apply to every training stage.
type Training struct {
	MixedPrecision bool `yaml:"mixed_precision" json:"mixed_precision"`
	// CPUFallback lets a stage that asked for GPUs train on the CPU when TensorFlow sees
	// none. Off, the trainer fails such a stage: a container without its GPU flags, or
	// an image without CUDA, would otherwise train silently for days on the CPU.
	CPUFallback bool `yaml:"cpu_fallback" json:"cpu_fallback"`
	// TensorBoard makes the trainer write TensorBoard event files (scalars per epoch)
	// to each stage's tensorboard/ folder. Off by default: most runs need only
	// history.csv and the learning-curve plot.
	TensorBoard bool `yaml:"tensorboard" json:"tensorboard"`
}

// Slurm holds the resources and directives of every stage's job; a stage may override
// some of them under its own `slurm:` key.
type Slurm struct {
	Partition    string   `yaml:"partition" json:"partition"`
	Account      string   `yaml:"account" json:"account"`
	QOS          string   `yaml:"qos" json:"qos"`
	Time         string   `yaml:"time" json:"time"`
	GPUs         int      `yaml:"gpus" json:"gpus"`
	CPUsPerTask  int      `yaml:"cpus_per_task" json:"cpus_per_task"`
	Mem          string   `yaml:"mem" json:"mem"`
	Nodes        int      `yaml:"nodes" json:"nodes"`
	SignalBefore int      `yaml:"signal_before" json:"signal_before"`
	Requeue      bool     `yaml:"requeue" json:"requeue"`
	Extra        []string `yaml:"extra" json:"extra"`
}

// StageSlurm overrides the spec-wide Slurm settings for one stage. Nil or empty means
// "inherit".
type StageSlurm struct {
	Partition   string `yaml:"partition" json:"partition,omitempty"`
	Time        string `yaml:"time" json:"time,omitempty"`
	GPUs        *int   `yaml:"gpus" json:"gpus,omitempty"`
	CPUsPerTask *int   `yaml:"cpus_per_task" json:"cpus_per_task,omitempty"`
	Mem         string `yaml:"mem" json:"mem,omitempty"`
	Nodes       *int   `yaml:"nodes" json:"nodes,omitempty"`
}

// Container says how a stage's command runs: which runtime, which image.
type Container struct {
	Runtime string   `yaml:"runtime" json:"runtime"`
	Image   string   `yaml:"image" json:"image"`
	Mounts  []string `yaml:"mounts" json:"mounts"`
	Python  string   `yaml:"python" json:"python"`
}

// Stage is one job of the pipeline. Stages are data: an evaluate stage or a sweep adds
// entries, never code paths.
type Stage struct {
	Name            string     `yaml:"name" json:"name"`
	DependsOn       []string   `yaml:"depends_on" json:"depends_on"`
	InitFrom        string     `yaml:"init_from" json:"init_from"`
	Unfreeze        Unfreeze   `yaml:"unfreeze" json:"unfreeze"`
	Epochs          int        `yaml:"epochs" json:"epochs"`
	StepsPerEpoch   int        `yaml:"steps_per_epoch" json:"steps_per_epoch"`
	ValidationSteps int        `yaml:"validation_steps" json:"validation_steps"`
	Optimizer       Optimizer  `yaml:"optimizer" json:"optimizer"`
	Slurm           StageSlurm `yaml:"slurm" json:"slurm"`
	Command         []string   `yaml:"command" json:"command"`
}

// Optimizer names a Keras optimizer and its learning rate.
type Optimizer struct {
	Name         string  `yaml:"name" json:"name"`
	LearningRate float64 `yaml:"learning_rate" json:"learning_rate"`
}

// Unfreeze says how much of the backbone a stage trains: none (frozen, called with
// training=False), all, or the last N layers. In YAML: `none`, `all`, or an integer.
type Unfreeze struct {
	All    bool
	Layers int
}

// String renders the YAML form.
func (u Unfreeze) String() string {
	switch {
	case u.All:
		return "all"
	case u.Layers == 0:
		return "none"
	default:
		return strconv.Itoa(u.Layers)
	}
}

// LayerCount is the trainer's encoding: -1 all, 0 none, N the last N layers.
func (u Unfreeze) LayerCount() int {
	if u.All {
		return -1
	}
	return u.Layers
}

// Backbones lists the backbones the trainer knows, with the smallest input side each
// accepts without its top: trainer/backbones.json, the table the trainer reads too.
// tinycnn there is the trainer's three-block CNN (no ImageNet weights): the quickstart's
// backbone (configs/demo.yaml), because it trains on two CPU cores in seconds with no
// download, and the trainer's tests'. Not for real experiments.
var Backbones = backboneMinSides()

// backboneMinSides panics on a bad table: the file is embedded at build time, so a bad one
// is a defect of the build (TestBackbonesTable catches it), not of anyone's input.
func backboneMinSides() map[string]int {
	t, err := trainer.Backbones()
	if err != nil {
		panic(err)
	}
	m := make(map[string]int, len(t))
	for name, b := range t {
		m[name] = b.MinImageSize
	}
	return m
}

// Optimizers lists the optimizer names the trainer accepts.
var Optimizers = []string{"rmsprop", "adam", "sgd"}

// Default returns a spec with every key at its documented default. Stage defaults are
// applied per stage by defaultStage.
func Default() Spec {
	return Spec{
		Workdir:  "$HOME/hpctl-runs",
		Executor: "auto",
		Seed:     42,
		Data: Data{
			Train:         "data/train",
			Val:           "data/val",
			ImageSize:     []int{224, 224},
			BatchSize:     8,
			ShuffleBuffer: 1000,
		},
		Model: Model{
			Backbone:     "resnet50",
			Weights:      "imagenet",
			WeightsCache: "$HOME/.cache/hpctl/weights",
		},
		Augment: Augment{
			Rotation:       10,
			Zoom:           0.1,
			WidthShift:     0.1,
			HeightShift:    0.1,
			HorizontalFlip: true,
		},
		Slurm: Slurm{
			Time:         "12:00:00",
			GPUs:         1,
			CPUsPerTask:  8,
			Mem:          "32G",
			Nodes:        1,
			SignalBefore: 300,
			Requeue:      true,
		},
		Container: Container{
			Runtime: "pyxis",
			Image:   "$HOME/sqsh/nvidia+tensorflow+22.02-tf2-py3.sqsh",
			Python:  "python3",
		},
	}
}

func defaultStage() Stage {
	return Stage{
		Epochs:    10,
		Optimizer: Optimizer{Name: "rmsprop", LearningRate: 1e-3},
	}
}

// StageByName returns the stage called name, or nil.
func (s *Spec) StageByName(name string) *Stage {
	for i := range s.Stages {
		if s.Stages[i].Name == name {
			return &s.Stages[i]
		}
	}
	return nil
}
