package results_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/registry"
)

// fixture is a run directory as the job scripts and the trainer leave it (see
// docs/run-directory.md and trainer/hpctl_trainer/stage.py), on the local disk; the
// SSH tests reach the same disk through the test sshd.
type fixture struct {
	// frozenEpochs and finetuneEpochs rows of history; 0 finetune rows with
	// finetuneStarted false is a stage Slurm has not started.
	frozenEpochs, finetuneEpochs int
	finetuneStarted              bool
	finetuneDone                 bool
	checkpointBytes              int
}

func (fx fixture) write(t testing.TB, dir string) registry.Run {
	t.Helper()
	w := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rnd := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	ckpt := fx.checkpointBytes
	if ckpt == 0 {
		ckpt = 50_000
	}
	w("spec.yaml", []byte("name: urban-rural\n"))
	w("spec.resolved.json", []byte(`{"name": "urban-rural"}`+"\n"))
	w("trainer/train.py", []byte("print('trainer')\n"))
	w("trainer/hpctl_trainer/stage.py", []byte("\n"))
	t0 := time.Date(2026, 11, 29, 5, 40, 0, 0, time.UTC).Unix()
	stage := func(name, jobID string, rows int, done bool, initFrom string, base float64) {
		sd := "stages/" + name + "/"
		w(sd+"job.sh", []byte("#!/bin/sh\n"))
		w(sd+".hpctl/started", []byte(fmt.Sprintf("job_id=%s\nhost=node001\nstart_time=%d\nattempt=1\n", jobID, t0)))
		var h strings.Builder
		h.WriteString("epoch,loss,accuracy,val_loss,val_accuracy,lr\n")
		for e := 1; e <= rows; e++ {
			acc := base + 0.02*float64(e)
			fmt.Fprintf(&h, "%d,%.4f,%.4f,%.4f,%.4f,0.001\n", e, 1-acc, acc, 1.1-acc, acc-0.01)
		}
		w(sd+"history.csv", []byte(h.String()))
		if rows == 0 {
			return
		}
		w(sd+"checkpoints/best.keras", rnd(ckpt))
		w(sd+"checkpoints/model-info.json", []byte(`{"backbone": "resnet50"}`))
		w(sd+"state/latest.json", []byte(`{"epoch": 1}`))
		w(sd+"state/epoch-0001/model.weights.h5", rnd(ckpt/2))
		if !done {
			return
		}
		w(sd+"checkpoints/final.keras", rnd(ckpt))
		last := base + 0.02*float64(rows)
		w(sd+"metrics.json", []byte(fmt.Sprintf(`{
  "stage": %q, "best_val_accuracy": %.4f, "best_val_loss": %.4f, "best_epoch": %d,
  "final_val_accuracy": %.4f, "final_val_loss": %.4f, "epochs_run": %d, "epochs": %d,
  "attempts": 1, "wall_time_s": 125.5, "train_images_per_second": 88.25, "init_from": %q,
  "gpus": [], "checkpoints": {"best": "x", "final": "y"}, "tensorflow_version": "2.x",
  "replicas": 1, "class_names": ["rural", "urban"], "train_images": 40, "val_images": 10
}
`, name, last-0.01, 1.1-last, rows, last-0.01, 1.1-last, rows, rows, initFrom)))
		w(sd+"evaluation.json", []byte(`{"stage": "`+name+`", "class_names": ["rural", "urban"],
  "confusion_matrix": [[4, 1], [0, 5]], "per_class_accuracy": {"rural": 0.8, "urban": 1.0},
  "accuracy": 0.9, "loss": 0.3, "num_images": 10}
`))
		w(sd+".hpctl/finished", []byte(fmt.Sprintf("job_id=%s\nexit_code=0\nend_time=%d\nstate=COMPLETED\n", jobID, t0+130)))
		w("logs/urban-rural-"+name+"-"+jobID+".out", []byte("epoch 1 ...\n"))
		w("logs/urban-rural-"+name+"-"+jobID+".err", []byte(""))
	}
	stage("frozen", "101", fx.frozenEpochs, true, "", 0.5)
	if fx.finetuneStarted {
		stage("finetune", "102", fx.finetuneEpochs, fx.finetuneDone, "frozen", 0.5+0.02*float64(fx.frozenEpochs))
	}
	return registry.Run{
		ID: filepath.Base(dir), SpecName: "urban-rural", RunDir: dir, Executor: "slurm", Status: registry.RunSubmitted,
		Stages: []registry.RunStage{
			{Name: "frozen", JobID: "101", JobName: "urban-rural-frozen", Epochs: fx.frozenEpochs},
			{Name: "finetune", JobID: "102", JobName: "urban-rural-finetune", DependsOn: []string{"frozen"}, Epochs: 3},
		},
	}
}
