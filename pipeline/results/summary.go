package results

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/pipeline/stagestate"
)

// Epoch is one row of a stage's history.csv. A number the row does not hold (a missing
// column, a short row, a cell that is no number) is NaN, like the nan a diverged run
// writes; JSON carries both as null.
type Epoch struct {
	Epoch       int       `json:"epoch"`
	Loss        num.Float `json:"loss"`
	Accuracy    num.Float `json:"accuracy"`
	ValLoss     num.Float `json:"val_loss"`
	ValAccuracy num.Float `json:"val_accuracy"`
}

// StageSummary is what a stage's fetched files say about it. Pointers are nil where the
// files do not tell (a stage that has not started, a metric the trainer could not
// measure); a metric that is there but not finite (a diverged run's nan) is NaN or ±Inf,
// null in JSON and "nan" or "inf" in tables.
type StageSummary struct {
	Name  string     `json:"name"`
	JobID string     `json:"job_id,omitempty"`
	State jobs.State `json:"state"`
	// Reason says why a stage is in its state where the files tell (a dependency
	// failed, a job killed before it wrote its finished marker).
	Reason           string     `json:"reason,omitempty"`
	Attempts         int        `json:"attempts,omitempty"`
	EpochsRun        int        `json:"epochs_run"`
	Epochs           int        `json:"epochs,omitempty"`
	BestValAccuracy  *num.Float `json:"best_val_accuracy,omitempty"`
	BestValLoss      *num.Float `json:"best_val_loss,omitempty"`
	BestEpoch        int        `json:"best_epoch,omitempty"`
	FinalValAccuracy *num.Float `json:"final_val_accuracy,omitempty"`
	FinalValLoss     *num.Float `json:"final_val_loss,omitempty"`
	// WallTimeSeconds and ImagesPerSecond are finite whenever set.
	WallTimeSeconds *float64 `json:"wall_time_s,omitempty"`
	ImagesPerSecond *float64 `json:"images_per_second,omitempty"`
	InitFrom        string   `json:"init_from,omitempty"`
	// EvalAccuracy and EvalImages come from evaluation.json (the best checkpoint on val).
	EvalAccuracy     *num.Float            `json:"eval_accuracy,omitempty"`
	EvalImages       int                   `json:"eval_images,omitempty"`
	PerClassAccuracy map[string]*num.Float `json:"per_class_accuracy,omitempty"`
	ClassNames       []string              `json:"class_names,omitempty"`
	ConfusionMatrix  [][]int               `json:"confusion_matrix,omitempty"`
	History          []Epoch               `json:"history,omitempty"`
	// Warnings say what in the stage's files could not be read (an unreadable cell, a
	// missing column, a metrics.json that is no JSON) and was left out: a damaged file
	// costs its own numbers, never the fetch.
	Warnings []string `json:"warnings,omitempty"`
	// view is the interpreter's reading, kept for explaining later stages by this one.
	view stagestate.View
}

// metricsFile is the part of the trainer's metrics.json the summary uses.
type metricsFile struct {
	BestValAccuracy  *num.Float `json:"best_val_accuracy"`
	BestValLoss      *num.Float `json:"best_val_loss"`
	BestEpoch        *int       `json:"best_epoch"`
	FinalValAccuracy *num.Float `json:"final_val_accuracy"`
	FinalValLoss     *num.Float `json:"final_val_loss"`
	EpochsRun        *int       `json:"epochs_run"`
	Epochs           *int       `json:"epochs"`
	Attempts         int        `json:"attempts"`
	WallTimeS        *num.Float `json:"wall_time_s"`
	ImagesPerSecond  *num.Float `json:"train_images_per_second"`
	InitFrom         string     `json:"init_from"`
}

