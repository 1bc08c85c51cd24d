package containers

import "fmt"

func init() {
	Register("docker", func() Runtime { return docker{program: "docker"} })
	Register("podman", func() Runtime { return docker{program: "podman"} })
}

// docker runs the command with docker or podman on a workstation (the local executor) or
// a node that has them. Unlike pyxis and apptainer, a docker container sees nothing of the
// host that it is not given: the environment, the user, the GPUs.
type docker struct{ program string }

func (d docker) Name() string { return d.program }

// Capabilities: -v splits at ':' and has no list separator; the CLI forwards signals.
func (docker) Capabilities() Capabilities {
	return Capabilities{NeedsImage: true, MountForbidden: ":", GPUs: GPUDevicesFlag, Signals: SignalViaCLI}
}

// Shell text expanded on the node. CUDA_VISIBLE_DEVICES is set by Slurm for the job's
// gres and by the local executor; without it the container gets every GPU.
const (
	// docker's --gpus parses its value as CSV, so a list of devices must be quoted
	// inside the value: --gpus '"device=0,1"'.
	dockerGPUs = `"\"device=${CUDA_VISIBLE_DEVICES:-all}\""`
	// podman turns each comma-separated --gpus entry into the CDI device nvidia.com/gpu=N.
	podmanGPUs = `"${CUDA_VISIBLE_DEVICES:-all}"`
	// Files in the run directory must belong to the user, not to root.
	dockerUser = `"$(id -u):$(id -g)"`
)

func (d docker) Command(l Launch) ([]Word, error) {
	if l.Image == "" {
		return nil, fmt.Errorf("%s: no container image", d.program)
	}
	if len(l.Argv) == 0 {
		return nil, fmt.Errorf("%s: no command to run", d.program)
	}
	ms, err := CheckedMounts(d, l)
	if err != nil {
		return nil, err
	}
	// --init puts a real init in front of the command: as PID 1 without it, python would
	// ignore the TERM that scancel sends through docker's signal proxy.
	words := Lits(d.program, "run", "--rm", "--init")
	if l.GPUs > 0 {
		gpus := expansion(dockerGPUs)
		if d.program == "podman" {
			gpus = expansion(podmanGPUs)
		}
		words = append(words, Lit("--gpus"), gpus)
	}
	if d.program == "podman" {
		// Rootless podman maps the user's own id into the container this way.
		words = append(words, Lit("--userns=keep-id"))
	} else {
		words = append(words, Lit("--user"), expansion(dockerUser))
	}
	for _, e := range l.Env {
		// -e NAME without a value passes the variable from the caller's environment.
		words = append(words, Lit("-e"), Lit(e))
	}
	for _, m := range ms {
		words = append(words, Lit("-v"), mountWord(m))
	}
	words = append(words, Lit("-w"), Path(l.RunDir), Lit(l.Image))
	return append(words, Lits(l.Argv...)...), nil
}
