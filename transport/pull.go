package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
)

// Names Pull keeps for itself inside the local directory. tempDirName holds files being
// copied (rsync --temp-dir, and the Go copy's temporary files): it is emptied at the
// start and removed at the end of every Pull, so nothing a killed Pull left there ever
// survives the next one. partialDirName is where rsync keeps a file it was interrupted in
// (SIGTERM, SIGINT), to resume it next time; rsync removes it once the file is complete.
const (
	tempDirName    = ".hpctl-partial"
	partialDirName = ".rsync-partial"
)

// pullFile is one regular file on the side Pull copies from.
type pullFile struct {
	Rel   string // slash-separated, relative to the pulled directory
	Size  int64
	MTime time.Time
	Mode  fs.FileMode
}

// pullSource is what Pull needs from the side it copies from. Each method is one
// command on the cluster (one ssh round trip), whatever the number of files.
type pullSource interface {
	// list returns every regular file under dir; a missing dir wraps errkind.ErrNotFound.
	list(ctx context.Context, dir string) ([]pullFile, error)
	// sums returns the SHA-256 (hex) of each of rels; files that vanished are absent.
	sums(ctx context.Context, dir string, rels []string) (map[string]string, error)
	// stream calls fn with the content of each of rels, in any order.
	stream(ctx context.Context, dir string, rels []string, fn func(rel string, r io.Reader) error) error
	// rsync returns the rsync source argument and remote shell for dir, or ok false when
	// rsync cannot be used (missing on either side, or disabled).
	rsync(ctx context.Context, dir string) (src, rsh string, ok bool)
	rsyncPath() string
}

// pull is Pull for every transport: list, copy what differs (rsync, else Go), then
// compare SHA-256 of every pulled file with the source's and copy again what differs.
func pull(ctx context.Context, src pullSource, remoteDir, localDir string, opts PullOptions) (PullStats, error) {
	var st PullStats
	local, err := filepath.Abs(localDir)
	if err != nil {
		return st, fmt.Errorf("pull: %w", err)
	}
	// Nothing is written through a link: rsync would follow one in place of the
	// destination, and a copy into it could land anywhere on this machine.
	if fi, err := os.Lstat(local); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return st, fmt.Errorf("pull: %w: %s is a symbolic link; hpctl does not write through links (remove it, or fetch somewhere else)", errkind.ErrUsage, local)
	}
	if err := os.MkdirAll(local, 0o755); err != nil {
		return st, fmt.Errorf("pull: %w", err)
	}
	tmp := filepath.Join(local, tempDirName)
	if err := os.RemoveAll(tmp); err != nil {
		return st, fmt.Errorf("pull: clearing %s: %w", tmp, err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return st, fmt.Errorf("pull: %w", err)
	}
	defer os.RemoveAll(tmp)

	all, err := src.list(ctx, remoteDir)
	if err != nil {
		return st, fmt.Errorf("pull %s: %w", remoteDir, err)
	}
	var files []pullFile
	for _, f := range all {
		if !ownName(f.Rel) && !Excluded(f.Rel, opts.Exclude) {
			files = append(files, f)
		}
	}
	var need []pullFile
	var total int64
	for _, f := range files {
		if !upToDate(local, f) {
			need = append(need, f)
			total += f.Size
		}
	}
	var tr transfer
	if len(need) > 0 {
		tr, err = copyFiles(ctx, src, remoteDir, local, need, total, opts, false)
		st.Files, st.Bytes, st.Rsync = tr.files, tr.bytes, tr.rsync
		if err != nil {
			return st, err
		}
	}

	// Verify: one command lists the source's checksums; every pulled file must match.
	bad, checked, err := verify(ctx, src, remoteDir, local, files)
	st.Checked = checked
	if err != nil {
		return st, err
	}
	if len(bad) > 0 {
		// A file can change between the copy and the listing (a running job rewrites
		// history.csv) or be damaged locally with size and time intact: copy those
		// again, whatever size and time say, and check once more.
		var redo []pullFile
		var redoTotal int64
		byRel := map[string]pullFile{}
		for _, f := range files {
			byRel[f.Rel] = f
		}
		for _, rel := range bad {
			redo = append(redo, byRel[rel])
			redoTotal += byRel[rel].Size
		}
		tr, err = copyFiles(ctx, src, remoteDir, local, redo, redoTotal, opts, true)
		st.Files += tr.files
		st.Bytes += tr.bytes
		if err != nil {
			return st, err
		}
		bad, _, err = verify(ctx, src, remoteDir, local, redo)
		if err != nil {
			return st, err
		}
		if len(bad) > 0 {
			return st, fmt.Errorf("pull %s: checksum mismatch after copying twice (is a job still writing them?): %s", remoteDir, strings.Join(bad, ", "))
		}
	}
	return st, nil
}

