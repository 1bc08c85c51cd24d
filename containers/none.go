package containers

import "fmt"

func init() { register("none", func() Runtime { return none{} }) }

// none runs the command on the host as it is, with the host's python: for clusters
// without a container runtime and for tests.
type none struct{}

func (none) Name() string { return "none" }

func (none) Command(l Launch) ([]Word, error) {
	if len(l.Argv) == 0 {
		return nil, fmt.Errorf("none: no command to run")
	}
	return Lits(l.Argv...), nil
}
