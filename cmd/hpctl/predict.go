package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/pipeline/predict"
)

func init() { register(57, predictCommand) }

type predictOptions struct {
	target     string
	images     []string
	stage      string
	trial      int // -1: not given
	remote     bool
	gpus       int
	time       string
	resultsDir string
	json       bool
}

func predictCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:         "predict",
		BashComplete: completeRuns,
		Usage:        "classify images with a run's best checkpoint",
		ArgsUsage:    "RUN|CHECKPOINT IMAGE...",
		Description: `Classifies images with the best checkpoint of a run's last stage (--stage: another one;
--trial K: a sweep's trial K), as the published notebook's detect_img does, with the
backbone's own preprocessing (as training and evaluation) and the class names the stage
recorded (checkpoints/model-info.json). Prints IMAGE, LABEL and the label's PROBABILITY:
for two classes the label is the Dense(1) logit's sign (positive: the second class name in
sorted order, the notebook's "Urban" of rural/urban) and the probability its sigmoid.

IMAGE is a file, a folder (every .jpg, .jpeg, .png, .bmp and .gif under it, sorted) or a
pattern in quotes ('photos/*.jpg'). The model is loaded once and the images classified
64 at a time.

Where it runs: on this machine when the run's results are fetched (hpctl fetch-results:
<results-dir>/<run-id>/ holds the checkpoint) and a local Python imports TensorFlow (the
python setting, HPCTL_PYTHON, else python3 on PATH); otherwise, or with --remote, on the
cluster as a short job in the stage's container, on CPUs unless --gpus: the images are
copied into a scratch folder of the run directory, the predictions printed as the job
writes them, and the folder removed at the end. Ctrl-C cancels the job. CHECKPOINT, a
.keras or .h5 file with model-info.json beside it, runs on this machine.

Exit codes: 2 for a file that is no image, a folder without images, a sweep without
--trial or a bad flag; 4 for a run, stage or image that does not exist, or a stage without
a best checkpoint yet.

Examples:
   hpctl predict latest photos/street.jpg photos/field.jpg
   hpctl predict latest photos/ -o json | jq -r '.predictions[] | "\(.image) \(.label)"'
   hpctl predict latest --stage frozen --remote 'photos/*.jpg'
   hpctl predict results/demo-20261203-101500-1a2b/stages/finetune/checkpoints/best.keras photos/`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "stage", Aliases: []string{"s"}, Usage: "the stage whose best checkpoint classifies (default: the run's last)"},
			&cli.IntFlag{Name: "trial", Value: -1, DefaultText: "none", Usage: "for a sweep, the trial whose checkpoint classifies"},
			&cli.BoolFlag{Name: "remote", Usage: "run on the cluster even when the results are fetched and TensorFlow is here"},
			&cli.IntFlag{Name: "gpus", DefaultText: "none", Usage: "GPUs the cluster job asks for (a CPU classifies a few images in seconds)"},
			&cli.StringFlag{Name: "time", Value: "00:30:00", Usage: "the cluster job's time limit (Slurm's --time)"},
			&cli.StringFlag{Name: "results-dir", Usage: "where fetched runs are (default: the results-dir setting, ./results)"},
			outputFlag(),
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			if c.NArg() < 2 {
				return usageError(errorf("predict needs a RUN (or a CHECKPOINT file) and at least one IMAGE"))
			}
			if c.Int("gpus") < 0 {
				return usageError(errorf("--gpus %d is negative", c.Int("gpus")))
			}
			o := predictOptions{
				target: c.Args().First(), images: c.Args().Tail(), stage: c.String("stage"), trial: c.Int("trial"),
				remote: c.Bool("remote"), gpus: c.Int("gpus"), time: c.String("time"), resultsDir: c.String("results-dir"),
				json: asJSON,
			}
			if o.resultsDir == "" {
				o.resultsDir = e.settings.ResultsDir
			}
			return runPredict(c.Context, e, o)
		},
	}
}

