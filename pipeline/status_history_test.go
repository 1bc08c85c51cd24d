package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

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
