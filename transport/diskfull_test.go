package transport_test

import (
	"context"
	"crypto/rand"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpctl/hpctl/transport"
)

// TestPullDiskFull fills a real 1 MiB tmpfs: the pull must fail with the cause ("No space
// left on device", not rsync's "error in file IO (code 11)"), and leave no partial file,
// under its final name or in rsync's partial directory.
func TestPullDiskFull(t *testing.T) {
	src := t.TempDir()
	big := make([]byte, 3<<20)
	_, _ = rand.Read(big)
	for rel, data := range map[string][]byte{"a-small": []byte("small"), "stages/s/checkpoints/best.keras": big} {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
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
			mnt := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
				if os.Getenv("HPCTL_REQUIRE_TOOLS") != "" {
					t.Fatalf("mount tmpfs: %v: %s", err, out)
				}
				t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", mnt).Run() })
			dst := filepath.Join(mnt, "run")
			_, err := helperTransport(kind).Pull(context.Background(), src, dst, transport.PullOptions{})
			if err == nil || !strings.Contains(err.Error(), "No space left on device") && !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("Pull onto a full disk: err = %v; want the cause, no space left on device", err)
			}
			filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				if d.Name() == ".rsync-partial" || d.Name() == "best.keras" {
					t.Errorf("left behind after a failed pull: %s", p)
				}
				return nil
			})
		})
	}
}