// ownName reports paths that are Pull's own bookkeeping, never copied.
func ownName(rel string) bool {
	for _, part := range strings.Split(rel, "/") {
		if part == tempDirName || part == partialDirName {
			return true
		}
	}
	return false
}

// Excluded reports whether rel matches one of the patterns, as PullOptions.Exclude
// documents.
func Excluded(rel string, patterns []string) bool {
	parts := strings.Split(rel, "/")
	for _, p := range patterns {
		p = strings.TrimPrefix(p, "/")
		dirOnly := strings.HasSuffix(p, "/")
		p = strings.TrimSuffix(p, "/")
		for i := 1; i <= len(parts); i++ {
			if i == len(parts) && dirOnly {
				break
			}
			if ok, _ := path.Match(p, strings.Join(parts[:i], "/")); ok {
				return true
			}
		}
	}
	return false
}

// upToDate is rsync's quick check: same size and same modification second. A link is
// never up to date: it is replaced by the file.
func upToDate(local string, f pullFile) bool {
	fi, err := os.Lstat(filepath.Join(local, filepath.FromSlash(f.Rel)))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == f.Size && fi.ModTime().Unix() == f.MTime.Unix()
}

type transfer struct {
	files int
	bytes int64
	rsync bool
}

func copyFiles(ctx context.Context, src pullSource, remoteDir, local string, files []pullFile, total int64, opts PullOptions, force bool) (transfer, error) {
	if s, rsh, ok := src.rsync(ctx, remoteDir); ok {
		tr, err := rsyncFiles(ctx, src.rsyncPath(), s, rsh, local, files, total, opts, force)
		tr.rsync = true
		return tr, err
	}
	return goCopy(ctx, src, remoteDir, local, files, total, opts)
}