// predictResult is predict's JSON output.
type predictResult struct {
	RunID      string   `json:"run_id,omitempty"`
	Stage      string   `json:"stage,omitempty"`
	Trial      *int     `json:"trial,omitempty"`
	Checkpoint string   `json:"checkpoint"`
	ClassNames []string `json:"class_names"`
	// RanOn is "local" (this machine) or "cluster" (a job).
	RanOn       string               `json:"ran_on"`
	JobID       string               `json:"job_id,omitempty"`
	Predictions []predict.Prediction `json:"predictions"`
}

func runPredict(ctx context.Context, e *env, o predictOptions) error {
	images, err := predict.Images(o.images)
	if err != nil {
		return err
	}
	res := &predictResult{Predictions: []predict.Prediction{}}
	var pr *predictPrinter
	start := func(classes []string) {
		res.ClassNames = classes
		pr = newPredictPrinter(e.stdout, images, classes, o.json)
	}
	on := func(p predict.Prediction) {
		res.Predictions = append(res.Predictions, p)
		pr.row(p)
	}

	// A checkpoint file, or a fetched run's folder given by path: this machine only.
	if fi, err := os.Stat(o.target); err == nil && !fi.IsDir() {
		if o.remote || o.stage != "" || o.trial >= 0 {
			return usageError(errorf("%s is a checkpoint file: --remote, --stage and --trial name a run's checkpoint, not a file's", o.target))
		}
		info, err := readLocalModelInfo(o.target)
		if err != nil {
			return err
		}
		py, why, err := predict.FindPython(ctx, e.settings.Python)
		if err != nil {
			return err
		}
		if py.Path == "" {
			return usageError(errorf("no local Python with TensorFlow to run the checkpoint %s: %s; set the python setting (HPCTL_PYTHON), or name the run instead to classify on the cluster", o.target, why))
		}
		res.Checkpoint, res.RanOn = o.target, "local"
		start(info.ClassNames)
		_, err = predict.Local(ctx, predict.LocalOptions{Python: py, Checkpoint: o.target, Images: images, OnPrediction: on, Stderr: debugWriter(e)})
		return pr.finish(res, err)
	}

	reg, err := e.openRegistry(ctx)
	if err != nil {
		return err
	}
	run, err := reg.Find(ctx, o.target)
	reg.Close()
	if err != nil {
		if errors.Is(err, errkind.ErrNotFound) {
			return fmt.Errorf("%w (nor is %s a checkpoint file here)", err, o.target)
		}
		return err
	}
	whole := run
	if run.Trials > 0 && o.trial < 0 {
		return usageError(errorf("run %s is a sweep of %d trials: name one with --trial K (fetch-results' leaderboard ranks them)", run.ID, run.Trials))
	}
	fetched := filepath.Join(o.resultsDir, run.ID)
	runDir := run.RunDir
	if o.trial >= 0 {
		if run, err = pipeline.Trial(run, o.trial); err != nil {
			return err
		}
		rel := experiment.TrialDir(o.trial)
		fetched = filepath.Join(fetched, filepath.FromSlash(rel))
		runDir = path.Join(runDir, rel)
		res.Trial = &o.trial
	}
	stage, err := predictStage(run, o.stage)
	if err != nil {
		return err
	}
	res.RunID, res.Stage = run.ID, stage.Name

	if !o.remote {
		if ckpt := predict.LocalCheckpoint(fetched, stage.Name); ckpt != "" {
			py, why, err := predict.FindPython(ctx, e.settings.Python)
			if err != nil {
				return err
			}
			switch {
			case py.Path == "":
				fmt.Fprintf(e.stderr, "hpctl: %s; classifying on the cluster\n", why)
			case !py.CanLoad(ckpt):
				fmt.Fprintf(e.stderr, "hpctl: %s has Keras %s, which cannot read %s (Keras 3's format); classifying on the cluster\n", py.Path, py.Keras, filepath.Base(ckpt))
			default:
				info, err := readLocalModelInfo(ckpt)
				if err != nil {
					return err
				}
				res.Checkpoint, res.RanOn = ckpt, "local"
				start(info.ClassNames)
				_, err = predict.Local(ctx, predict.LocalOptions{Python: py, Checkpoint: ckpt, Images: images, OnPrediction: on, Stderr: debugWriter(e)})
				return pr.finish(res, err)
			}
		} else {
			e.log.Debug().Str("dir", fetched).Msg("no fetched checkpoint; classifying on the cluster")
		}
	}

	// On the cluster.
	t := e.newTransport(run.Host)
	defer t.Close()
	ex, err := e.newExecutor(ctx, run.Executor, t)
	if err != nil {
		return err
	}
	ps := experiment.PathsOf(stage.Name)
	ckpt := ""
	for _, ext := range predict.CheckpointExts {
		p := path.Join(runDir, ps.BestCheckpoint) + ext
		r, err := t.Run(ctx, []string{"test", "-f", p}, nil)
		if err != nil {
			return fmt.Errorf("predict: %w", err)
		}
		if r.ExitCode == 0 {
			ckpt = p
			break
		}
	}
	state := stageState(ctx, ex, stage)
	if ckpt == "" {
		switch {
		case state == jobs.StateCompleted:
			return fmt.Errorf("stage %s of run %s is %s but has no best checkpoint at %s.{keras,h5}: %w", stage.Name, run.ID, state,
				path.Join(runDir, ps.BestCheckpoint), errkind.ErrNotFound)
		case state.Terminal():
			return fmt.Errorf("stage %s of run %s ended %s without a best checkpoint; hpctl logs %s --stage %s says why, hpctl retry %s runs it again: %w",
				stage.Name, run.ID, state, whole.ID, stage.Name, whole.ID, errkind.ErrNotFound)
		}
		return fmt.Errorf("stage %s of run %s has no best checkpoint yet: it is %s; try again once it has finished (hpctl status %s --watch): %w",
			stage.Name, run.ID, state, whole.ID, errkind.ErrNotFound)
	}
	if state != jobs.StateCompleted {
		fmt.Fprintf(e.stderr, "hpctl: stage %s is %s: classifying with its best checkpoint so far\n", stage.Name, state)
	}
	b, err := t.ReadFile(ctx, path.Join(runDir, ps.ModelInfo))
	if err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	info, err := predict.ParseModelInfo(b)
	if err != nil {
		return fmt.Errorf("predict: %s: %w", path.Join(runDir, ps.ModelInfo), err)
	}
	spec, rsrc, err := predictJobSpec(ctx, e, t, whole, stage.Name)
	if err != nil {
		return err
	}
	rsrc.GPUs, rsrc.Time = o.gpus, o.time
	res.Checkpoint, res.RanOn = ckpt, "cluster"
	start(info.ClassNames)
	_, err = predict.Remote(ctx, t, ex, predict.RemoteOptions{
		RunID: run.ID, RunDir: whole.RunDir, Stage: stage.Name, Checkpoint: ckpt, Spec: spec, Resources: rsrc,
		Images: images, PollInterval: e.settings.PollInterval, Notice: e.stderr, OnPrediction: on,
		OnSubmit: func(id string) { res.JobID = id },
	})
	return pr.finish(res, err)
}

