package predict

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hpctl/hpctl/experiment"
)

func loadSpec(t *testing.T, src string) experiment.Spec {
	t.Helper()
	f := filepath.Join(t.TempDir(), "spec.yaml")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := experiment.LoadWith(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l.Spec
}

// The predict job runs in the stage's container as submit resolved it: a relative image
// is found from the directory the run was submitted from, which the relative workdir
// gives back from the run directory; the stage's resources come without requeue and
// preemption signal.
func TestJobSpecResolvesAsSubmitDid(t *testing.T) {
	const src = `name: urban
workdir: runs
data: {train: data/train, val: data/val}
container: {runtime: apptainer, image: ./images/tf.sif, mounts: ["shared/lib:/lib2"]}
slurm: {partition: gpu, gpus: 1, cpus_per_task: 8, mem: 32G, requeue: true, signal_before: 120}
stages:
  - name: frozen
  - name: finetune
    depends_on: [frozen]
    init_from: frozen
    slurm: {partition: big, mem: 64G}
`
	spec, r, err := JobSpec(loadSpec(t, src), "/home/u", "/proj/x/runs/urban-20261203-101500-1a2b", "urban-20261203-101500-1a2b", "finetune")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Container.Image != "/proj/x/images/tf.sif" || spec.Container.Mounts[0] != "/proj/x/shared/lib:/lib2" || spec.Container.Runtime != "apptainer" {
		t.Errorf("container %+v, want paths from /proj/x", spec.Container)
	}
	if r.Partition != "big" || r.Mem != "64G" || r.CPUsPerTask != 8 || r.Requeue || r.SignalBefore != 0 || r.Nodes != 1 {
		t.Errorf("resources %+v", r)
	}
	// An absolute workdir says nothing of where the spec was submitted from: home.
	abs := loadSpec(t, "name: urban\nworkdir: /scratch/runs\ndata: {train: d/t, val: d/v}\ncontainer: {runtime: apptainer, image: ./tf.sif}\nstages:\n  - name: frozen\n")
	spec, _, err = JobSpec(abs, "/home/u", "/scratch/runs/urban-1", "urban-1", "frozen")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Container.Image != "/home/u/tf.sif" {
		t.Errorf("image %s, want /home/u/tf.sif", spec.Container.Image)
	}
	if _, _, err := JobSpec(abs, "/home/u", "/scratch/runs/urban-1", "urban-1", "nope"); err == nil {
		t.Error("a stage the spec lacks was accepted")
	}
}
