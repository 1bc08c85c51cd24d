package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestValidateRefusesNonRegularFiles: `hpctl validate /dev/zero` grew without bound and a
// FIFO blocked forever; both are usage errors naming the file, and come back at once.
func TestValidateRefusesNonRegularFiles(t *testing.T) {
	dir := isolate(t)
	fifo := filepath.Join(dir, "spec.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#\n", 200_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"/dev/zero", "/dev/zero: cannot read the spec: not a regular file (a character device)"},
		{fifo, fifo + ": cannot read the spec: not a regular file (a named pipe)"},
		{big, big + ": cannot read the spec: the spec is 400000 bytes, over the limit of 256 KiB for a spec file"},
	} {
		type result struct {
			stderr string
			code   int
		}
		done := make(chan result, 1)
		go func() {
			_, stderr, code := hpctl(t, "validate", tc.file)
			done <- result{stderr, code}
		}()
		select {
		case r := <-done:
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("validate %s: exit %d, want %d; stderr:\n%s", tc.file, r.code, exitUsage, r.stderr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("validate %s blocked", tc.file)
		}
	}
}
