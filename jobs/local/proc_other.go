//go:build !linux

package local

import (
	"fmt"
	"runtime"
	"syscall"

	"github.com/hpctl/hpctl/internal/errkind"
)

// platformSupported refuses the local executor outside Linux. It finds and signals a job's
// processes through /proc (start times, process groups, environments) and waits with
// waitid(WNOWAIT); macOS has none of these, and a port that cannot be tested here would
// cancel the wrong processes when it errs. Everything that goes through ssh to a cluster
// (--host or cluster.host) works from any platform hpctl builds for.
func platformSupported() error {
	return fmt.Errorf("the local executor runs jobs on Linux only (this is %s/%s): "+
		"run them on a Slurm cluster with --host LOGIN-NODE (or cluster.host in the spec), "+
		"or run hpctl on a Linux machine: %w", runtime.GOOS, runtime.GOARCH, errkind.ErrUsage)
}

// jobSysProcAttr: a process group of its own; Pdeathsig exists only on Linux.
func jobSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// waitExitedNoReap is never reached: New and Supervise refuse first (platformSupported).
func waitExitedNoReap(int) {}
