package transport

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/internal/shell"
)

// SSHOptions tune the SSH transport. The zero value is what users get: the system ssh
// with their own ~/.ssh/config, and one multiplexed master connection kept for 10
// minutes after the last use.
type SSHOptions struct {
	// ConfigFile is passed as `ssh -F`; empty uses ssh's defaults (~/.ssh/config).
	ConfigFile string
	// ControlDir holds the master connection's socket. Empty: $XDG_RUNTIME_DIR/hpctl, else
	// /tmp/hpctl-<uid>. It is created with mode 700 and must belong to the user, because
	// whoever can open the socket can run commands as the user on the cluster.
	ControlDir string
	// ControlPersist is how long the master outlives its last client; 0 means 10m. It is
	// what lets submit, status and fetch-results, separate processes, share one login.
	ControlPersist time.Duration
	// KeepMaster makes Close leave the master running until ControlPersist expires, so
	// the next hpctl command does not authenticate again (two-factor logins). When false,
	// Close ends the master with `ssh -O exit`.
	KeepMaster bool
	// ExtraArgs are more ssh options (for example "-o", "ConnectTimeout=10").
	ExtraArgs []string
	// SSHPath and RsyncPath name the programs; empty means "ssh" and "rsync" from PATH.
	SSHPath   string
	RsyncPath string
	// NoRsync makes Pull use its pure-Go copy even where rsync exists (tests, and sites
	// whose rsync misbehaves).
	NoRsync bool
	// Stderr, when set, receives ssh's own diagnostics of the master's login as they
	// happen; prompts for passwords and second factors go to the terminal regardless.
	Stderr io.Writer
}

// SSH reaches the cluster through the system's ssh client, so that ~/.ssh/config,
// ProxyJump, keys and agents work as they do for the user. Every command goes through one
// master connection (ControlMaster), so a user who authenticated once is not asked again.
type SSH struct {
	host string
	opts SSHOptions

	mu         sync.Mutex
	controlErr error
	control    string // the master's socket path
	masterUp   bool
	home, wd   string
	rsyncOK    *bool
}

// SSH exit status for its own failures (connection, authentication), as opposed to the
// remote command's.
const sshFailure = 255

// Remote exit codes our own scripts use to say "not found" and "already exists"; chosen
// away from the codes of cat, tar and the shell.
const (
	exitRemoteNotFound = 66
	exitRemoteExists   = 67
)

// NewSSH returns a transport to host: an ssh destination ([user@]host or a Host alias of
// the user's ssh config). Nothing connects until the first call.
func NewSSH(host string, opts SSHOptions) *SSH {
	if opts.ControlPersist <= 0 {
		opts.ControlPersist = 10 * time.Minute
	}
	if opts.SSHPath == "" {
		opts.SSHPath = "ssh"
	}
	if opts.RsyncPath == "" {
		opts.RsyncPath = "rsync"
	}
	return &SSH{host: host, opts: opts}
}

// Name implements Transport.
func (s *SSH) Name() string { return "ssh:" + s.host }

// Host is the ssh destination.
func (s *SSH) Host() string { return s.host }

// ControlPath is the master connection's socket, creating its directory if needed.
func (s *SSH) ControlPath() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.controlPathLocked()
}

func (s *SSH) controlPathLocked() (string, error) {
	if s.control != "" || s.controlErr != nil {
		return s.control, s.controlErr
	}
	if strings.HasPrefix(s.host, "-") || s.host == "" {
		s.controlErr = fmt.Errorf("ssh: %q is not a host name", s.host)
		return "", s.controlErr
	}
	dir := s.opts.ControlDir
	if dir == "" {
		dir = DefaultControlDir()
	}
	if err := ensurePrivateDir(dir); err != nil {
		s.controlErr = err
		return "", err
	}
	// Socket paths are limited to about 104 bytes (sun_path), and ssh first binds a
	// temporary name 17 bytes longer before renaming it; hashing the destination (and
	// the config that resolves it) keeps the name short whatever the host is called.
	sum := sha256.Sum256([]byte(s.opts.ConfigFile + "\x00" + s.host))
	p := path.Join(dir, "cm-"+hex.EncodeToString(sum[:8]))
	if len(p)+17 >= 104 {
		s.controlErr = fmt.Errorf("ssh: control-dir %s is too long for a socket path (%d bytes; keep it under 80)", dir, len(dir))
		return "", s.controlErr
	}
	s.control = p
	return p, nil
}

// DefaultControlDir is where master sockets live unless settings name control-dir.
func DefaultControlDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return path.Join(d, "hpctl")
	}
	return fmt.Sprintf("/tmp/hpctl-%d", os.Getuid())
}

// ensurePrivateDir creates dir with mode 700 and refuses one that someone else owns or
// can enter: the socket in it gives a logged-in shell on the cluster.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ssh control dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("ssh control dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("ssh control dir %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("ssh control dir %s belongs to uid %d, not to you (uid %d); set control-dir to a directory of your own", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("ssh control dir: %w", err)
		}
	}
	return nil
}

