package transport_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/transport"
)

// A results folder with symbolic links planted in it: a link to a directory inside the
// destination is replaced by a real directory, and a destination that is itself a link
// is refused; in both cases nothing is written outside the destination.
func TestPullNeverWritesThroughSymlinks(t *testing.T) {
	src := t.TempDir()
	for rel, data := range map[string]string{"spec.yaml": "name: x\n", "stages/s/history.csv": "epoch\n1\n", "logs/x-1.out": "hi\n"} {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []string{"local-rsync", "local-gocopy"} {
		t.Run(kind, func(t *testing.T) {
			if kind == "local-rsync" {
				if _, err := exec.LookPath("rsync"); err != nil {
					t.Skip("no rsync")
				}
			}
			outside := t.TempDir()
			dst := filepath.Join(t.TempDir(), "run")
			os.MkdirAll(dst, 0o755)
			if err := os.Symlink(outside, filepath.Join(dst, "stages")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(outside, "spec-target"), filepath.Join(dst, "spec.yaml")); err != nil {
				t.Fatal(err)
			}
			if _, err := helperTransport(kind).Pull(context.Background(), src, dst, transport.PullOptions{}); err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("the pull wrote outside its destination, into %s: %v", outside, ents)
			}
			for _, rel := range []string{"stages", "spec.yaml"} {
				if fi, err := os.Lstat(filepath.Join(dst, rel)); err != nil || fi.Mode()&os.ModeSymlink != 0 {
					t.Errorf("%s: still a link or missing (%v)", rel, err)
				}
			}
			if b, err := os.ReadFile(filepath.Join(dst, "stages/s/history.csv")); err != nil || string(b) != "epoch\n1\n" {
				t.Errorf("history.csv: %q, %v", b, err)
			}

			// The destination itself a link: refused as a usage error, nothing written.
			linked := filepath.Join(t.TempDir(), "run-link")
			if err := os.Symlink(outside, linked); err != nil {
				t.Fatal(err)
			}
			_, err := helperTransport(kind).Pull(context.Background(), src, linked, transport.PullOptions{})
			if !errors.Is(err, errkind.ErrUsage) {
				t.Errorf("Pull into a link: %v; want a usage error", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("the pull into a link wrote into %s: %v", outside, ents)
			}
		})
	}
}
