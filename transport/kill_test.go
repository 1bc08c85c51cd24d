package transport_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/transport"
	"github.com/hpctl/hpctl/transport/transporttest"
)

// The helper process: pulls HPCTL_PULL_SRC into HPCTL_PULL_DST slowly, until killed.
func TestPullHelperProcess(t *testing.T) {
	if os.Getenv("HPCTL_PULL_SRC") == "" {
		t.Skip("helper process for TestPullKilled")
	}
	tr := helperTransport(os.Getenv("HPCTL_PULL_KIND"))
	_, err := tr.Pull(context.Background(), os.Getenv("HPCTL_PULL_SRC"), os.Getenv("HPCTL_PULL_DST"), transport.PullOptions{BWLimit: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
}

func helperTransport(kind string) transport.Transport {
	switch kind {
	case "local-gocopy":
		return &transport.Local{NoRsync: true}
	case "ssh-rsync":
		return transport.NewSSH(os.Getenv("HPCTL_PULL_HOST"), transport.SSHOptions{
			ConfigFile: os.Getenv("HPCTL_PULL_CONFIG"), ControlDir: os.Getenv("HPCTL_PULL_CONTROL"), KeepMaster: true})
	}
	return transport.NewLocal()
}

// TestPullKilled kills a pulling process (and its rsync) with SIGKILL part-way through a
// large file, so no handler runs; a new Pull must then leave the files identical to the
// source and no partial file anywhere.
func TestPullKilled(t *testing.T) {
	src := t.TempDir()
	files := []transport.File{
		{Path: "a-small", Data: []byte("small")},
		{Path: "stages/s/checkpoints/best.keras", Data: make([]byte, 8<<20)},
		{Path: "z-after", Data: []byte("after")},
	}
	_, _ = rand.Read(files[1].Data)
	for _, f := range files {
		p := filepath.Join(src, f.Path)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kinds := []string{"local-rsync", "local-gocopy", "ssh-rsync"}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			env := []string{"HPCTL_PULL_SRC=" + src, "HPCTL_PULL_KIND=" + kind}
			var tr transport.Transport = helperTransport(kind)
			if kind == "ssh-rsync" {
				cfg, host := testenv.RequireSSH(t)
				cdir := testenv.ControlDir(t)
				env = append(env, "HPCTL_PULL_HOST="+host, "HPCTL_PULL_CONFIG="+cfg, "HPCTL_PULL_CONTROL="+cdir)
				tr = transport.NewSSH(host, transport.SSHOptions{ConfigFile: cfg, ControlDir: cdir})
			}
			defer tr.Close()
			dst := filepath.Join(t.TempDir(), "run")
			cmd := exec.Command(os.Args[0], "-test.run=^TestPullHelperProcess$", "-test.count=1")
			cmd.Env = append(append(os.Environ(), env...), "HPCTL_PULL_DST="+dst)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// At 2 MiB/s the big file takes 4 s: kill the whole group part-way (ssh needs
			// a moment more to log in and list).
			delay := 1500 * time.Millisecond
			if kind == "ssh-rsync" {
				delay = 3 * time.Second
			}
			time.Sleep(delay)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			if cmd.ProcessState.Success() {
				t.Fatal("the helper finished before it was killed; slow it down")
			}
			big := filepath.Join(dst, "stages/s/checkpoints/best.keras")
			if fi, err := os.Stat(big); err == nil && fi.Size() != int64(len(files[1].Data)) {
				t.Fatalf("after kill -9, %s holds %d bytes under its final name", big, fi.Size())
			}
			left, _ := filepath.Glob(filepath.Join(dst, ".hpctl-partial", "*"))
			t.Logf("after kill -9: %d temporary file(s) in .hpctl-partial", len(left))

			st, err := tr.Pull(context.Background(), src, dst, transport.PullOptions{})
			if err != nil {
				t.Fatalf("Pull after kill -9: %v", err)
			}
			t.Logf("rerun: %+v", st)
			transporttest.CheckLocal(t, dst, files, nil)
		})
	}
}
