package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hpctl/hpctl/experiment"
	"github.com/hpctl/hpctl/internal/registry"
	"github.com/hpctl/hpctl/transport"
)

// runIDRe is what NewRunID makes: <spec name>-<yyyymmdd-hhmmss>-<4 hex>, the name as
// spec validation allows it. clean removes nothing named otherwise: registry records are
// read as hostile, and an id of "..", "" or "home" must never become a path to remove.
var runIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}-[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$`)

// tombSuffix names a run directory being removed: it is first renamed to
// .<run-id>.hpctl-removing beside itself (one atomic rename), then removed, so a removal
// cut short leaves no half run directory under the run's name, and the next clean
// finishes it.
const tombSuffix = ".hpctl-removing"

func tombOf(dir, id string) string { return path.Join(path.Dir(dir), "."+id+tombSuffix) }

// CheckRemovable says why run's directories must not be removed, or nil: its id is not
// one hpctl makes, or its run directory is not <absolute workdir>/<run-id>, or another
// recorded run's directory (in all, every run in the registry) is that directory or lies
// inside it.
func CheckRemovable(run registry.Run, all []registry.Run) error {
	if !runIDRe.MatchString(run.ID) {
		return fmt.Errorf("its id %q is not one hpctl makes (<name>-<yyyymmdd-hhmmss>-<hex>)", run.ID)
	}
	d := run.RunDir
	if !path.IsAbs(d) || path.Clean(d) != d || path.Base(d) != run.ID || path.Dir(d) == d {
		return fmt.Errorf("its recorded run directory %q is not an absolute, clean <workdir>/%s", d, run.ID)
	}
	for _, o := range all {
		if o.ID == run.ID {
			continue
		}
		if od := path.Clean(o.RunDir); od == d || strings.HasPrefix(od, d+"/") {
			return fmt.Errorf("run %s's directory %s is inside it", o.ID, o.RunDir)
		}
	}
	return nil
}

// removeProgram removes run directories given on stdin, two lines each: the directory
// and its tomb name. It removes only a real directory (not a symlink) that holds the
// spec.yaml every staged run directory has (so a record pointing at some other folder
// named like a run removes nothing), by renaming it to its tomb and removing the tomb
// with rm -rf, which removes symlinks inside rather than following them. It prints one
// line per directory: "removed", "absent", or "refused <why>" / "failed <why>".
const removeProgram = `
while IFS= read -r dir && IFS= read -r tomb; do
	if [ -L "$dir" ]; then echo "refused it is a symbolic link"; continue; fi
	if [ -e "$dir" ]; then
		if [ ! -d "$dir" ]; then echo "refused it is not a directory"; continue; fi
		if [ -L "$dir/$1" ] || [ ! -f "$dir/$1" ]; then echo "refused it holds no $1, as every run directory does"; continue; fi
		if [ -L "$tomb" ] || { [ -e "$tomb" ] && [ ! -d "$tomb" ]; }; then echo "refused $tomb is in the way"; continue; fi
		if [ -d "$tomb" ] && ! err=$(rm -rf -- "$tomb" 2>&1); then echo "failed $err" | head -n 1; continue; fi
		if ! err=$(mv -- "$dir" "$tomb" 2>&1); then echo "failed $err" | head -n 1; continue; fi
	elif [ -L "$tomb" ] || [ ! -d "$tomb" ]; then
		echo absent; continue
	fi
	if ! err=$(rm -rf -- "$tomb" 2>&1); then echo "failed $err" | head -n 1; continue; fi
	echo removed
done`

// RemoveResult is what became of one run directory.
type RemoveResult struct {
	// Removed: the directory is gone (removed now, or absent already: Absent).
	Removed bool
	Absent  bool
	// Problem says why it was not removed.
	Problem string
}

// RemoveRunDirs removes the run directories of runs (all reached through t) with one
// command; each run must have passed CheckRemovable. The result is per run id.
func RemoveRunDirs(ctx context.Context, t transport.Transport, runs []registry.Run) (map[string]RemoveResult, error) {
	out := map[string]RemoveResult{}
	if len(runs) == 0 {
		return out, nil
	}
	var in strings.Builder
	for _, r := range runs {
		if strings.ContainsAny(r.RunDir, "\n\r") {
			return nil, fmt.Errorf("remove %s: its run directory holds a line break", r.ID)
		}
		fmt.Fprintf(&in, "%s\n%s\n", r.RunDir, tombOf(r.RunDir, r.ID))
	}
	res, err := t.Run(ctx, []string{"sh", "-c", removeProgram, "sh", experiment.SpecFile}, strings.NewReader(in.String()))
	if err != nil {
		return nil, fmt.Errorf("remove run directories: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(res.Stdout), "\n"), "\n")
	for i, r := range runs {
		if i >= len(lines) || res.Stdout == nil {
			out[r.ID] = RemoveResult{Problem: fmt.Sprintf("no answer from the cluster (exit %d: %s)", res.ExitCode, strings.TrimSpace(string(res.Stderr)))}
			continue
		}
		word, why, _ := strings.Cut(lines[i], " ")
		switch word {
		case "removed":
			out[r.ID] = RemoveResult{Removed: true}
		case "absent":
			out[r.ID] = RemoveResult{Removed: true, Absent: true}
		default:
			out[r.ID] = RemoveResult{Problem: why}
		}
	}
	return out, nil
}

// RemoveLocalResults removes <resultsDir>/<id> (fetched results) the same way: renamed
// to a tomb, then removed without following symlinks (a symlink at the folder's name is
// removed, not what it points to). removed is false when there was nothing.
func RemoveLocalResults(resultsDir, id string) (removed bool, err error) {
	if !runIDRe.MatchString(id) {
		return false, fmt.Errorf("run id %q is not one hpctl makes", id)
	}
	dir := filepath.Join(resultsDir, id)
	tomb := filepath.Join(resultsDir, "."+id+tombSuffix)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// A removal cut short earlier leaves its tomb.
		if _, terr := os.Lstat(tomb); terr == nil {
			return true, os.RemoveAll(tomb)
		}
		return false, nil
	case err != nil:
		return false, err
	case fi.Mode()&os.ModeSymlink != 0:
		return true, os.Remove(dir)
	}
	if err := os.RemoveAll(tomb); err != nil {
		return false, err
	}
	if err := os.Rename(dir, tomb); err != nil {
		return false, fmt.Errorf("remove %s: %w", dir, err)
	}
	if err := os.RemoveAll(tomb); err != nil {
		return true, fmt.Errorf("remove %s: %w", dir, err)
	}
	return true, nil
}

// LocalResultsDir is where fetch-results put a run's results, when they are there.
func LocalResultsDir(resultsDir, id string) (string, bool) {
	if !runIDRe.MatchString(id) {
		return "", false
	}
	dir := filepath.Join(resultsDir, id)
	_, err := os.Lstat(dir)
	return dir, err == nil
}