// predictStage is the named stage of run, else its last.
func predictStage(run registry.Run, name string) (registry.RunStage, error) {
	if len(run.Stages) == 0 {
		return registry.RunStage{}, fmt.Errorf("run %s has no stages: %w", run.ID, errkind.ErrNotFound)
	}
	if name == "" {
		return run.Stages[len(run.Stages)-1], nil
	}
	var names []string
	for _, s := range run.Stages {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return registry.RunStage{}, fmt.Errorf("run %s has no stage %q (stages: %s): %w", run.ID, name, strings.Join(names, ", "), errkind.ErrNotFound)
}

// stageState is what the executor says of the stage's job (one query); UNKNOWN when it
// cannot say.
func stageState(ctx context.Context, ex jobs.Executor, s registry.RunStage) jobs.State {
	if s.JobID == "" {
		return jobs.StateUnknown
	}
	st, err := ex.Query(ctx, []string{s.JobID})
	if err != nil {
		return jobs.StateUnknown
	}
	if j, ok := st[s.JobID]; ok {
		return j.State
	}
	return jobs.StateUnknown
}

// predictJobSpec is the run's spec as its stages ran (predict.JobSpec): spec.yaml from
// the run directory, with this machine's site settings filling what it leaves out.
func predictJobSpec(ctx context.Context, e *env, t interface {
	ReadFile(context.Context, string) ([]byte, error)
	Home(context.Context) (string, error)
}, run registry.Run, stage string) (experiment.Spec, jobs.Resources, error) {
	src, err := t.ReadFile(ctx, path.Join(run.RunDir, experiment.SpecFile))
	if err != nil {
		return experiment.Spec{}, jobs.Resources{}, fmt.Errorf("predict: the run's spec: %w", err)
	}
	tmp, err := os.MkdirTemp("", "hpctl-predict-spec-")
	if err != nil {
		return experiment.Spec{}, jobs.Resources{}, err
	}
	defer os.RemoveAll(tmp)
	file := filepath.Join(tmp, experiment.SpecFile)
	if err := os.WriteFile(file, src, 0o600); err != nil {
		return experiment.Spec{}, jobs.Resources{}, err
	}
	l, err := e.loadSpec(file)
	if err != nil {
		return experiment.Spec{}, jobs.Resources{}, fmt.Errorf("predict: the run's spec.yaml (%s) no longer loads here: %w", path.Join(run.RunDir, experiment.SpecFile), err)
	}
	home, err := t.Home(ctx)
	if err != nil {
		return experiment.Spec{}, jobs.Resources{}, err
	}
	spec, r, err := predict.JobSpec(l.Spec, home, run.RunDir, run.ID, stage)
	if err != nil {
		return experiment.Spec{}, jobs.Resources{}, fmt.Errorf("predict: %w", err)
	}
	return spec, r, nil
}

func readLocalModelInfo(ckpt string) (predict.ModelInfo, error) {
	p := filepath.Join(filepath.Dir(ckpt), experiment.ModelInfoFile)
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return predict.ModelInfo{}, fmt.Errorf("no %s beside %s: the trainer writes one with every checkpoint (backbone, image size, class names): %w",
				experiment.ModelInfoFile, ckpt, errkind.ErrNotFound)
		}
		return predict.ModelInfo{}, err
	}
	info, err := predict.ParseModelInfo(b)
	if err != nil {
		return info, fmt.Errorf("%s: %w", p, err)
	}
	return info, nil
}

