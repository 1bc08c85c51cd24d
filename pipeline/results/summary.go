package results

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/stagestate"
)

// Epoch is one row of a stage's history.csv.
type Epoch struct {
	Epoch       int     `json:"epoch"`
	Loss        float64 `json:"loss"`
	Accuracy    float64 `json:"accuracy"`
	ValLoss     float64 `json:"val_loss"`
	ValAccuracy float64 `json:"val_accuracy"`
}

// StageSummary is what a stage's fetched files say about it. Pointers are nil where the
// files do not tell (a stage that has not started, a metric the trainer could not measure).
type StageSummary struct {
	Name  string     `json:"name"`
	JobID string     `json:"job_id,omitempty"`
	State jobs.State `json:"state"`
	// Reason says why a stage is in its state where the files tell (a dependency
	// failed, a job killed before it wrote its finished marker).
	Reason           string   `json:"reason,omitempty"`
	Attempts         int      `json:"attempts,omitempty"`
	EpochsRun        int      `json:"epochs_run"`
	Epochs           int      `json:"epochs,omitempty"`
	BestValAccuracy  *float64 `json:"best_val_accuracy,omitempty"`
	BestValLoss      *float64 `json:"best_val_loss,omitempty"`
	BestEpoch        int      `json:"best_epoch,omitempty"`
	FinalValAccuracy *float64 `json:"final_val_accuracy,omitempty"`
	FinalValLoss     *float64 `json:"final_val_loss,omitempty"`
	WallTimeSeconds  *float64 `json:"wall_time_s,omitempty"`
	ImagesPerSecond  *float64 `json:"images_per_second,omitempty"`
	InitFrom         string   `json:"init_from,omitempty"`
	// EvalAccuracy and EvalImages come from evaluation.json (the best checkpoint on val).
	EvalAccuracy     *float64            `json:"eval_accuracy,omitempty"`
	EvalImages       int                 `json:"eval_images,omitempty"`
	PerClassAccuracy map[string]*float64 `json:"per_class_accuracy,omitempty"`
	ClassNames       []string            `json:"class_names,omitempty"`
	ConfusionMatrix  [][]int             `json:"confusion_matrix,omitempty"`
	History          []Epoch             `json:"history,omitempty"`
	// view is the interpreter's reading, kept for explaining later stages by this one.
	view stagestate.View
}

// metricsFile is the part of the trainer's metrics.json the summary uses.
type metricsFile struct {
	BestValAccuracy  *float64 `json:"best_val_accuracy"`
	BestValLoss      *float64 `json:"best_val_loss"`
	BestEpoch        *int     `json:"best_epoch"`
	FinalValAccuracy *float64 `json:"final_val_accuracy"`
	FinalValLoss     *float64 `json:"final_val_loss"`
	EpochsRun        *int     `json:"epochs_run"`
	Epochs           *int     `json:"epochs"`
	Attempts         int      `json:"attempts"`
	WallTimeS        *float64 `json:"wall_time_s"`
	ImagesPerSecond  *float64 `json:"train_images_per_second"`
	InitFrom         string   `json:"init_from"`
}

type evaluationFile struct {
	ClassNames       []string            `json:"class_names"`
	ConfusionMatrix  [][]int             `json:"confusion_matrix"`
	PerClassAccuracy map[string]*float64 `json:"per_class_accuracy"`
	Accuracy         *float64            `json:"accuracy"`
	NumImages        int                 `json:"num_images"`
}

