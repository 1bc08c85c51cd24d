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

// Capabilities: -v splits at ':' and has no list separator; the CLI forwards signals
// (rootless podman 4 does not forward USR2: the job script sends it with `podman kill`,
// by the container's name). docker gives GPUs with --gpus (NVIDIA Container Toolkit),
// podman through CDI.
func (d docker) Capabilities() Capabilities {
	gpus := GPUDevicesFlag
	if d.program == "podman" {
		gpus = GPUCDI
	}
	return Capabilities{NeedsImage: true, MountForbidden: ":", GPUs: gpus, Signals: SignalViaCLI, Program: d.program}
}

// Shell text expanded on the node. CUDA_VISIBLE_DEVICES is set by Slurm for the job's
// gres and by the local executor; without it the container gets every GPU.
const (
	// docker's --gpus parses its value as CSV, so a list of devices must be quoted
	// inside the value: --gpus '"device=0,1"'.
	dockerGPUs = `"\"device=${CUDA_VISIBLE_DEVICES:-all}\""`
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
	// ignore the TERM that scancel sends through docker's signal proxy. Host networking:
	// the trainer needs no network of its own, and clusters (and the test machine) often
	// have no bridge.
	words := Lits(d.program, "run", "--rm", "--init", "--network", "host")
	if len(l.Name.parts) > 0 {
		// The job script signals and removes the container by this name.
		words = append(words, Lit("--name"), l.Name)
	}
	env := l.Env
	if l.GPUs > 0 {
		if d.program == "podman" {
			// CDI: every GPU of the node, and the job's CUDA_VISIBLE_DEVICES (passed
			// below) picks the granted ones. podman's own --gpus adds no devices
			// before podman 5.0.
			words = append(words, Lit("--device"), Lit("nvidia.com/gpu=all"))
			env = append(append([]string(nil), env...), "CUDA_VISIBLE_DEVICES")
		} else {
			words = append(words, Lit("--gpus"), expansion(dockerGPUs))
		}
	}
	// podman needs no user: rootless, the container's root is the user who runs the
	// job, so what it writes in the run directory is theirs, and rootful it is root. (Not
	// --userns=keep-id: root is refused it, and rootless podman 4.3 with runc then cannot
	// run the image's files or its --init.)
	if d.program != "podman" {
		words = append(words, Lit("--user"), expansion(dockerUser))
	}
	for _, e := range env {
		// -e NAME without a value passes the variable from the caller's environment.
		words = append(words, Lit("-e"), Lit(e))
	}
	for _, m := range ms {
		words = append(words, Lit("-v"), mountWord(m))
	}
	words = append(words, Lit("-w"), Path(l.RunDir), Lit(l.Image))
	return append(words, Lits(l.Argv...)...), nil
}
