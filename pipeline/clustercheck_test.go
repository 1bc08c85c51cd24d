package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/jobs/executortest"
	"github.com/hpctl/hpctl/jobs/slurm"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
)

// runtimeSpec writes a spec with the given container section (its first key on line 12)
// and GPUs, with data that exists, and loads it.
func runtimeSpec(t *testing.T, dir, name string, gpus int, container string) *experiment.Loaded {
	t.Helper()
	for _, d := range []string{"data/train/a", "data/train/b", "data/val/a", "data/val/b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := fmt.Sprintf(`name: %s
workdir: %s/runs
data:
  train: %s/data/train
  val: %s/data/val
slurm:
  time: "00:10:00"
  gpus: %d
  cpus_per_task: 1
  mem: 64M
container:
%sstages:
  - name: one
    command: ["true"]
`, name, dir, dir, dir, gpus, container)
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := experiment.Load(file)
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	return l
}

// TestSubmitChecksRuntimeAndImage: a runtime whose program is not where the jobs are
// submitted, a pyxis without its srun flag, an image file that does not exist, and a
// runtime asked for GPUs it cannot be given are refused with their spec positions,
// before anything is staged or queued: no sbatch ran, and Slurm knows no job of the run.
func TestSubmitChecksRuntimeAndImage(t *testing.T) {
	testenv.RequireSlurm(t)
	_, podmanErr := exec.LookPath("podman")
	_, dockerErr := exec.LookPath("docker")
	_, toolkitErr := exec.LookPath("nvidia-container-cli")
	cdi, _ := filepath.Glob("/etc/cdi/*")
	more, _ := filepath.Glob("/var/run/cdi/*")
	cdi = append(cdi, more...)
	for _, tt := range []struct {
		name      string
		gpus      int
		container string
		skip      string
		want      []string
	}{
		{"apptainer", 0, "  runtime: apptainer\n  image: /nonexistent/tf.sif\n",
			skipIf(lookPath("apptainer"), "apptainer is installed here"),
			[]string{":12:12: container.runtime: runtime apptainer: apptainer is not on PATH where the jobs are submitted",
				":13:10: container.image: /nonexistent/tf.sif does not exist on the cluster"}},
		{"pyxis", 0, "  runtime: pyxis\n  image: /nonexistent/tf.sqsh\n", "",
			[]string{":12:12: container.runtime: runtime pyxis: `srun --help` does not list --container-image",
				":13:10: container.image: /nonexistent/tf.sqsh does not exist on the cluster"}},
		{"podman-gpus", 1, "  runtime: podman\n  image: localhost/hpctl-trainer:test\n",
			skipIf(podmanErr != nil || len(cdi) > 0, "podman is missing, or a CDI spec is there"),
			[]string{":12:12: container.runtime: runtime podman: stage one asks for GPUs, which hpctl gives podman as the CDI devices nvidia.com/gpu, and no CDI spec"}},
		{"docker-gpus", 2, "  runtime: docker\n  image: localhost/hpctl-trainer:test\n",
			skipIf(dockerErr != nil || toolkitErr == nil, "docker is missing, or the NVIDIA Container Toolkit is there"),
			[]string{":12:12: container.runtime: runtime docker: stage one asks for GPUs, which docker gives with --gpus through the NVIDIA Container Toolkit, and nvidia-container-cli is not on PATH"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" {
				t.Skip(tt.skip)
			}
			dir := t.TempDir()
			name := "rtcheck-" + strings.ToLower(tt.name)
			l := runtimeSpec(t, dir, name, tt.gpus, tt.container)
			reg, err := registry.Open(context.Background(), filepath.Join(dir, "state"))
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			c := executortest.NewCounting(transport.NewLocal())
			ex := slurm.New(c, slurm.Options{})
			_, err = pipeline.Submit(context.Background(), c, ex, reg, l, pipeline.SubmitOptions{Version: "test"})
			var se *experiment.SpecError
			if !errors.As(err, &se) || len(se.Problems) != len(tt.want) {
				t.Fatalf("submit: %v; want %d problems", err, len(tt.want))
			}
			for i, w := range tt.want {
				if got := se.Problems[i].String(); !strings.HasPrefix(got, l.File+w) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, got, l.File+w)
				}
			}
			if n := c.Counts()["sbatch"]; n != 0 {
				t.Errorf("sbatch ran %d times", n)
			}
			if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
				t.Error("the run directory was staged")
			}
			// A dry run says what submit would refuse, as warnings.
			sub, err := pipeline.Submit(context.Background(), c, ex, reg, l, pipeline.SubmitOptions{DryRun: true})
			if err != nil || len(sub.Warnings) < len(tt.want) || !strings.Contains(sub.Warnings[0], "submit would refuse this: "+l.File+tt.want[0]) {
				t.Errorf("dry run: %v, warnings %q", err, sub.Warnings)
			}
			out, err := exec.Command("squeue", "-h", "-o", "%j").Output()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), name) {
				t.Errorf("squeue shows a job of %s:\n%s", name, out)
			}
		})
	}
}

func lookPath(prog string) bool {
	_, err := exec.LookPath(prog)
	return err == nil
}

func skipIf(cond bool, why string) string {
	if cond {
		return why
	}
	return ""
}
