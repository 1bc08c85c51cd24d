package containers

import "fmt"

func init() { Register("none", func() Runtime { return none{} }) }

// none runs the command on the host as it is, with the host's python: for clusters
// without a container runtime and for tests.
type none struct{}

func (none) Name() string { return "none" }

// Capabilities: none mounts nothing and runs the command as the job shell's child.
func (none) Capabilities() Capabilities {
	return Capabilities{GPUs: GPUInherit, Signals: SignalDirect}
}

func (none) Command(l Launch) ([]Word, error) {
	if len(l.Argv) == 0 {
		return nil, fmt.Errorf("none: no command to run")
	}
	return Lits(l.Argv...), nil
}
