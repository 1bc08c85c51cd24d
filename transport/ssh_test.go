package transport_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/transport"
)

// TestSSHOneConnection shows that everything hpctl does through one SSH transport (the
// commands submit and status run, reading markers, staging a run, pulling results with
// rsync and with the tar stream) rides one TCP connection: the master.
func TestSSHOneConnection(t *testing.T) {
	cfg, host := testenv.RequireSSH(t)
	testenv.ExclusiveSSH(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cdir := testenv.ControlDir(t)
	before := testenv.SSHConnectionCount(t)

	tr := transport.NewSSH(host, transport.SSHOptions{ConfigFile: cfg, ControlDir: cdir})
	res, err := tr.Run(ctx, []string{"mktemp", "-d"}, nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("mktemp: %v %s", err, res.Stderr)
	}
	scratch := strings.TrimSpace(string(res.Stdout))
	defer func() { _, _ = tr.Run(context.Background(), []string{"rm", "-rf", scratch}, nil) }()
	run := filepath.Join(scratch, "run")
	if err := tr.Stage(ctx, run, []transport.File{{Path: "spec.yaml", Data: []byte("name: x\n")}, {Path: "stages/a/history.csv", Data: []byte("epoch\n1\n")}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := tr.Run(ctx, []string{"true"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.ReadFile(ctx, filepath.Join(run, "spec.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.Home(ctx); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	for i := 0; i < 2; i++ {
		if _, err := tr.Pull(ctx, run, local, transport.PullOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A second transport in the same process (another hpctl command) reuses the master.
	tr2 := transport.NewSSH(host, transport.SSHOptions{ConfigFile: cfg, ControlDir: cdir, NoRsync: true, KeepMaster: true})
	if _, err := tr2.Pull(ctx, run, t.TempDir(), transport.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tr2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// Cleanup above runs one more ssh after Close: count before it.
	n := testenv.SSHConnectionCount(t) - before
	t.Logf("sshd accepted %d TCP connection(s) for 1 stage, 11 runs/reads, 3 pulls", n)
	if n != 1 {
		t.Fatalf("sshd accepted %d connections; want exactly 1 (the master)", n)
	}
}

func TestSSHUnreachable(t *testing.T) {
	// Nothing listens on port 1: ssh itself fails with 255.
	tr := transport.NewSSH("127.0.0.1", transport.SSHOptions{
		ControlDir: testenv.ControlDir(t),
		ExtraArgs:  []string{"-p", "1", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"},
	})
	defer tr.Close()
	_, err := tr.Run(context.Background(), []string{"true"}, nil)
	if !errors.Is(err, errkind.ErrUnreachable) {
		t.Fatalf("Run against a closed port: %v, want errkind.ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("message does not name the host: %v", err)
	}
	t.Logf("message: %v", err)
	_, err = tr.ReadFile(context.Background(), "/etc/hostname")
	if !errors.Is(err, errkind.ErrUnreachable) {
		t.Fatalf("ReadFile against a closed port: %v, want errkind.ErrUnreachable", err)
	}
}

func TestSSHControlDir(t *testing.T) {
	d := testenv.ControlDir(t)
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	tr := transport.NewSSH("some.very.long.host.name.of.a.cluster.example.org", transport.SSHOptions{ControlDir: d})
	p, err := tr.ControlPath()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(p) != d || len(p) > 80 {
		t.Errorf("control path %q", p)
	}
	fi, _ := os.Stat(d)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("control dir mode %v, want 0700", fi.Mode().Perm())
	}
	long := transport.NewSSH("h", transport.SSHOptions{ControlDir: filepath.Join(d, strings.Repeat("x", 90))})
	if _, err := long.ControlPath(); err == nil {
		t.Error("a control dir too long for a socket path was accepted")
	}
	if _, err := transport.NewSSH("-oProxyCommand=x", transport.SSHOptions{ControlDir: d}).ControlPath(); err == nil {
		t.Error("a host starting with - was accepted")
	}
}
