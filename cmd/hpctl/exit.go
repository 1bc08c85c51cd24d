package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/errkind"
)

// Exit codes; docs/exit-codes.md is the table users read. Keep them in step.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitNotFound    = 4
	exitRunFailed   = 5
	exitRefused     = 6
	exitInterrupted = 130
)

// documented reports whether code is in the table.
func documented(code int) bool {
	switch code {
	case exitOK, exitFailure, exitUsage, exitUnreachable, exitNotFound, exitRunFailed, exitRefused, exitInterrupted:
		return true
	}
	return false
}

func usageError(err error) error { return fmt.Errorf("%w: %w", errkind.ErrUsage, err) }

// exitCode maps an error to the documented table. urfave/cli only honours an unwrapped
// cli.ExitCoder, so hpctl maps its own error kinds with errors.As/Is instead.
func exitCode(err error) int {
	var specErr *experiment.SpecError
	var coder cli.ExitCoder
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &specErr), errors.Is(err, errkind.ErrUsage):
		return exitUsage
	case errors.Is(err, errkind.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, errkind.ErrNotFound):
		return exitNotFound
	case errors.Is(err, errkind.ErrRunFailed):
		return exitRunFailed
	case errors.Is(err, errkind.ErrRefused):
		return exitRefused
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case isChildExit(err):
		// A child's exit status (rsync's 11, ssh's 255) satisfies cli.ExitCoder too, but
		// it is not one of hpctl's codes: it must never leak out as hpctl's own.
		return exitFailure
	case errors.As(err, &coder):
		if c := coder.ExitCode(); documented(c) {
			return c
		}
		return exitFailure
	case isFlagError(err):
		return exitUsage
	}
	return exitFailure
}

// isFlagError recognises urfave/cli's parse errors, which carry no type of their own.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"flag provided but not defined", "flag needs an argument", "invalid value", "Required flag", "Required flags"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// report prints the error for a person and returns the exit code.
func report(e *env, err error) int {
	code := exitCode(err)
	var specErr *experiment.SpecError
	if errors.As(err, &specErr) {
		fmt.Fprintln(e.stderr, specErr.Error())
		n := len(specErr.Problems)
		if n == 1 {
			fmt.Fprintln(e.stderr, "hpctl: the spec has 1 problem; nothing was written or submitted")
		} else {
			fmt.Fprintf(e.stderr, "hpctl: the spec has %d problems; nothing was written or submitted\n", n)
		}
		return code
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, errkind.ErrUsage.Error()+": ")
	fmt.Fprintf(e.stderr, "hpctl: %s\n", msg)
	if hint := hintFor(code); hint != "" {
		fmt.Fprintf(e.stderr, "hint: %s\n", hint)
	}
	return code
}

func hintFor(code int) string {
	switch code {
	case exitUnreachable:
		return "the scheduler or the cluster did not answer; check `sinfo` (or your ssh login) and try again: nothing half-done was left behind"
	case exitNotFound:
		return "`hpctl runs` lists the runs this machine knows; `hpctl status RUN` shows their stages"
	case exitRefused:
		return "the cluster will not run what the spec asks for: change it as said above; `hpctl submit --dry-run SPEC` checks it against the cluster again, submitting nothing"
	}
	return ""
}

func isChildExit(err error) bool {
	var exitErr *exec.ExitError
	return errors.As(err, &exitErr)
}