// rsyncFiles copies exactly files (the list goes to rsync on stdin, so the exclusion
// rules are Pull's alone) with modification times kept, which is what makes the next
// Pull's quick check find nothing to do.
func rsyncFiles(ctx context.Context, rsync, src, rsh, local string, files []pullFile, total int64, opts PullOptions, force bool) (transfer, error) {
	var tr transfer
	args := []string{
		"--perms", "--times", "--files-from=-", "--from0",
		// Resumable partial files stay out of the final names, and temporary files live
		// in a directory Pull clears, so a kill -9 leaves nothing behind either.
		"--partial-dir=" + partialDirName,
		"--temp-dir=" + filepath.Join(local, tempDirName),
		"--out-format=HPCTL %i %b %n",
	}
	if rsh != "" {
		// -s: the remote path travels inside the protocol, never through the remote shell.
		args = append(args, "-s", "-e", rsh)
	}
	if opts.Progress != nil {
		args = append(args, "--info=progress2")
	}
	if opts.BWLimit > 0 {
		kib := opts.BWLimit / 1024
		if kib < 1 {
			kib = 1
		}
		args = append(args, "--bwlimit="+strconv.FormatInt(kib, 10))
	}
	if force {
		args = append(args, "--ignore-times")
	}
	args = append(args, "--", src, local+"/")
	cmd := exec.CommandContext(ctx, rsync, args...)
	var list bytes.Buffer
	for _, f := range files {
		list.WriteString(f.Rel)
		list.WriteByte(0)
	}
	cmd.Stdin = &list
	var errb bytes.Buffer
	cmd.Stderr = &errb
	// SIGTERM, not SIGKILL: rsync then moves the interrupted file into the partial dir
	// so that the next Pull resumes it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return tr, fmt.Errorf("rsync: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return tr, fmt.Errorf("rsync: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Split(scanCRLF)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "HPCTL "); ok {
			// "%i %b %n": itemized changes, bytes moved, name.
			f := strings.SplitN(rest, " ", 3)
			if len(f) == 3 && strings.HasPrefix(f[0], ">f") {
				tr.files++
				n, _ := strconv.ParseInt(f[1], 10, 64)
				tr.bytes += n
			}
			continue
		}
		if opts.Progress != nil {
			if done, ok := progress2(line); ok {
				if done > total {
					done = total
				}
				opts.Progress(done, total)
			}
		}
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return tr, fmt.Errorf("rsync interrupted: %w", ctx.Err())
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 24:
		// "Some files vanished": a running job removed them; verification decides.
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 255 && rsh != "":
		return tr, fmt.Errorf("rsync over ssh: %s: %w", lastLine(errb.Bytes()), errkind.ErrUnreachable)
	default:
		// Not an interruption, so nothing is worth resuming: a partial file (a disk that
		// filled up mid-file) must not stay behind.
		removePartials(local)
		return tr, fmt.Errorf("rsync failed (exit %s): %s", exitStatus(err), rsyncCause(errb.Bytes()))
	}
	if opts.Progress != nil {
		opts.Progress(total, total)
	}
	return tr, nil
}

// scanCRLF splits rsync's output at \n and at the \r that progress lines end with.
func scanCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// progress2 reads the byte count of an --info=progress2 line ("  1,234,567  45% ...").
func progress2(line string) (int64, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasSuffix(f[1], "%") {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(f[0], ",", ""), 10, 64)
	return n, err == nil
}

// goCopy is Pull without rsync: each file is written to a temporary file in Pull's own
// directory, synced, given the source's mode and time, and renamed into place.
func goCopy(ctx context.Context, src pullSource, remoteDir, local string, files []pullFile, total int64, opts PullOptions) (transfer, error) {
	var tr transfer
	byRel := make(map[string]pullFile, len(files))
	rels := make([]string, len(files))
	for i, f := range files {
		byRel[f.Rel] = f
		rels[i] = f.Rel
	}
	tmpDir := filepath.Join(local, tempDirName)
	start := time.Now()
	var done int64
	err := src.stream(ctx, remoteDir, rels, func(rel string, r io.Reader) error {
		f, ok := byRel[rel]
		if !ok {
			return fmt.Errorf("pull: unexpected file %q from the source", rel)
		}
		dst := filepath.Join(local, filepath.FromSlash(rel))
		tmp, err := os.CreateTemp(tmpDir, "pull-*")
		if err != nil {
			return fmt.Errorf("pull %s: %w", rel, err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		buf := make([]byte, 256<<10)
		for {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("pull interrupted: %w", err)
			}
			n, rerr := r.Read(buf)
			if n > 0 {
				if _, err := tmp.Write(buf[:n]); err != nil {
					return fmt.Errorf("pull %s: %w", rel, err)
				}
				done += int64(n)
				tr.bytes += int64(n)
				if opts.Progress != nil {
					opts.Progress(min(done, total), total)
				}
				throttle(ctx, start, done, opts.BWLimit)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return fmt.Errorf("pull %s: %w", rel, rerr)
			}
		}
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("pull %s: %w", rel, err)
		}
		if err := tmp.Chmod(f.Mode.Perm() | 0o200); err != nil {
			return fmt.Errorf("pull %s: %w", rel, err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("pull %s: %w", rel, err)
		}
		if err := os.Chtimes(tmp.Name(), f.MTime, f.MTime); err != nil {
			return fmt.Errorf("pull %s: %w", rel, err)
		}
		if err := realDirs(local, path.Dir(rel)); err != nil {
			return fmt.Errorf("pull %s: %w", rel, err)
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return fmt.Errorf("pull %s: %w", rel, err)
		}
		tr.files++
		return nil
	})
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("pull interrupted: %w (%v)", ctx.Err(), err)
	}
	return tr, err
}