// debugWriter passes the trainer's stderr on at --log-level debug only.
func debugWriter(e *env) io.Writer {
	if e.settings.LogLevel == "debug" || e.settings.LogLevel == "trace" {
		return e.stderr
	}
	return nil
}

// predictPrinter prints the table's rows as predictions come (columns sized from the
// images and class names, known before the first), or the JSON document at the end.
type predictPrinter struct {
	w           io.Writer
	json        bool
	imgW, lblW  int
	headerShown bool
}

func newPredictPrinter(w io.Writer, images, classes []string, asJSON bool) *predictPrinter {
	p := &predictPrinter{w: w, json: asJSON, imgW: len("IMAGE"), lblW: len("LABEL")}
	for _, i := range images {
		p.imgW = max(p.imgW, utf8.RuneCountInString(i))
	}
	for _, c := range classes {
		p.lblW = max(p.lblW, utf8.RuneCountInString(c))
	}
	return p
}

func (p *predictPrinter) row(pr predict.Prediction) {
	if p.json {
		return
	}
	if !p.headerShown {
		p.headerShown = true
		fmt.Fprintf(p.w, "%-*s  %-*s  %s\n", p.imgW, "IMAGE", p.lblW, "LABEL", "PROBABILITY")
	}
	fmt.Fprintf(p.w, "%-*s  %-*s  %.4f\n", p.imgW, pr.Image, p.lblW, pr.Label, pr.Probability)
}

// finish writes the JSON document (when asked and nothing failed) and passes err on.
func (p *predictPrinter) finish(res *predictResult, err error) error {
	if err != nil {
		return err
	}
	if p.json {
		return writeJSON(p.w, res)
	}
	return nil
}
