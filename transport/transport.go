// Package transport is how hpctl reaches the cluster: run a command there, read and write
// files there, pull a directory back. Everything that touches the cluster goes through a
// Transport, so submit, status, logs, cancel and fetch-results work unchanged whether
// hpctl runs on the login node (Local) or on a laptop (SSH).
//
// Every implementation must pass the contract suite in transport/transporttest.
package transport

import (
	"context"
	"io"
	"io/fs"
)

// Result is what a command printed and how it ended.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// File is one file to stage, by path relative to a root directory.
type File struct {
	Path string
	Data []byte
	Mode fs.FileMode
}

// PullOptions select what Pull copies.
type PullOptions struct {
	// Exclude holds patterns of paths to skip, relative to the pulled directory and
	// anchored there ("trainer/", "stages/*/state/", "stages/*/checkpoints/final.*"). A
	// pattern is matched with path.Match against the file's path and against each of its
	// parent directories, so excluding a directory excludes everything in it; a trailing
	// "/" matches directories only. (rsync's unanchored and "**" forms are not supported.)
	Exclude []string
	// Progress, when set, receives bytes as they are copied (for a progress bar): done so
	// far and the total expected, both counting only files that need copying.
	Progress func(done, total int64)
	// BWLimit caps the transfer rate in bytes per second (0: no cap), to spare a shared
	// login node's link.
	BWLimit int64
}

// PullStats says what a Pull moved.
type PullStats struct {
	Files   int   `json:"files"`   // files copied or updated
	Bytes   int64 `json:"bytes"`   // bytes actually moved (zero when everything was up to date)
	Checked int   `json:"checked"` // files whose SHA-256 was compared with the cluster's after the copy
	Rsync   bool  `json:"rsync"`   // whether rsync moved the files (else hpctl's own copy)
}

// Transport is the seam under all cluster access.
type Transport interface {
	// Name is "local" or "ssh:<host>", for logs and the registry.
	Name() string
	// Run runs argv on the cluster side without a shell (argv[0] is looked up in PATH).
	// A command that ran and exited non-zero returns its Result and a nil error; err is
	// for a command that could not be run at all, wrapping errkind.ErrUnreachable when
	// the cluster did not answer.
	Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error)
	// Home is the user's home directory on the cluster side.
	Home(ctx context.Context) (string, error)
	// Getwd is the directory relative spec paths are taken from: the working directory
	// for Local, the login directory for SSH.
	Getwd(ctx context.Context) (string, error)
	// ReadFile reads a file; a missing file is an error wrapping errkind.ErrNotFound.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Stage creates dir (which must not exist yet) holding files, atomically: the files
	// are written under a temporary sibling that is renamed to dir at the end, so an
	// interrupted stage never leaves a half-written run directory under its final name.
	Stage(ctx context.Context, dir string, files []File) error
	// Pull copies remoteDir into localDir incrementally: files already present with the
	// same content are not copied again, and no partly copied file ever appears under its
	// final name.
	Pull(ctx context.Context, remoteDir, localDir string, opts PullOptions) (PullStats, error)
	// Close releases connections (the SSH master).
	Close() error
}
