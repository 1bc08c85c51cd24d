package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// The two-node test cluster of scripts/slurm-up-2nodes.sh: a second Slurm instance on the
// same machine, with its own slurm.conf, for the multi-node tests (slurm.nodes > 1).
const (
	// EnvRequireSlurm2 "1": a missing two-node cluster fails the test instead of skipping it.
	EnvRequireSlurm2 = "HPCTL_REQUIRE_SLURM2"
	// EnvSlurm2Conf is that cluster's slurm.conf, default /etc/slurm-2nodes/slurm.conf.
	EnvSlurm2Conf = "HPCTL_SLURM2_CONF"
	// TwoNodePartition is its only partition, with nodes n1 and n2.
	TwoNodePartition = "two"
)

// TwoNodeConf is the path of the two-node cluster's slurm.conf.
func TwoNodeConf() string {
	if c := os.Getenv(EnvSlurm2Conf); c != "" {
		return c
	}
	return "/etc/slurm-2nodes/slurm.conf"
}

// RequireTwoNodes skips the test unless the two-node cluster answers with both nodes up
// (or fails it when HPCTL_REQUIRE_SLURM2=1), then sets SLURM_CONF for the rest of the
// test, so that every Slurm command it runs, hpctl's included, talks to that cluster.
// Such a test must not be parallel: SLURM_CONF is process-wide.
func RequireTwoNodes(t *testing.T) {
	t.Helper()
	conf := TwoNodeConf()
	if _, err := os.Stat(conf); err != nil {
		unavailable(t, EnvRequireSlurm2, fmt.Sprintf("two-node Slurm cluster not set up (%v); start it with `make slurm-up-2nodes`", err))
		return
	}
	t.Setenv("SLURM_CONF", conf)
	out, err := run(probeTimeout, "sinfo", "-h", "-N", "-p", TwoNodePartition, "-o", "%N %t")
	up := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[1] == "idle" || f[1] == "mix" || f[1] == "alloc") {
			up++
		}
	}
	if err != nil || up < 2 {
		unavailable(t, EnvRequireSlurm2, fmt.Sprintf("two-node Slurm cluster (%s) not ready (sinfo: %v: %s); start it with `make slurm-up-2nodes`",
			conf, err, strings.TrimSpace(string(out))))
	}
}
