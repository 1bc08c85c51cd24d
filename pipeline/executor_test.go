package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/jobs"
	"github.com/hpctl/hpctl/jobs/local"
	"github.com/hpctl/hpctl/pipeline"
	"github.com/hpctl/hpctl/transport"
)

func TestNewExecutor(t *testing.T) {
	ctx := context.Background()
	opts := pipeline.ExecutorOptions{Local: local.Options{StateDir: t.TempDir()}}

	_, err := pipeline.NewExecutor(ctx, "kubernetes", transport.NewLocal(), opts)
	if !errors.Is(err, errkind.ErrUsage) || !strings.Contains(err.Error(), strings.Join(jobs.ExecutorNames, ", ")) {
		t.Errorf("unknown executor: %v; want a usage error listing %v", err, jobs.ExecutorNames)
	}

	ssh := transport.NewSSH("cluster.example", transport.SSHOptions{ControlDir: t.TempDir()})
	defer ssh.Close()
	_, err = pipeline.NewExecutor(ctx, jobs.ExecutorLocal, ssh, opts)
	if !errors.Is(err, errkind.ErrUsage) || !strings.Contains(err.Error(), "this machine") {
		t.Errorf("local executor through ssh: %v; want a usage error", err)
	}

	for _, name := range []string{jobs.ExecutorSlurm, jobs.ExecutorLocal} {
		ex, err := pipeline.NewExecutor(ctx, name, transport.NewLocal(), opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ex.Name() != name {
			t.Errorf("asked for %s, got %s", name, ex.Name())
		}
	}
}
