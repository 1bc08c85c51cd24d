package containers

import "fmt"

func init() {
	Register("apptainer", func() Runtime { return apptainer{program: "apptainer"} })
	// Singularity (SingularityCE) kept apptainer's command line.
	Register("singularity", func() Runtime { return apptainer{program: "singularity"} })
}

// apptainer runs the command in a .sif (or docker:// reference) with the host's
// environment, which carries HPCTL_* and CUDA_VISIBLE_DEVICES in; --nv adds the NVIDIA
// driver and devices.
type apptainer struct{ program string }

func (a apptainer) Name() string { return a.program }

// Capabilities: --bind splits a list at ',' and each mount at ':', even with one mount per
// --bind.
func (a apptainer) Capabilities() Capabilities {
	return Capabilities{NeedsImage: true, MountForbidden: ",:", MountListSeparator: ",", GPUs: GPUNvFlag, Signals: SignalDirect,
		Program: a.program, ImageFiles: []string{".sif", ".simg", ".img"}}
}

func (a apptainer) Command(l Launch) ([]Word, error) {
	if l.Image == "" {
		return nil, fmt.Errorf("%s: no container image", a.program)
	}
	if len(l.Argv) == 0 {
		return nil, fmt.Errorf("%s: no command to run", a.program)
	}
	ms, err := CheckedMounts(a, l)
	if err != nil {
		return nil, err
	}
	words := Lits(a.program, "exec")
	if l.GPUs > 0 {
		words = append(words, Lit("--nv"))
	}
	for _, m := range ms {
		words = append(words, Lit("--bind"), mountWord(m))
	}
	words = append(words, Lit("--pwd"), Path(l.RunDir), Path(l.Image))
	return append(words, Lits(l.Argv...)...), nil
}