// readStage reads one stage's fetched files. inRecord is false for a stage folder the
// run's record does not name (then its job is whatever its markers say).
func readStage(runDir string, rs registry.RunStage, inRecord bool) (StageSummary, error) {
	sdir := filepath.Join(runDir, experiment.StagesDir, rs.Name)
	s := StageSummary{Name: rs.Name, JobID: rs.JobID, Epochs: rs.Epochs}

	started, err := readMarker(filepath.Join(sdir, experiment.MarkerDir, experiment.StartedMarker))
	if err != nil {
		return s, err
	}
	finished, err := readMarker(filepath.Join(sdir, experiment.MarkerDir, experiment.FinishedMarker))
	if err != nil {
		return s, err
	}
	if s.History, err = readHistory(filepath.Join(sdir, experiment.HistoryFile)); err != nil {
		return s, err
	}
	s.EpochsRun = len(s.History)
	// The same reading of markers and history as hpctl status, without the executor's
	// answer (fetch-results does not ask the scheduler).
	v := stagestate.Of(stagestate.Input{
		JobID: rs.JobID, Submitted: rs.JobID != "" || !inRecord,
		Started: started, Finished: finished, EpochsDone: s.EpochsRun, EpochsTotal: rs.Epochs,
	})
	s.JobID, s.State, s.Reason, s.Attempts = v.JobID, v.State, v.Reason, v.Attempt
	if !v.Start.IsZero() && !v.End.IsZero() && !v.End.Before(v.Start) {
		w := v.End.Sub(v.Start).Seconds()
		s.WallTimeSeconds = &w
	}
	s.view = v
	if len(s.History) > 0 {
		best := 0
		for i, e := range s.History {
			if e.ValAccuracy > s.History[best].ValAccuracy || math.IsNaN(s.History[best].ValAccuracy) {
				best = i
			}
		}
		s.BestValAccuracy, s.BestValLoss = num(s.History[best].ValAccuracy), num(s.History[best].ValLoss)
		s.BestEpoch = s.History[best].Epoch
		last := s.History[len(s.History)-1]
		s.FinalValAccuracy, s.FinalValLoss = num(last.ValAccuracy), num(last.ValLoss)
	}

	// metrics.json, written at the end of a stage, is the trainer's own account: it wins
	// over what the history and markers suggest.
	var m metricsFile
	if ok, err := readJSON(filepath.Join(sdir, experiment.MetricsFile), &m); err != nil {
		return s, err
	} else if ok {
		set := func(dst **float64, v *float64) {
			if v != nil && !math.IsNaN(*v) {
				*dst = v
			}
		}
		set(&s.BestValAccuracy, m.BestValAccuracy)
		set(&s.BestValLoss, m.BestValLoss)
		set(&s.FinalValAccuracy, m.FinalValAccuracy)
		set(&s.FinalValLoss, m.FinalValLoss)
		set(&s.WallTimeSeconds, m.WallTimeS)
		set(&s.ImagesPerSecond, m.ImagesPerSecond)
		if m.BestEpoch != nil {
			s.BestEpoch = *m.BestEpoch
		}
		if m.EpochsRun != nil {
			s.EpochsRun = *m.EpochsRun
		}
		if m.Epochs != nil {
			s.Epochs = *m.Epochs
		}
		if m.Attempts > 0 {
			s.Attempts = m.Attempts
		}
		s.InitFrom = m.InitFrom
	}
	var ev evaluationFile
	if ok, err := readJSON(filepath.Join(sdir, experiment.EvaluationFile), &ev); err != nil {
		return s, err
	} else if ok {
		s.EvalAccuracy, s.EvalImages = ev.Accuracy, ev.NumImages
		s.PerClassAccuracy, s.ClassNames, s.ConfusionMatrix = ev.PerClassAccuracy, ev.ClassNames, ev.ConfusionMatrix
	}
	return s, nil
}

func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// readMarker reads key=value lines; a missing marker is nil, not an error.
func readMarker(p string) (map[string]string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return experiment.ParseMarker(b), nil
}

func readJSON(p string, v any) (bool, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("summary: %w", err)
	}
	// The trainer writes NaN for metrics it could not compute; JSON has no NaN.
	b = []byte(strings.NewReplacer(": NaN", ": null", ": Infinity", ": null", ": -Infinity", ": null").Replace(string(b)))
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("summary: %s: %w", p, err)
	}
	return true, nil
}

// readHistory reads history.csv by its header (epoch, loss, accuracy, val_loss,
// val_accuracy, lr); a missing file is an empty history.
func readHistory(p string) ([]Epoch, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("summary: %s: %w", p, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	get := func(rec []string, name string) float64 {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return math.NaN()
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[i]), 64)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	var out []Epoch
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("summary: %s line %d: %w", p, line, err)
		}
		e := Epoch{Loss: get(rec, "loss"), Accuracy: get(rec, "accuracy"), ValLoss: get(rec, "val_loss"), ValAccuracy: get(rec, "val_accuracy")}
		ep := get(rec, "epoch")
		if math.IsNaN(ep) {
			ep = float64(len(out) + 1)
		}
		e.Epoch = int(ep)
		out = append(out, e)
	}
	return out, nil
}

// Duration formats seconds for tables: 1h02m, 3m07s, 12s.
func Duration(secs *float64) string {
	if secs == nil {
		return ""
	}
	d := time.Duration(*secs * float64(time.Second)).Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// Float formats an optional number with the given decimals; nil is empty.
func Float(v *float64, decimals int) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', decimals, 64)
}
