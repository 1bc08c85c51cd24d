package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// divergedHistory is what the trainer leaves when a run diverges, with the other number
// faults a history.csv can hold: nan, inf and -inf cells, values at the edge of float64,
// a cell that is no number at all, and a ragged row.
const divergedHistory = "epoch,loss,accuracy,val_loss,val_accuracy,lr\n" +
	"1,0.7,0.5,0.69,nan,0.001\n" +
	"2,inf,0.6,-inf,0.65,0.001\n" +
	"3,1e308,0.7,-1e308,oops,0.001\n" +
	"4,-1e308,nan,1e308,inf\n" +
	"5,nan,nan,nan,nan,0.001\n"

// writeHistory replaces the fixture's frozen history.csv with text.
func writeHistory(t *testing.T, runDir, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(runDir, "stages/frozen/history.csv"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFetchResultsDivergedRun: a run whose history holds nan, inf, ±1e308 and an
// unreadable cell fetches with exit 0; summary.json is valid JSON with null for every
// non-finite number, the table prints nan, and the plot is a PNG.
func TestFetchResultsDivergedRun(t *testing.T) {
	dir := isolate(t)
	run := fetchFixture(t, dir, "demo-20261129-054012-a3f9")
	writeHistory(t, run.RunDir, divergedHistory)
	res := filepath.Join(dir, "res")
	stdout, stderr, code := hpctl(t, "fetch-results", "--results-dir", res)
	if code != exitOK {
		t.Fatalf("exit %d, want 0: %s", code, stderr)
	}
	// Best val accuracy is the best finite one (0.65, epoch 2); the last epoch's is nan.
	for _, want := range []string{"0.6500 (ep 2)", "nan"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "oops") {
		t.Errorf("no warning about the unreadable cell on stderr: %q", stderr)
	}
	out := filepath.Join(res, run.ID)
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatalf("summary.json not written: %v", err)
	}
	var sum struct {
		Stages []struct {
			Name             string     `json:"name"`
			BestValAccuracy  *float64   `json:"best_val_accuracy"`
			FinalValAccuracy *float64   `json:"final_val_accuracy"`
			Warnings         []string   `json:"warnings"`
			History          []struct { // every number may be null
				Epoch       int      `json:"epoch"`
				Loss        *float64 `json:"loss"`
				ValAccuracy *float64 `json:"val_accuracy"`
			} `json:"history"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, b)
	}
	fr := sum.Stages[0]
	if fr.BestValAccuracy == nil || *fr.BestValAccuracy != 0.65 || len(fr.History) != 5 ||
		fr.History[0].ValAccuracy != nil || fr.History[1].Loss != nil || fr.History[2].ValAccuracy != nil ||
		fr.History[2].Loss == nil || *fr.History[2].Loss != 1e308 || fr.History[4].Epoch != 5 {
		t.Errorf("frozen in summary.json: %s", b)
	}
	if !strings.Contains(string(b), `"final_val_accuracy": null`) {
		t.Errorf("final val accuracy (nan) is not null in summary.json:\n%s", b)
	}
	if len(fr.Warnings) == 0 || !strings.Contains(strings.Join(fr.Warnings, "\n"), "oops") {
		t.Errorf("summary.json warnings %q do not name the unreadable cell", fr.Warnings)
	}
	p, err := os.ReadFile(filepath.Join(out, "learning-curves.png"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(p)); err != nil {
		t.Errorf("plot: %v", err)
	}
	report, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(report), "| frozen | COMPLETED | 11 | 5/3 | 0.6500 (2) |") || !strings.Contains(string(report), "| nan |") {
		t.Errorf("report.md:\n%s", report)
	}

	// -o json: the same nulls, and valid JSON on stdout.
	stdout, stderr, code = hpctl(t, "fetch-results", "--results-dir", res, "-o", "json")
	if code != exitOK || !json.Valid([]byte(stdout)) {
		t.Fatalf("-o json: exit %d: %s\n%s", code, stderr, stdout)
	}
}

// TestFetchResultsHistoryWithoutValAccuracy: a header that lacks val_accuracy, ragged and
// binary rows: the fetch still succeeds and says what it could not read.
func TestFetchResultsHistoryWithoutValAccuracy(t *testing.T) {
	dir := isolate(t)
	run := fetchFixture(t, dir, "demo-20261129-054012-a3f9")
	writeHistory(t, run.RunDir, "epoch,loss,accuracy\n1,0.7,0.5\n2,0.6\n\x00\xff\xfe,\"\x01,3\n3,0.5,0.7,9,9,9\n")
	res := filepath.Join(dir, "res")
	stdout, stderr, code := hpctl(t, "fetch-results", "--results-dir", res)
	if code != exitOK {
		t.Fatalf("exit %d, want 0: %s", code, stderr)
	}
	if !strings.Contains(stderr, "val_accuracy") {
		t.Errorf("no warning about the missing column: %q", stderr)
	}
	b, err := os.ReadFile(filepath.Join(res, run.ID, "summary.json"))
	if err != nil || !json.Valid(b) {
		t.Fatalf("summary.json: %v\n%s", err, b)
	}
	if strings.Contains(string(b), "best_val_accuracy") {
		t.Errorf("a best val accuracy from a history without that column:\n%s", b)
	}
	_ = stdout
}

// TestStatusJSONDivergedRun: status -o json of a stage whose val_accuracy cells are nan
// (and one unreadable) exits 0 with valid JSON: best_val_accuracy is null, and the
// table shows nan.
func TestStatusJSONDivergedRun(t *testing.T) {
	dir := isolate(t)
	run := fetchFixture(t, dir, "demo-20261129-054012-a3f9")
	writeHistory(t, run.RunDir, "epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,nan,nan,nan,nan,0.001\n2,nan,nan,nan,oops,0.001\n3,nan,nan,nan,NaN,0.001\n")
	stdout, stderr, code := hpctl(t, "status", "-o", "json", run.ID)
	if code != exitOK {
		t.Fatalf("exit %d, want 0: %s", code, stderr)
	}
	var st []struct {
		Stages []struct {
			Name  string          `json:"name"`
			Epoch int             `json:"epoch"`
			Best  json.RawMessage `json:"best_val_accuracy"`
		} `json:"stages"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, stdout)
	}
	if len(st) != 1 || st[0].Stages[0].Epoch != 3 || string(st[0].Stages[0].Best) != "null" {
		t.Errorf("status -o json: %s", stdout)
	}
	stdout, stderr, code = hpctl(t, "status", run.ID)
	if code != exitOK || !slices.Contains(strings.Fields(stdout), "nan") {
		t.Errorf("status table: exit %d: %s\n%s", code, stderr, stdout)
	}

	// A best that is finite wins over the nan cells around it.
	writeHistory(t, run.RunDir, "epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,nan,nan,nan,nan,0.001\n2,1,1,1,0.5,0.001\n3,1,1,1,1e308x,0.001\n")
	stdout, stderr, code = hpctl(t, "status", "-o", "json", run.ID)
	if code != exitOK || !strings.Contains(stdout, `"best_val_accuracy": 0.5`) {
		t.Errorf("finite best among nan: exit %d: %s\n%s", code, stderr, stdout)
	}
}