// realDirs makes every directory of rel (slash-separated, under root) a real directory,
// as rsync does: a symbolic link found on the way is replaced by a directory, so what is
// copied stays under root.
func realDirs(root, rel string) error {
	p := root
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			if err := os.Remove(p); err != nil {
				return err
			}
		case fi.IsDir():
			continue
		}
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// throttle sleeps as long as the copy runs ahead of limit bytes per second.
func throttle(ctx context.Context, start time.Time, done, limit int64) {
	if limit <= 0 {
		return
	}
	ahead := time.Duration(float64(done)/float64(limit)*float64(time.Second)) - time.Since(start)
	if ahead <= 0 {
		return
	}
	t := time.NewTimer(ahead)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// verify compares the source's SHA-256 of files with the local copies' and returns the
// paths that differ or are missing locally. Files that vanished at the source (a running
// job removed them) are not held against the copy.
func verify(ctx context.Context, src pullSource, remoteDir, local string, files []pullFile) (bad []string, checked int, err error) {
	if len(files) == 0 {
		return nil, 0, nil
	}
	rels := make([]string, len(files))
	for i, f := range files {
		rels[i] = f.Rel
	}
	want, err := src.sums(ctx, remoteDir, rels)
	if err != nil {
		return nil, 0, fmt.Errorf("pull %s: checksums: %w", remoteDir, err)
	}
	got, err := localSums(ctx, local, rels)
	if err != nil {
		return nil, 0, err
	}
	for _, rel := range rels {
		w, ok := want[rel]
		if !ok {
			continue
		}
		checked++
		if got[rel] != w {
			bad = append(bad, rel)
		}
	}
	sort.Strings(bad)
	return bad, checked, nil
}

// localSums hashes files under dir, two at a time (disks, not CPUs, bound this). A
// missing file has no entry.
func localSums(ctx context.Context, dir string, rels []string) (map[string]string, error) {
	out := make(map[string]string, len(rels))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, rel := range rels {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sum, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(rel)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil && firstErr == nil:
				firstErr = err
			case err == nil:
				out[rel] = sum
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, firstErr
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseSums reads `sha256sum` output: "<hex>  <name>", where a name holding a backslash
// or newline is escaped and its line starts with a backslash.
func parseSums(out []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		escaped := strings.HasPrefix(line, `\`)
		if escaped {
			line = line[1:]
		}
		if len(line) < 66 || line[64] != ' ' {
			continue
		}
		name := line[66:]
		if escaped {
			name = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r").Replace(name)
		}
		m[name] = line[:64]
	}
	return m
}

// rsyncCause is what rsync said went wrong: its "rsync:" lines name the cause ("write
// failed on ...: No space left on device (28)"), while its last line only names the class
// ("error in file IO (code 11)").
func rsyncCause(stderr []byte) string {
	var causes []string
	seen := map[string]bool{}
	for _, l := range strings.Split(string(stderr), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || seen[l] || !strings.HasPrefix(l, "rsync") {
			continue
		}
		seen[l] = true
		causes = append(causes, l)
		if len(causes) == 4 {
			break
		}
	}
	if len(causes) == 0 {
		return lastLine(stderr)
	}
	return strings.Join(causes, "; ")
}

func exitStatus(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return strconv.Itoa(exitErr.ExitCode())
	}
	return err.Error()
}

// removePartials deletes rsync's partial directories under local.
func removePartials(local string) {
	_ = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == partialDirName {
			_ = os.RemoveAll(p)
			return filepath.SkipDir
		}
		return nil
	})
}
