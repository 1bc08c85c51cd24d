//go:build linux

package local_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hpctl/hpctl/jobs/executortest"
	"github.com/hpctl/hpctl/jobs/local"
)

// The contract every executor passes, against real processes on this machine.
func TestContract(t *testing.T) {
	executortest.Run(t, func(t *testing.T) executortest.Env {
		e, err := local.New(local.Options{
			StateDir: filepath.Join(t.TempDir(), "local-jobs"),
			Hpctl:    os.Args[0],
			GPUs:     []string{},
			Grace:    time.Second,
			Poll:     50 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return executortest.Env{Executor: e, Dir: t.TempDir(), Timeout: 30 * time.Second, Poll: 50 * time.Millisecond}
	})
}
