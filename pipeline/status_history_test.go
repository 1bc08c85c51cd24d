package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/num"
	"github.com/hpctl/hpctl/transport"
)

// TestStatusHistorySummary runs status's read script (the real sh and awk, through the
// local transport) over histories a diverged or damaged run leaves, and encodes what it
// found as status -o json does: the best val_accuracy is the best finite one, nan when
// none is finite (null in JSON), absent without the column; the JSON always encodes.
func TestStatusHistorySummary(t *testing.T) {
	const head = "epoch,loss,accuracy,val_loss,val_accuracy,lr\n"
	for _, c := range []struct {
		name, history string
		epochs        int
		best          string // num.Text of the best, "" for nil
		json          string
	}{
		{"finite", head + "1,1,1,1,0.5,0.1\n2,1,1,1,0.75,0.1\n3,1,1,1,0.6,0.1\n", 3, "0.7500", "0.75"},
		{"nan first", head + "1,1,1,1,nan,0.1\n2,1,1,1,0.5,0.1\n3,1,1,1,nan,0.1\n", 3, "0.5000", "0.5"},
		{"all nan", head + "1,nan,nan,nan,nan,0.1\n2,nan,nan,nan,NaN,0.1\n", 2, "nan", "null"},
		{"inf", head + "1,1,1,1,inf,0.1\n2,1,1,1,-inf,0.1\n", 2, "-inf", "null"},
		{"huge", head + "1,1,1,1,1e308,0.1\n2,1,1,1,-1e308,0.1\n3,1,1,1,1e999,0.1\n", 3, "1.000e+308", "1e+308"},
		{"overflow only", head + "1,1,1,1,1e999,0.1\n2,1,1,1,-1e999,0.1\n", 2, "", ""},
		{"unreadable", head + "1,1,1,1,oops,0.1\n2,1,1,1,0.25,0.1\n3,1,1,1,0.9x,0.1\n", 3, "0.2500", "0.25"},
		{"no column", "epoch,loss\n1,0.5\n2,0.4\n", 2, "", ""},
		{"crlf and quotes", "\"epoch\",\"val_accuracy\"\r\n1,0.5\r\n2,0.7\r\n", 2, "0.7000", "0.7"},
		{"binary", head + "\x00\xff,\x01\n1,1,1,1,\x00,0.1\n", 2, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, experiment.HistoryFile), []byte(c.history), 0o644); err != nil {
				t.Fatal(err)
			}
			files, err := readStageFiles(context.Background(), transport.NewLocal(), []stageFiles{{Dir: dir, Out: dir + "/o", Err: dir + "/e"}}, 10)
			if err != nil {
				t.Fatal(err)
			}
			f := files[dir]
			if f.epochs != c.epochs || num.Text(f.bestVal, 4) != c.best {
				t.Errorf("epochs %d best %q, want %d %q", f.epochs, num.Text(f.bestVal, 4), c.epochs, c.best)
			}
			b, err := json.Marshal(StageStatus{Name: "s", BestValAccuracy: f.bestVal})
			if err != nil {
				t.Fatalf("status JSON: %v", err)
			}
			var back map[string]json.RawMessage
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got := string(back["best_val_accuracy"])
			if got != c.json {
				t.Errorf("best_val_accuracy in JSON %q, want %q", got, c.json)
			}
		})
	}
	if v, err := num.Parse("nan"); err != nil || !math.IsNaN(v) {
		t.Errorf("num.Parse(nan) = %v, %v", v, err)
	}
}

// TestStatusHistoryPace: the read script gives the last epoch's loss and val_accuracy
// and the end times of the last six epochs; epochSeconds takes their median gap, so a
// requeue's wait between two epochs does not count.
func TestStatusHistoryPace(t *testing.T) {
	const head = "epoch,loss,accuracy,val_loss,val_accuracy,lr,time\n"
	history := head
	// Epochs of 10 s, with a 600 s requeue gap before epoch 6.
	at := 1000.0
	for e := 1; e <= 8; e++ {
		at += 10
		if e == 6 {
			at += 600
		}
		history += fmt.Sprintf("%d,%.2f,0.5,0.5,0.%d,0.001,%.3f\n", e, 1.0/float64(e), e, at)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, experiment.HistoryFile), []byte(history), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := readStageFiles(context.Background(), transport.NewLocal(), []stageFiles{{Dir: dir, Out: dir + "/o", Err: dir + "/e"}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	f := files[dir]
	if f.epochs != 8 || num.Text(f.lastLoss, 4) != "0.1200" || num.Text(f.lastVal, 4) != "0.8000" || num.Text(f.bestVal, 4) != "0.8000" {
		t.Errorf("epochs %d, last loss %s, last val %s, best %s", f.epochs, num.Text(f.lastLoss, 4), num.Text(f.lastVal, 4), num.Text(f.bestVal, 4))
	}
	want := []float64{1030, 1040, 1050, 1660, 1670, 1680}
	if fmt.Sprint(f.times) != fmt.Sprint(want) {
		t.Errorf("times %v, want %v", f.times, want)
	}
	if s := epochSeconds(f.times, time.Time{}); s != 10 {
		t.Errorf("epochSeconds = %v, want 10", s)
	}
	// One epoch: the time since the job started.
	if s := epochSeconds([]float64{1030}, time.Unix(1000, 0)); s != 30 {
		t.Errorf("epochSeconds of one epoch = %v, want 30", s)
	}
	// A history written before the time column: no pace, nothing else lost.
	if err := os.WriteFile(filepath.Join(dir, experiment.HistoryFile), []byte("epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,0.5,0.5,0.5,0.6,0.001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, _ = readStageFiles(context.Background(), transport.NewLocal(), []stageFiles{{Dir: dir, Out: dir + "/o", Err: dir + "/e"}}, 10)
	if f := files[dir]; f.epochs != 1 || len(f.times) != 0 || num.Text(f.lastVal, 4) != "0.6000" {
		t.Errorf("old history: %+v", f)
	}
}
