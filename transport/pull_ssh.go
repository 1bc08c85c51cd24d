package transport

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
)

// Pull implements Transport: rsync over the master connection when rsync exists on both
// sides, else one tar stream over it; then one sha256sum command checks every file.
func (s *SSH) Pull(ctx context.Context, remoteDir, localDir string, opts PullOptions) (PullStats, error) {
	if err := s.ensureMaster(ctx); err != nil {
		return PullStats{}, fmt.Errorf("pull %s: %w", remoteDir, err)
	}
	return pull(ctx, sshSource{s}, remoteDir, localDir, opts)
}

type sshSource struct{ s *SSH }

func (src sshSource) rsyncPath() string { return src.s.opts.RsyncPath }

// rsync returns "host:dir/" and an -e command carrying the same multiplexing options,
// so rsync's ssh rides the master instead of logging in again.
func (src sshSource) rsync(ctx context.Context, dir string) (string, string, bool) {
	s := src.s
	if s.opts.NoRsync {
		return "", "", false
	}
	if _, err := exec.LookPath(s.opts.RsyncPath); err != nil {
		return "", "", false
	}
	s.mu.Lock()
	known := s.rsyncOK
	s.mu.Unlock()
	if known == nil {
		res, err := s.script(ctx, `command -v rsync >/dev/null 2>&1`, nil, nil, nil)
		ok := err == nil && res.ExitCode == 0
		s.mu.Lock()
		s.rsyncOK = &ok
		known = &ok
		s.mu.Unlock()
	}
	if !*known {
		return "", "", false
	}
	base, err := s.sshArgs()
	if err != nil {
		return "", "", false
	}
	words := append([]string{s.opts.SSHPath}, base...)
	for i, w := range words {
		words[i] = rsyncQuote(w)
	}
	return s.host + ":" + dir + "/", strings.Join(words, " "), true
}

// rsyncQuote quotes a word for rsync's own splitting of -e, which knows quotes (a doubled
// quote inside quotes is a literal one) but not backslashes.
func rsyncQuote(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t'\"") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", "''") + "'"
}

// listScript prints "size mtime mode path\0" for every regular file (GNU find).
const listScript = `cd -- "$1" 2>/dev/null || exit 66
exec find . -type f -printf '%s %T@ %m %P\0'`

func (src sshSource) list(ctx context.Context, dir string) ([]pullFile, error) {
	res, err := src.s.script(ctx, listScript, []string{dir}, nil, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case res.ExitCode == exitRemoteNotFound:
		return nil, fmt.Errorf("%s on %s: %w", dir, src.s.host, errkind.ErrNotFound)
	case res.ExitCode != 0 && !bytes.Contains(res.Stderr, []byte("No such file")):
		// find also fails on a file removed during the walk; only other errors count.
		return nil, fmt.Errorf("listing %s on %s: exit %d: %s", dir, src.s.host, res.ExitCode, lastLine(res.Stderr))
	}
	var out []pullFile
	for _, rec := range bytes.Split(res.Stdout, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		f := strings.SplitN(string(rec), " ", 4)
		if len(f) != 4 {
			return nil, fmt.Errorf("listing %s on %s: unexpected line %q (is find GNU find?)", dir, src.s.host, rec)
		}
		size, err1 := strconv.ParseInt(f[0], 10, 64)
		mtime, err2 := parseEpoch(f[1])
		mode, err3 := strconv.ParseUint(f[2], 8, 32)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("listing %s on %s: %q: %w", dir, src.s.host, rec, err)
		}
		out = append(out, pullFile{Rel: f[3], Size: size, MTime: mtime, Mode: fs.FileMode(mode)})
	}
	return out, nil
}

// parseEpoch reads find's %T@ ("1764395000.1234567890") without float rounding.
func parseEpoch(s string) (time.Time, error) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var nsec int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if nsec, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(sec, nsec), nil
}

// sumsScript hashes the NUL-separated paths on stdin; files that vanished only make
// sha256sum complain.
const sumsScript = `cd -- "$1" || exit 66
xargs -0 -r sha256sum --`

func (src sshSource) sums(ctx context.Context, dir string, rels []string) (map[string]string, error) {
	res, err := src.s.script(ctx, sumsScript, []string{dir}, nulList(rels), nil)
	if err != nil {
		return nil, err
	}
	m := parseSums(res.Stdout)
	if res.ExitCode != 0 && len(m) == 0 && len(rels) > 0 {
		return nil, fmt.Errorf("sha256sum in %s on %s: exit %d: %s", dir, src.s.host, res.ExitCode, lastLine(res.Stderr))
	}
	return m, nil
}

// streamScript writes one tar of the NUL-separated paths on stdin (GNU tar).
const streamScript = `cd -- "$1" || exit 66
exec tar -c -f - --null --no-recursion --ignore-failed-read -T -`

func (src sshSource) stream(ctx context.Context, dir string, rels []string, fn func(string, io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type result struct {
		res Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := src.s.script(ctx, streamScript, []string{dir}, nulList(rels), pw)
		pw.Close()
		done <- result{res, err}
	}()
	tr := tar.NewReader(pr)
	var ferr error
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			ferr = fmt.Errorf("pull: reading the tar stream from %s: %w", src.s.host, err)
			break
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if ferr = fn(hdr.Name, tr); ferr != nil {
			break
		}
	}
	if ferr != nil {
		cancel()
		pr.CloseWithError(io.ErrClosedPipe) // let the ssh side finish if we stopped reading
	} else {
		_, _ = io.Copy(io.Discard, pr) // tar pads its archive past the end marker
	}
	r := <-done
	if ferr != nil {
		return ferr
	}
	if r.err != nil {
		return fmt.Errorf("pull: %w", r.err)
	}
	if r.res.ExitCode != 0 && r.res.ExitCode != 1 { // 1: some file vanished (--ignore-failed-read)
		return fmt.Errorf("pull: tar on %s: exit %d: %s", src.s.host, r.res.ExitCode, lastLine(r.res.Stderr))
	}
	return nil
}

func nulList(rels []string) io.Reader {
	var b bytes.Buffer
	for _, r := range rels {
		b.WriteString(r)
		b.WriteByte(0)
	}
	return &b
}
