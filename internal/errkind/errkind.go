// Package errkind names the kinds of failure that hpctl's exit codes distinguish. Domain
// packages wrap these with %w; the command layer maps them to the table in docs/exit-codes.md.
package errkind

import "errors"

var (
	// ErrUsage is a bad flag, argument or spec: the user must change what they typed.
	ErrUsage = errors.New("usage error")
	// ErrUnreachable is a scheduler or transport that did not answer (after retries).
	ErrUnreachable = errors.New("cluster unreachable")
	// ErrNotFound is a run, stage or file that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrRunFailed is a pipeline that ended in failure, for commands that wait for one.
	ErrRunFailed = errors.New("run failed")
)

// ErrRefused is a request the cluster will not run: pre-flight found no node or
// partition that could ever give what a stage asks for, or sbatch refused the job.
// Nothing was left queued and no run was recorded.
var ErrRefused = errors.New("refused by the cluster")
