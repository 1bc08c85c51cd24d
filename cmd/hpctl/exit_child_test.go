package main

import (
	"fmt"
	"os/exec"
	"testing"
)

// A child's exit status (rsync exits 11 when the disk is full) satisfies cli.ExitCoder;
// it must map to hpctl's own "failure", never leak out as hpctl's exit code.
func TestChildExitStatusDoesNotLeak(t *testing.T) {
	err := exec.Command("sh", "-c", "exit 11").Run()
	if err == nil {
		t.Fatal("sh -c 'exit 11' succeeded")
	}
	if got := exitCode(fmt.Errorf("fetch-results: rsync: %w", err)); got != exitFailure {
		t.Errorf("exit code %d for a child's exit 11, want %d", got, exitFailure)
	}
}
