package render

import (
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/golden"
	"github.com/hpctl/hpctl/jobs"
)

// TestPredictScriptGolden pins `hpctl predict --remote`'s job script (pyxis, a stage's
// resources without GPUs, a hostile mount and image) and checks it with bash -n and
// shellcheck: it runs in the scratch folder, logs there, and never writes the stage's
// markers.
func TestPredictScriptGolden(t *testing.T) {
	for _, c := range []struct {
		name, runtime, image string
		gpus                 int
	}{
		{"predict-pyxis", "pyxis", "nvcr.io#nvidia/tensorflow:22.02-tf2-py3", 0},
		{"predict-apptainer-gpu", "apptainer", "$HOME/sif/tf x.sif", 1},
	} {
		run := "/home/u/runs/urban-rural-20261129-054012-a3f9"
		dir := run + "/predict/20261203-170000-abcdef"
		s, err := PredictScript(PredictJob{
			RunID: "urban-rural-20261129-054012-a3f9", Stage: "finetune", JobName: "urban-rural-predict", Runtime: c.runtime,
			RunDir: run, Dir: dir, Image: c.image, Mounts: []string{"/scratch/my data:/data"},
			R: jobs.Resources{Partition: "gpu", Account: "proj", Time: "00:30:00", GPUs: c.gpus, CPUsPerTask: 8, Mem: "32G", Extra: []string{"--constraint=a100"}},
			Argv: []string{"python3", dir + "/trainer/train.py", "predict", "--jsonl", "--model", run + "/stages/finetune/checkpoints/best.h5",
				"--image-list", dir + "/images.txt"},
		})
		if err != nil {
			t.Fatal(err)
		}
		golden.RequireEqual(t, c.name, s)
		lint(t, c.name, s)
		for _, no := range []string{".hpctl", "--requeue", "--signal"} {
			if strings.Contains(string(s), no) {
				t.Errorf("%s: the predict job's script holds %q", c.name, no)
			}
		}
	}
}
