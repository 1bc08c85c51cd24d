package experiment

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// The run-directory layout: the one place it is written down in code. The job-script
// template, the status script, fetch-results' excludes and the resolved spec the trainer
// reads (each stage's "paths") all take their names from here; docs/run-directory.md is
// the contract, and a test checks the two agree.
const (
	SpecFile         = "spec.yaml"
	ResolvedSpecFile = "spec.resolved.json"
	TrainerDir       = "trainer"
	TrainerMain      = "train.py"
	StagesDir        = "stages"
	LogsDir          = "logs"
	// LogsKeep makes logs/ exist as a file every transport carries: Slurm opens a job's
	// --output before the script runs and does not create its directory.
	LogsKeep       = ".keep"
	ScriptFile     = "job.sh"
	MarkerDir      = ".hpctl"
	StartedMarker  = "started"
	FinishedMarker = "finished"
	HistoryFile    = "history.csv"
	MetricsFile    = "metrics.json"
	EvaluationFile = "evaluation.json"
	CheckpointsDir = "checkpoints"
	// BestCheckpoint and FinalCheckpoint are file names without their extension, which
	// depends on the Keras version (.h5 under Keras 2, .keras under Keras 3).
	BestCheckpoint  = "best"
	FinalCheckpoint = "final"
	// ModelInfoFile sits beside the checkpoints, so `train.py predict --model` finds it
	// without the spec.
	ModelInfoFile = "model-info.json"
	// StateDir holds the resume state of the last completed epoch; never fetched unless
	// asked for.
	StateDir = "state"
	// TensorBoardDir holds a stage's TensorBoard event files when the spec asks for them
	// (training.tensorboard); fetched with the results, so `tensorboard --logdir
	// results/` shows every run.
	TensorBoardDir = "tensorboard"
	// TrialsDir holds a sweep's trials, one directory each (TrialDir), laid out as a run
	// directory of its own: spec.resolved.json and stages/. TrialTable lists them.
	TrialsDir  = "trials"
	TrialTable = "trials.json"
	// AttemptsDir keeps what earlier attempts of retried stages left (AttemptDir): a
	// retry moves a stage's directory there and starts the stage clean.
	AttemptsDir = "attempts"
	// PredictDir holds `hpctl predict --remote`'s scratch folders (PredictScratch), one
	// per call: the images copied up, the job's script and logs; removed when it ends.
	PredictDir = "predict"
)

// PredictScratch is one predict job's scratch folder, relative to the run directory.
func PredictScratch(id string) string { return path.Join(PredictDir, id) }

// AttemptDir is where `hpctl retry` moves the files attempt n of stage left, relative to
// the run directory: attempts/<n>/stages/<stage>, laid out as the stage's directory was.
func AttemptDir(n int, stage string) string {
	return path.Join(AttemptsDir, strconv.Itoa(n), PathsOf(stage).Dir)
}

// TrialDir is trial k's directory, relative to the run directory.
func TrialDir(k int) string { return path.Join(TrialsDir, strconv.Itoa(k)) }

// StagePaths are where one stage's files live, relative to the run directory and
// slash-separated. They are written into spec.resolved.json, so the trainer takes its
// paths from there.
type StagePaths struct {
	Dir             string `json:"dir"`
	Script          string `json:"script"`
	Markers         string `json:"markers"`
	History         string `json:"history"`
	Metrics         string `json:"metrics"`
	Evaluation      string `json:"evaluation"`
	Checkpoints     string `json:"checkpoints"`
	BestCheckpoint  string `json:"best_checkpoint"`
	FinalCheckpoint string `json:"final_checkpoint"`
	ModelInfo       string `json:"model_info"`
	State           string `json:"state"`
	TensorBoard     string `json:"tensorboard"`
}

// PathsOf returns the paths of stage's files.
func PathsOf(stage string) StagePaths {
	d := path.Join(StagesDir, stage)
	ck := path.Join(d, CheckpointsDir)
	return StagePaths{
		Dir: d, Script: path.Join(d, ScriptFile), Markers: path.Join(d, MarkerDir),
		History: path.Join(d, HistoryFile), Metrics: path.Join(d, MetricsFile),
		Evaluation: path.Join(d, EvaluationFile), Checkpoints: ck,
		BestCheckpoint: path.Join(ck, BestCheckpoint), FinalCheckpoint: path.Join(ck, FinalCheckpoint),
		ModelInfo: path.Join(ck, ModelInfoFile), State: path.Join(d, StateDir),
		TensorBoard: path.Join(d, TensorBoardDir),
	}
}

// ParseMarker reads a marker file's key=value lines (docs/run-directory.md). Lines
// without '=' are skipped, so a marker from a newer hpctl still reads.
func ParseMarker(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// StageDir is a stage's directory inside the run directory.
func StageDir(runDir, stage string) string { return path.Join(runDir, PathsOf(stage).Dir) }

// ScriptPath is where a stage's job script is staged.
func ScriptPath(runDir, stage string) string { return path.Join(runDir, PathsOf(stage).Script) }

// LogPath is a job's stdout (ext "out") or stderr (ext "err") file.
func LogPath(runDir, jobName, jobID, ext string) string {
	return path.Join(runDir, LogsDir, jobName+"-"+jobID+"."+ext)
}

// TaskLogPath is the stdout (ext "out") or stderr (ext "err") file of task K of a stage
// on several nodes (slurm.nodes > 1): each node's trainer writes its own.
func TaskLogPath(runDir, jobName, jobID string, task int, ext string) string {
	return path.Join(runDir, LogsDir, fmt.Sprintf("%s-%s.task%d.%s", jobName, jobID, task, ext))
}

// ArrayLogPath is an array task's stdout (ext "out") or stderr (ext "err") file.
func ArrayLogPath(runDir, jobName, arrayID, task, ext string) string {
	return path.Join(runDir, LogsDir, jobName+"-"+arrayID+"_"+task+"."+ext)
}

// ArrayLogPattern is LogPattern for a sweep's array jobs: one log per task,
// <job-name>-<array job id>_<task>.<ext>.
func ArrayLogPattern(runDir, ext string) string {
	return path.Join(runDir, LogsDir, "%x-%A_%a."+ext)
}

// LogPattern is the --output/--error pattern Slurm expands into LogPath's names.
func LogPattern(runDir, ext string) string {
	return path.Join(runDir, LogsDir, "%x-%j."+ext)
}
