package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hpctl/hpctl/internal/errkind"
)

// Local reaches a cluster whose login node hpctl runs on.
type Local struct {
	// RsyncPath names rsync for Pull (empty: "rsync" from PATH); NoRsync makes Pull use
	// its pure-Go copy even where rsync exists.
	RsyncPath string
	NoRsync   bool
}

// NewLocal returns the local transport.
func NewLocal() *Local { return &Local{} }

// Name implements Transport.
func (*Local) Name() string { return "local" }

// Run implements Transport.
func (*Local) Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	cmd.SysProcAttr = childAttr()
	err := cmd.Run()
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		res.ExitCode = exitErr.ExitCode()
		return res, nil
	case errors.Is(err, exec.ErrNotFound):
		return res, fmt.Errorf("run %s: %w: %w", argv[0], errkind.ErrUnreachable, err)
	case ctx.Err() != nil:
		return res, fmt.Errorf("run %s: %w", argv[0], ctx.Err())
	}
	return res, fmt.Errorf("run %s: %w", argv[0], err)
}

// Home implements Transport.
func (*Local) Home(context.Context) (string, error) {
	h, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("home directory: %w", err)
	}
	return h, nil
}

// Getwd implements Transport.
func (*Local) Getwd(context.Context) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	return wd, nil
}

// ReadFile implements Transport.
func (*Local) ReadFile(_ context.Context, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, errkind.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// Stage implements Transport.
func (*Local) Stage(_ context.Context, dir string, files []File) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("stage: %s already exists", dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".staging-*")
	if err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if f.Mode&fs.ModeDir != 0 { // an empty directory the run needs (logs/)
			if err := os.MkdirAll(p, f.Mode.Perm()); err != nil {
				return fmt.Errorf("stage %s: %w", f.Path, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("stage %s: %w", f.Path, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		// Plain writes: nothing under tmp is visible under its final name until the
		// rename below, so a per-file temporary name and fsync (WriteFileAtomic) add
		// nothing against an interrupted hpctl, and fsyncing each of the ~15 files cost
		// 40-80 ms per submit on the test machine, more than the two sbatch calls
		// themselves (docs/performance.md).
		if err := os.WriteFile(p, f.Data, mode); err != nil {
			return fmt.Errorf("stage %s: %w", f.Path, err)
		}
		if err := os.Chmod(p, mode); err != nil { // exact mode, whatever the umask
			return fmt.Errorf("stage %s: %w", f.Path, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	ok = true
	return nil
}

// Close implements Transport.
func (*Local) Close() error { return nil }