type evaluationFile struct {
	ClassNames       []string              `json:"class_names"`
	ConfusionMatrix  [][]int               `json:"confusion_matrix"`
	PerClassAccuracy map[string]*num.Float `json:"per_class_accuracy"`
	Accuracy         *num.Float            `json:"accuracy"`
	NumImages        int                   `json:"num_images"`
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
	h, err := readHistory(filepath.Join(sdir, experiment.HistoryFile))
	if err != nil {
		return s, err
	}
	s.History, s.Warnings = h.Epochs, h.Warnings
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
		if h.HasValAccuracy {
			// The best epoch is the best finite val_accuracy; a run that diverged from the
			// start has none, and its best is nan.
			best := -1
			for i, e := range s.History {
				if e.ValAccuracy.Finite() && (best < 0 || e.ValAccuracy > s.History[best].ValAccuracy) {
					best = i
				}
			}
			if best >= 0 {
				s.BestValAccuracy, s.BestEpoch = ptr(s.History[best].ValAccuracy), s.History[best].Epoch
				if h.HasValLoss {
					s.BestValLoss = ptr(s.History[best].ValLoss)
				}
			} else {
				s.BestValAccuracy = ptr(num.NaN())
			}
			s.FinalValAccuracy = ptr(s.History[len(s.History)-1].ValAccuracy)
		}
		if h.HasValLoss {
			s.FinalValLoss = ptr(s.History[len(s.History)-1].ValLoss)
		}
	}

	// metrics.json, written at the end of a stage, is the trainer's own account: it wins
	// over what the history and markers suggest, for every number it holds that is
	// finite (its NaN is a metric it could not compute).
	var m metricsFile
	ok, warn, err := readJSON(filepath.Join(sdir, experiment.MetricsFile), &m)
	if err != nil {
		return s, err
	}
	s.Warnings = append(s.Warnings, warn...)
	if ok {
		set := func(dst **num.Float, v *num.Float) {
			if v != nil && v.Finite() {
				*dst = v
			}
		}
		set(&s.BestValAccuracy, m.BestValAccuracy)
		set(&s.BestValLoss, m.BestValLoss)
		set(&s.FinalValAccuracy, m.FinalValAccuracy)
		set(&s.FinalValLoss, m.FinalValLoss)
		if v := m.WallTimeS; v != nil && v.Finite() && *v >= 0 {
			w := float64(*v)
			s.WallTimeSeconds = &w
		}
		if v := m.ImagesPerSecond; v != nil && v.Finite() {
			ips := float64(*v)
			s.ImagesPerSecond = &ips
		}
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
	ok, warn, err = readJSON(filepath.Join(sdir, experiment.EvaluationFile), &ev)
	if err != nil {
		return s, err
	}
	s.Warnings = append(s.Warnings, warn...)
	if ok {
		s.EvalAccuracy, s.EvalImages = ev.Accuracy, ev.NumImages
		s.PerClassAccuracy, s.ClassNames, s.ConfusionMatrix = ev.PerClassAccuracy, ev.ClassNames, ev.ConfusionMatrix
	}
	return s, nil
}

func ptr(v num.Float) *num.Float { return &v }

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