// sshArgs are the options every ssh invocation shares: the user's config, then the
// multiplexing options that make it use (or become) the one master.
func (s *SSH) sshArgs() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sshArgsLocked()
}

func (s *SSH) sshArgsLocked() ([]string, error) {
	cp, err := s.controlPathLocked()
	if err != nil {
		return nil, err
	}
	var a []string
	if s.opts.ConfigFile != "" {
		a = append(a, "-F", s.opts.ConfigFile)
	}
	a = append(a,
		"-o", "ControlMaster=auto",
		"-o", "ControlPath="+cp,
		"-o", "ControlPersist="+strconv.Itoa(int(s.opts.ControlPersist/time.Second)),
	)
	a = append(a, s.opts.ExtraArgs...)
	return a, nil
}

// ensureMaster makes sure the master connection exists before anything else uses it, so
// that concurrent first calls do not each open a connection, and so that a login that
// fails is reported once, clearly. A master left by an earlier hpctl process is reused.
func (s *SSH) ensureMaster(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.masterUp {
		return nil
	}
	base, err := s.sshArgsLocked()
	if err != nil {
		return err
	}
	// `ssh -O check` talks to the socket only: no connection, no login.
	check := exec.CommandContext(ctx, s.opts.SSHPath, append(append([]string{}, base...), "-O", "check", "--", s.host)...)
	if check.Run() == nil {
		s.masterUp = true
		return nil
	}
	// The first client becomes the master (ControlMaster=auto) and, with ControlPersist,
	// forks it into the background with its standard streams on /dev/null.
	var errb bytes.Buffer
	var stderr io.Writer = &errb
	if s.opts.Stderr != nil {
		stderr = io.MultiWriter(&errb, s.opts.Stderr)
	}
	cmd := exec.CommandContext(ctx, s.opts.SSHPath, append(append([]string{}, base...), "-T", "--", s.host, "true")...)
	cmd.Stderr = stderr
	// The forked master must not keep Wait waiting on our pipes if ssh ever left one open.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return s.unreachable(err, errb.Bytes())
	}
	s.masterUp = true
	return nil
}

func (s *SSH) unreachable(err error, stderr []byte) error {
	msg := lastLine(stderr)
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("ssh %s: %s (check that `ssh %s` works from this machine): %w", s.host, msg, s.host, errkind.ErrUnreachable)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// remote runs one command line on the cluster through the master. stdout, when not nil,
// receives the output as it comes instead of Result.Stdout.
func (s *SSH) remote(ctx context.Context, command string, stdin io.Reader, stdout io.Writer) (Result, error) {
	if err := s.ensureMaster(ctx); err != nil {
		return Result{}, err
	}
	base, err := s.sshArgs()
	if err != nil {
		return Result{}, err
	}
	// One argument after the destination: ssh would join several with spaces anyway, and
	// the quoting in command is what the remote shell must see.
	args := append(append([]string{}, base...), "-T", "--", s.host, command)
	cmd := exec.CommandContext(ctx, s.opts.SSHPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("ssh %s: %w", s.host, ctx.Err())
	case errors.As(err, &exitErr) && exitErr.ExitCode() == sshFailure:
		// 255 is ssh's own failure; a remote command exiting 255 reads the same, which
		// no command hpctl runs does on purpose.
		s.mu.Lock()
		s.masterUp = false
		s.mu.Unlock()
		return res, s.unreachable(err, res.Stderr)
	case errors.As(err, &exitErr) && exitErr.ExitCode() >= 0:
		res.ExitCode = exitErr.ExitCode()
		return res, nil
	case errors.Is(err, exec.ErrNotFound):
		return res, fmt.Errorf("ssh client %q: %w: %w", s.opts.SSHPath, errkind.ErrUnreachable, err)
	}
	return res, fmt.Errorf("ssh %s: %w", s.host, err)
}

// Run implements Transport. argv is quoted word by word with POSIX single quotes, so the
// remote login shell runs exactly argv whatever the words hold.
func (s *SSH) Run(ctx context.Context, argv []string, stdin io.Reader) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	return s.remote(ctx, shell.Join(argv), stdin, nil)
}

// script runs a POSIX sh script remotely with positional arguments, all quoted.
func (s *SSH) script(ctx context.Context, script string, args []string, stdin io.Reader, stdout io.Writer) (Result, error) {
	argv := append([]string{"sh", "-c", script, "sh"}, args...)
	return s.remote(ctx, shell.Join(argv), stdin, stdout)
}

