package containers

import (
	"fmt"
	"strings"
)

func init() { Register("pyxis", func() Runtime { return pyxis{} }) }

// pyxis runs the command in an enroot container through Slurm's pyxis plugin, as the
// published experiment does: srun --container-image=... inside the batch job, so the step
// inherits the job's GPUs, and srun forwards USR2 and TERM to the container.
type pyxis struct{}

func (pyxis) Name() string { return "pyxis" }

// Capabilities: --container-mounts joins mounts with ',' and splits each at ':'; the
// launch line is an srun step, which needs a Slurm job.
func (pyxis) Capabilities() Capabilities {
	return Capabilities{NeedsImage: true, NeedsSrun: true, MountForbidden: ",:", MountListSeparator: ",",
		GPUs: GPUInherit, Signals: SignalDirect, Program: "srun", ProgramFlag: "--container-image",
		ImageFiles: []string{".sqsh", ".squashfs", ".sqfs"}}
}

func (p pyxis) Command(l Launch) ([]Word, error) {
	if l.Image == "" {
		return nil, fmt.Errorf("pyxis: no container image")
	}
	if len(l.Argv) == 0 {
		return nil, fmt.Errorf("pyxis: no command to run")
	}
	ms, err := CheckedMounts(p, l)
	if err != nil {
		return nil, err
	}
	mounts := Lit("--container-mounts=")
	for i, m := range ms {
		if i > 0 {
			mounts = Concat(mounts, Lit(p.Capabilities().MountListSeparator))
		}
		mounts = Concat(mounts, mountWord(m))
	}
	image := Lit(l.Image)
	// A registry reference (nvcr.io#nvidia/tensorflow:22.02-tf2-py3) is literal; only a
	// file path may start with a home reference.
	if !strings.Contains(l.Image, "#") {
		image = Path(l.Image)
	}
	words := []Word{
		Lit("srun"),
		Concat(Lit("--container-image="), image),
		mounts,
		Concat(Lit("--container-workdir="), Path(l.RunDir)),
	}
	return append(words, Lits(l.Argv...)...), nil
}