// readJSON reads one of the trainer's JSON files into v. A missing file is (false, no
// warnings); a file that is no JSON, or too big, is (false, a warning); a file with
// values of the wrong type is (true, a warning): what did fit is kept. Only an I/O
// error is an error. The trainer (Python's json) writes NaN and Infinity, which JSON
// lacks: they read as null.
func readJSON(p string, v any) (ok bool, warnings []string, err error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("summary: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJSONBytes+1))
	if err != nil {
		return false, nil, fmt.Errorf("summary: %s: %w", p, err)
	}
	return decodeJSON(filepath.Base(p), b, v)
}

// decodeJSON is readJSON's reading of the file's bytes b, name naming it in warnings.
func decodeJSON(name string, b []byte, v any) (ok bool, warnings []string, err error) {
	if len(b) > maxJSONBytes {
		return false, []string{fmt.Sprintf("%s is larger than %d MiB: not read", name, maxJSONBytes>>20)}, nil
	}
	b = nonFiniteToNull(b)
	err = json.Unmarshal(b, v)
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return true, nil, nil
	case errors.As(err, &syntaxErr):
		return false, []string{fmt.Sprintf("%s is not valid JSON (%v): not read", name, err)}, nil
	}
	// A value of the wrong type: decoding stopped there. Decode again key by key, each
	// into a fresh value first, so that one bad value costs only itself.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return false, []string{fmt.Sprintf("%s is not a JSON object: not read", name)}, nil
	}
	rv := reflect.ValueOf(v).Elem()
	rv.SetZero()
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		one, err := json.Marshal(map[string]json.RawMessage{k: fields[k]})
		if err != nil {
			return false, nil, fmt.Errorf("summary: %s: %w", name, err)
		}
		if err := json.Unmarshal(one, reflect.New(rv.Type()).Interface()); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: %v; that value is left out", name, err))
			continue
		}
		_ = json.Unmarshal(one, v) // as the probe: no error
	}
	return true, warnings, nil
}

// maxJSONBytes bounds what readJSON reads: the trainer's files are a few KiB.
const maxJSONBytes = 16 << 20

// nonFiniteToNull replaces the bare tokens NaN, Infinity and -Infinity (Python's json
// writes them; JSON has no such values) outside strings with null.
func nonFiniteToNull(b []byte) []byte {
	var out []byte
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			out = append(out, c)
			continue
		}
		if c == '"' {
			inString = true
			out = append(out, c)
			continue
		}
		replaced := false
		for _, tok := range []string{"NaN", "Infinity", "-Infinity"} {
			if bytes.HasPrefix(b[i:], []byte(tok)) {
				out = append(out, "null"...)
				i += len(tok) - 1
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, c)
		}
	}
	return out
}

// Bounds of what readHistory reads: a history has a row per epoch, a few dozen bytes
// each, so these only stop a damaged or hostile file from eating the machine's memory.
const (
	maxHistoryBytes = 16 << 20
	maxHistoryRows  = 100_000
	// maxEpoch bounds the epoch column: an epoch number beyond it is not one (and
	// would stretch the plot's axis to nothing).
	maxEpoch = 10_000_000
)

// history is what readHistory found.
type history struct {
	Epochs []Epoch
	// HasValAccuracy and HasValLoss say whether the header names those columns.
	HasValAccuracy, HasValLoss bool
	Warnings                   []string
}

