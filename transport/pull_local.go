package transport

import (
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

// Pull implements Transport: rsync between two local directories when rsync is
// installed, else hpctl's own copy; either way every pulled file's SHA-256 is checked.
func (l *Local) Pull(ctx context.Context, remoteDir, localDir string, opts PullOptions) (PullStats, error) {
	abs, err := filepath.Abs(remoteDir)
	if err != nil {
		return PullStats{}, fmt.Errorf("pull: %w", err)
	}
	return pull(ctx, localSource{l}, abs, localDir, opts)
}

type localSource struct{ l *Local }

func (s localSource) rsyncPath() string {
	if s.l.RsyncPath != "" {
		return s.l.RsyncPath
	}
	return "rsync"
}

func (s localSource) rsync(_ context.Context, dir string) (string, string, bool) {
	if s.l.NoRsync {
		return "", "", false
	}
	if _, err := exec.LookPath(s.rsyncPath()); err != nil {
		return "", "", false
	}
	return dir + "/", "", true
}

func (localSource) list(ctx context.Context, dir string) ([]pullFile, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, errkind.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	var out []pullFile
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A job may remove a directory while we walk it (old resume states).
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, pullFile{Rel: filepath.ToSlash(rel), Size: info.Size(), MTime: info.ModTime(), Mode: info.Mode()})
		return nil
	})
	return out, err
}

func (localSource) sums(ctx context.Context, dir string, rels []string) (map[string]string, error) {
	return localSums(ctx, dir, rels)
}

func (localSource) stream(ctx context.Context, dir string, rels []string, fn func(string, io.Reader) error) error {
	for _, rel := range rels {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // vanished since the listing; verification decides
		}
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		err = fn(rel, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