func (s *SSH) whereabouts(ctx context.Context) error {
	s.mu.Lock()
	done := s.home != ""
	s.mu.Unlock()
	if done {
		return nil
	}
	res, err := s.script(ctx, `printf '%s\n' "$HOME"; pwd`, nil, nil, nil)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(res.Stdout), "\n"), "\n")
	if res.ExitCode != 0 || len(lines) != 2 || lines[0] == "" {
		return fmt.Errorf("ssh %s: cannot read $HOME and the login directory: exit %d: %s", s.host, res.ExitCode, lastLine(res.Stderr))
	}
	s.mu.Lock()
	s.home, s.wd = lines[0], lines[1]
	s.mu.Unlock()
	return nil
}

// Home implements Transport.
func (s *SSH) Home(ctx context.Context) (string, error) {
	if err := s.whereabouts(ctx); err != nil {
		return "", err
	}
	return s.home, nil
}

// Getwd implements Transport: the login directory.
func (s *SSH) Getwd(ctx context.Context) (string, error) {
	if err := s.whereabouts(ctx); err != nil {
		return "", err
	}
	return s.wd, nil
}

// ReadFile implements Transport.
func (s *SSH) ReadFile(ctx context.Context, p string) ([]byte, error) {
	res, err := s.script(ctx, `[ -e "$1" ] || exit `+strconv.Itoa(exitRemoteNotFound)+`; exec cat -- "$1"`, []string{p}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	switch res.ExitCode {
	case 0:
		return res.Stdout, nil
	case exitRemoteNotFound:
		return nil, fmt.Errorf("read %s on %s: %w", p, s.host, errkind.ErrNotFound)
	}
	return nil, fmt.Errorf("read %s on %s: exit %d: %s", p, s.host, res.ExitCode, lastLine(res.Stderr))
}

// stageScript unpacks a tar stream from stdin into a temporary sibling of $1 and renames
// it to $1 only when every file is there; on any failure the trap removes the temporary
// directory, so $1 never exists half-written. tar takes an archive cut at a block
// boundary (a dropped connection) as complete, so the stream ends with a marker file
// that must be there. mv -T renames onto the path itself (never into a directory that
// appeared meanwhile).
// Exit 67 is exitRemoteExists.
const stageScript = `set -e
d=$1
p=$(dirname -- "$d")
[ ! -e "$d" ] || { echo "$d already exists" >&2; exit 67; }
mkdir -p -- "$p"
t=$(mktemp -d "$p/.$(basename -- "$d").staging-XXXXXX")
trap 'rm -rf -- "$t"' EXIT
tar -x --no-same-owner -f - -C "$t"
[ -f "$t/.hpctl-stage-complete" ] || { echo "the file stream ended early" >&2; exit 1; }
rm -f -- "$t/.hpctl-stage-complete"
chmod 755 "$t"
[ ! -e "$d" ] || { echo "$d already exists" >&2; exit 67; }
mv -T -- "$t" "$d"
`

// Stage implements Transport: one tar stream over one ssh command, rather than one
// command per file.
func (s *SSH) Stage(ctx context.Context, dir string, files []File) error {
	if !path.IsAbs(dir) {
		return fmt.Errorf("stage: %s is not an absolute path", dir)
	}
	for _, f := range files {
		if err := checkRel(f.Path); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
	}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := writeTar(pw, append(files, File{Path: ".hpctl-stage-complete", Mode: 0o600}))
		pw.CloseWithError(err)
		werr <- err
	}()
	res, err := s.script(ctx, stageScript, []string{dir}, pr, nil)
	pr.Close()
	if e := <-werr; e != nil && !errors.Is(e, io.ErrClosedPipe) {
		return fmt.Errorf("stage %s: %w", dir, e)
	}
	if err != nil {
		return fmt.Errorf("stage %s: %w", dir, err)
	}
	switch res.ExitCode {
	case 0:
		return nil
	case exitRemoteExists:
		return fmt.Errorf("stage: %s already exists", dir)
	}
	return fmt.Errorf("stage %s on %s: exit %d: %s", dir, s.host, res.ExitCode, lastLine(res.Stderr))
}

// checkRel refuses paths that would land outside the staged directory.
func checkRel(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("file path %q is not a clean relative path", p)
	}
	return nil
}

// writeTar writes files as a tar archive, with their parent directories first.
func writeTar(w io.Writer, files []File) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.Path); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755, ModTime: now}); err != nil {
				return err
			}
		}
		mode := f.Mode.Perm()
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: int64(mode), Size: int64(len(f.Data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// Close implements Transport: ends the master unless KeepMaster asks to leave it to
// ControlPersist.
func (s *SSH) Close() error {
	s.mu.Lock()
	up := s.masterUp
	s.masterUp = false
	s.mu.Unlock()
	if s.opts.KeepMaster || !up {
		return nil
	}
	base, err := s.sshArgs()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.opts.SSHPath, append(base, "-O", "exit", "--", s.host)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil && !strings.Contains(errb.String(), "No such file") {
		return fmt.Errorf("ssh -O exit %s: %s: %w", s.host, lastLine(errb.Bytes()), err)
	}
	return nil
}
