package results

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The readers of a stage's files take whatever the cluster holds: a diverged run's nan
// and inf, numbers at float64's edges, ragged rows, binary garbage. They must never
// panic, never fail (only I/O fails), stay within their bounds, and give numbers that
// summary.json can hold.
//
//	go test ./pipeline/results -run '^$' -fuzz FuzzReadHistory -fuzztime 15s
//	go test ./pipeline/results -run '^$' -fuzz FuzzReadMetrics -fuzztime 15s

var historySeeds = []string{
	"epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,0.7,0.5,0.69,0.55,0.001\n2,0.6,0.6,0.62,0.65,0.001\n",
	"epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,nan,nan,nan,nan,0.001\n2,inf,-inf,Infinity,-Infinity,NaN\n",
	"epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,1e308,-1e308,1e309,-1e999,5e-324\n1e308,1,1,1,1,1\n-1,1,1,1,1,1\n",
	"epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,oops,0.5,,0x1p3,1_0\n",
	"epoch,loss,accuracy\n1,0.7,0.5\n2,0.6\n3,0.5,0.7,9,9,9\n",
	"\x00\xff\xfe\"\x01,\"\n\x00,\x00\n",
	"epoch,loss,accuracy,val_loss,val_accuracy,lr\r\n1,0.7,0.5,0.69,0.55,0.001\r\n\"2\",\"0.6\",0.6,0.62,\"0.6\"5,0.001\n",
	"",
	"\n\n\n",
	"val_accuracy,val_accuracy\n0.5,0.9\n",
}

func FuzzReadHistory(f *testing.F) {
	for _, s := range historySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h := parseHistory("history.csv", b)
		if len(h.Epochs) > maxHistoryRows {
			t.Fatalf("%d rows, more than %d", len(h.Epochs), maxHistoryRows)
		}
		for _, e := range h.Epochs {
			if e.Epoch < 0 || e.Epoch > maxEpoch {
				t.Fatalf("epoch %d out of range", e.Epoch)
			}
		}
		s := StageSummary{Name: "s", History: h.Epochs, Warnings: h.Warnings}
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("summary of this history is no JSON: %v", err)
		}
		for _, w := range h.Warnings {
			if !strings.HasPrefix(w, "history.csv: ") {
				t.Fatalf("warning %q does not name the file", w)
			}
		}
	})
}

var metricsSeeds = []string{
	`{"best_val_accuracy": 0.9, "best_epoch": 3, "epochs_run": 3, "wall_time_s": 12.5, "train_images_per_second": 80}`,
	`{"best_val_accuracy": NaN, "final_val_loss": Infinity, "best_val_loss": -Infinity, "wall_time_s": 1e999}`,
	`{"best_val_accuracy": [NaN, Infinity], "best_epoch": 1.5, "epochs": "3", "attempts": -1e308}`,
	`{"best_val_accuracy": "NaN", "final_val_accuracy": "inf", "init_from": 3}`,
	`{"accuracy": "high", "num_images": 10, "class_names": ["a", "b"], "confusion_matrix": [[1, 2], [3]], "per_class_accuracy": {"a": NaN, "b": "x"}}`,
	`{"key": "NaN in a string \" NaN", "accuracy": 1e308}`,
	`[1, 2, 3]`,
	`{"best_val_accuracy": `,
	"\x00\xff{",
	``,
	`null`,
}

func FuzzReadMetrics(f *testing.F) {
	for _, s := range metricsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m metricsFile
		if _, _, err := decodeJSON("metrics.json", b, &m); err != nil {
			t.Fatalf("metrics.json: %v", err)
		}
		var ev evaluationFile
		ok, _, err := decodeJSON("evaluation.json", b, &ev)
		if err != nil {
			t.Fatalf("evaluation.json: %v", err)
		}
		if ok {
			s := StageSummary{EvalAccuracy: ev.Accuracy, PerClassAccuracy: ev.PerClassAccuracy, ClassNames: ev.ClassNames, ConfusionMatrix: ev.ConfusionMatrix}
			if _, err := json.Marshal(s); err != nil {
				t.Fatalf("summary of this evaluation is no JSON: %v", err)
			}
			// report.md's table of it must not index out of range.
			_ = Report(&Fetched{Stages: []StageSummary{s}})
		}
		// What was valid JSON stays valid once its NaN and Infinity are null.
		if json.Valid(b) && !json.Valid(nonFiniteToNull(b)) {
			t.Fatalf("nonFiniteToNull broke valid JSON %q into %q", b, nonFiniteToNull(b))
		}
	})
}

// TestReadHistoryBounds: a history of more rows than maxHistoryRows, or more bytes than
// maxHistoryBytes (here one endless binary line after good rows), is read up to the
// bound, with a warning that says so.
func TestReadHistoryBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("epoch,loss,accuracy,val_loss,val_accuracy,lr\n")
	for i := 1; i <= maxHistoryRows+5; i++ {
		b.WriteString("1,0.5,0.5,0.5,0.5,0.1\n")
	}
	h := parseHistory("history.csv", []byte(b.String()))
	if len(h.Epochs) != maxHistoryRows || !strings.Contains(strings.Join(h.Warnings, "\n"), "more than 100000 rows") {
		t.Errorf("%d rows, warnings %q", len(h.Epochs), h.Warnings)
	}

	p := filepath.Join(t.TempDir(), "history.csv")
	big := []byte("epoch,loss,accuracy,val_loss,val_accuracy,lr\n1,0.5,0.5,0.5,0.5,0.1\n2,0.4,0.6,0.4,0.6,0.1\n")
	big = append(big, bytes.Repeat([]byte{0, 0xff, '"', ','}, maxHistoryBytes/4+10)...)
	if err := os.WriteFile(p, big, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := readHistory(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Epochs) != 2 || float64(h.Epochs[1].ValAccuracy) != 0.6 || !strings.Contains(strings.Join(h.Warnings, "\n"), "larger than 16 MiB") {
		t.Errorf("%d rows, warnings %q", len(h.Epochs), h.Warnings)
	}
}