// readHistory reads history.csv by its header (epoch, loss, accuracy, val_loss,
// val_accuracy, lr); a missing file is an empty history. Whatever the file holds it
// returns rows, not an error: nan and inf cells are kept as such; a cell that is no
// number, a missing column or a short row reads as NaN; an epoch cell that is no whole
// number in range is the row's position; past maxHistoryBytes or maxHistoryRows the
// rest is left out. Each kind of damage gives one warning. Only an I/O error is an error.
func readHistory(p string) (history, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return history{}, nil
	}
	if err != nil {
		return history{}, fmt.Errorf("summary: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHistoryBytes+1))
	if err != nil {
		return history{}, fmt.Errorf("summary: %s: %w", p, err)
	}
	return parseHistory(filepath.Base(p), b), nil
}

// parseHistory is readHistory's reading of the file's bytes b, name naming it in
// warnings.
func parseHistory(name string, b []byte) history {
	var h history
	warnf := func(format string, args ...any) {
		h.Warnings = append(h.Warnings, name+": "+fmt.Sprintf(format, args...))
	}
	if len(b) > maxHistoryBytes {
		b = b[:maxHistoryBytes]
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1] // no half row
		}
		warnf("larger than %d MiB: only its first %d MiB were read", maxHistoryBytes>>20, maxHistoryBytes>>20)
	}
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1 // ragged rows read as rows with missing cells
	r.LazyQuotes = true
	r.ReuseRecord = true
	header, err := r.Read()
	if err == io.EOF {
		return h
	}
	if err != nil {
		warnf("unreadable header (%v): no rows read", err)
		return h
	}
	col := map[string]int{}
	for i, name := range header {
		name = strings.TrimSpace(name)
		if _, dup := col[name]; !dup {
			col[name] = i
		}
	}
	_, h.HasValAccuracy = col["val_accuracy"]
	_, h.HasValLoss = col["val_loss"]
	known := 0
	for _, c := range []string{"epoch", "loss", "accuracy", "val_loss", "val_accuracy"} {
		if _, ok := col[c]; ok {
			known++
		}
	}
	switch {
	case known == 0:
		warnf("none of the columns epoch, loss, accuracy, val_loss, val_accuracy in its header %q", truncate(strings.Join(header, ","), 80))
	case !h.HasValAccuracy:
		warnf("no val_accuracy column: no best epoch")
	}

	var bad, short, badEpoch, badRows int
	var firstBad string
	get := func(rec []string, line int, name string) num.Float {
		i, ok := col[name]
		if !ok {
			return num.NaN()
		}
		if i >= len(rec) {
			short++
			return num.NaN()
		}
		cell := strings.TrimSpace(rec[i])
		if cell == "" {
			return num.NaN()
		}
		v, err := num.Parse(cell)
		if err != nil {
			if bad++; bad == 1 {
				firstBad = fmt.Sprintf("line %d, %s %q", line, name, truncate(cell, 40))
			}
			return num.NaN()
		}
		return num.Float(v)
	}
	for {
		if len(h.Epochs) == maxHistoryRows {
			if _, err := r.Read(); err != io.EOF {
				warnf("more than %d rows: only the first %d were read", maxHistoryRows, maxHistoryRows)
			}
			break
		}
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A row the CSV reader cannot split is left out; the reader goes on after it.
			badRows++
			if badRows > maxHistoryRows {
				break
			}
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		line, _ := r.FieldPos(0)
		e := Epoch{
			Loss: get(rec, line, "loss"), Accuracy: get(rec, line, "accuracy"),
			ValLoss: get(rec, line, "val_loss"), ValAccuracy: get(rec, line, "val_accuracy"),
		}
		e.Epoch = len(h.Epochs) + 1
		if i, ok := col["epoch"]; ok && i < len(rec) {
			v, err := num.Parse(rec[i])
			if err == nil && v == math.Trunc(v) && v >= 0 && v <= maxEpoch {
				e.Epoch = int(v)
			} else {
				badEpoch++
			}
		}
		h.Epochs = append(h.Epochs, e)
	}
	if bad > 0 {
		warnf("%d cell(s) are not numbers (first: %s); they count as missing", bad, firstBad)
	}
	if short > 0 {
		warnf("%d cell(s) missing from short rows", short)
	}
	if badEpoch > 0 {
		warnf("%d row(s) without a usable epoch number (a whole number from 0 to %d); their position is used", badEpoch, maxEpoch)
	}
	if badRows > 0 {
		warnf("%d row(s) that are not CSV were left out", badRows)
	}
	return h
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Duration formats seconds for tables: 1h02m, 3m07s, 12s.
func Duration(secs *float64) string {
	if secs == nil || math.IsNaN(*secs) || math.IsInf(*secs, 0) {
		return ""
	}
	if *secs >= 1e8 || *secs < 0 { // beyond what time.Duration holds, or nonsense
		return strconv.FormatFloat(*secs, 'g', 3, 64) + "s"
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

// Float formats an optional number with the given decimals for tables: nil is empty,
// non-finite numbers are nan, inf and -inf (see num.Float.Text).
func Float(v *num.Float, decimals int) string {
	return num.Text(v, decimals)
}

// Rate formats an optional finite number such as images per second.
func Rate(v *float64, decimals int) string {
	if v == nil {
		return ""
	}
	return num.Float(*v).Text(decimals)
}
