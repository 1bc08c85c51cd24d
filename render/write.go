package render

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/hpctl/hpctl/internal/fsutil"
	"github.com/hpctl/hpctl/transport"
)

// WriteDir writes files under dir so that an interrupted write leaves nothing half-written
// under a final name. When dir does not exist, the whole tree is written into a temporary
// sibling and renamed to dir at the end; otherwise each file is written to a temporary
// name beside it and renamed over the old one.
func WriteDir(files []transport.File, dir string) error {
	for _, f := range files {
		if err := checkRel(f.Path); err != nil {
			return err
		}
	}
	_, err := os.Lstat(dir)
	switch {
	case err == nil:
		return writeFiles(files, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("write %s: %w", dir, err)
	}
	parent, base := filepath.Split(filepath.Clean(dir))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := writeFiles(files, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// MkdirTemp makes the directory 0700; a run directory is as readable as any other.
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return nil
}

func writeFiles(files []transport.File, root string) error {
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		if f.Mode.IsDir() {
			if err := os.MkdirAll(p, f.Mode.Perm()); err != nil {
				return fmt.Errorf("write %s: %w", p, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := fsutil.WriteFileAtomic(p, f.Data, mode); err != nil {
			return err
		}
	}
	return nil
}

// checkRel refuses a path that would land outside the directory being written.
func checkRel(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("render: file path %q is not a clean path inside the run directory", p)
	}
	return nil
}
