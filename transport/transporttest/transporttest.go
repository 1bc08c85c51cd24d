// Package transporttest is the contract every transport.Transport must pass, run against
// the real thing (a local directory, a real sshd): commands with hostile arguments, exit
// codes, missing files, atomic staging, and incremental, resumable, verified pulls.
package transporttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
	"github.com/hpctl/hpctl/transport"
)

// HostileWords are arguments that break naive quoting: shell syntax, quotes, expansions,
// whitespace, control characters and option look-alikes. A transport must pass each as
// exactly one argument.
var HostileWords = []string{
	"", " ", "a b", "  two  spaces ", "'", `"`, `'"'"'`, "a'b\"c", `\`, `\\'`, "$HOME", "${HOME}",
	"$(echo pwned)", "`echo pwned`", "$((1+1))", "*", "?", "[a]", "~", "~root", ";", "&&", "||",
	"|", "&", ">out", "<in", "2>&1", "--", "-n", "-e", "--help", "!", "!!", "#comment",
	"%s", "%n", "a\nb", "\n", "\t", "a\tb", "\r", "{a,b}", "é ü 中文", "\x01\x7f", "=x", "X=1",
	"if", "then", "time", "{", "}", "$IFS", "a=$(id)", "\\n",
}

// Run runs the contract against transports made by newT; the suite closes each.
func Run(t *testing.T, newT func(t *testing.T) transport.Transport) {
	t.Run("RunHostileArgv", func(t *testing.T) { testHostileArgv(t, open(t, newT)) })
	t.Run("RunExitCodesAndStreams", func(t *testing.T) { testExitCodes(t, open(t, newT)) })
	t.Run("HomeAndGetwd", func(t *testing.T) { testWhereabouts(t, open(t, newT)) })
	t.Run("ReadFileMissing", func(t *testing.T) { testReadFileMissing(t, open(t, newT)) })
	t.Run("Stage", func(t *testing.T) { testStage(t, open(t, newT)) })
	t.Run("StageRefusesExisting", func(t *testing.T) { testStageExisting(t, open(t, newT)) })
	t.Run("StageFailureLeavesNothing", func(t *testing.T) { testStageFailure(t, open(t, newT)) })
	t.Run("PullIncremental", func(t *testing.T) { testPullIncremental(t, open(t, newT)) })
	t.Run("PullMissingDir", func(t *testing.T) { testPullMissing(t, open(t, newT)) })
	t.Run("PullInterruptedThenRerun", func(t *testing.T) { testPullInterrupted(t, open(t, newT)) })
}

func open(t *testing.T, newT func(t *testing.T) transport.Transport) transport.Transport {
	t.Helper()
	tr := newT(t)
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Scratch makes an empty directory on the cluster side through the transport itself
// and removes it when the test ends.
func Scratch(t *testing.T, tr transport.Transport) string {
	t.Helper()
	res, err := tr.Run(ctx(t), []string{"mktemp", "-d", "/tmp/hpctl-transporttest-XXXXXX"}, nil)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("mktemp -d: %v %s", err, res.Stderr)
	}
	dir := strings.TrimSpace(string(res.Stdout))
	t.Cleanup(func() {
		_, _ = tr.Run(context.Background(), []string{"rm", "-rf", "--", dir}, nil)
	})
	return dir
}

func mustRun(t *testing.T, tr transport.Transport, argv ...string) transport.Result {
	t.Helper()
	res, err := tr.Run(ctx(t), argv, nil)
	if err != nil {
		t.Fatalf("Run %q: %v", argv, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("Run %q: exit %d: %s", argv, res.ExitCode, res.Stderr)
	}
	return res
}

func testHostileArgv(t *testing.T, tr transport.Transport) {
	res := mustRun(t, tr, append([]string{"printf", `%s\0`}, HostileWords...)...)
	got := strings.Split(string(res.Stdout), "\x00")
	got = got[:len(got)-1]
	if len(got) != len(HostileWords) {
		t.Fatalf("printf got %d words, want %d: %q", len(got), len(HostileWords), got)
	}
	for i := range got {
		if got[i] != HostileWords[i] {
			t.Errorf("word %d: got %q, want %q", i, got[i], HostileWords[i])
		}
	}
	// Each word as a file name: nothing expands, nothing runs.
	dir := Scratch(t, tr)
	marker := path.Join(dir, "pwned")
	for _, w := range []string{"$(touch " + marker + ")", "`touch " + marker + "`", "; touch " + marker, "' ; touch " + marker + " ; '"} {
		res := mustRun(t, tr, "sh", "-c", `printf '%s' "$1"`, "sh", w)
		if string(res.Stdout) != w {
			t.Errorf("sh -c with %q printed %q", w, res.Stdout)
		}
	}
	if res, err := tr.Run(ctx(t), []string{"test", "-e", marker}, nil); err != nil || res.ExitCode == 0 {
		t.Fatalf("a hostile word ran a command (%s exists) or test failed: %v", marker, err)
	}
}

func testExitCodes(t *testing.T, tr transport.Transport) {
	for _, code := range []int{0, 1, 2, 3, 42, 127} {
		res, err := tr.Run(ctx(t), []string{"sh", "-c", "echo out; echo err >&2; exit \"$1\"", "sh", strconv.Itoa(code)}, nil)
		if err != nil {
			t.Fatalf("exit %d: err %v (a command that ran must not be an error)", code, err)
		}
		if res.ExitCode != code || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" {
			t.Errorf("exit %d: got code %d stdout %q stderr %q", code, res.ExitCode, res.Stdout, res.Stderr)
		}
	}
	res, err := tr.Run(ctx(t), []string{"cat"}, strings.NewReader("hello\x00world\n"))
	if err != nil || string(res.Stdout) != "hello\x00world\n" {
		t.Errorf("stdin: got %q, %v", res.Stdout, err)
	}
	// A command that does not exist: an error, or the shell's 127; never success.
	res, err = tr.Run(ctx(t), []string{"hpctl-no-such-command-7f3a"}, nil)
	if err == nil && res.ExitCode == 0 {
		t.Errorf("missing command succeeded")
	}
	if _, err := tr.Run(ctx(t), nil, nil); err == nil {
		t.Errorf("empty argv: no error")
	}
}

func testWhereabouts(t *testing.T, tr transport.Transport) {
	home, err := tr.Home(ctx(t))
	if err != nil || !path.IsAbs(home) {
		t.Errorf("Home: %q, %v", home, err)
	}
	wd, err := tr.Getwd(ctx(t))
	if err != nil || !path.IsAbs(wd) {
		t.Errorf("Getwd: %q, %v", wd, err)
	}
}

func testReadFileMissing(t *testing.T, tr transport.Transport) {
	dir := Scratch(t, tr)
	_, err := tr.ReadFile(ctx(t), path.Join(dir, "no such file"))
	if !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("ReadFile of a missing file: %v, want errkind.ErrNotFound", err)
	}
	_, err = tr.ReadFile(ctx(t), path.Join(dir, "no-dir", "x"))
	if !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("ReadFile in a missing directory: %v, want errkind.ErrNotFound", err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func testStage(t *testing.T, tr transport.Transport) {
	dir := path.Join(Scratch(t, tr), "deep", "run $(x) 'q'")
	files := []transport.File{
		{Path: "spec.yaml", Data: []byte("name: x\n")},
		{Path: "stages/frozen/job.sh", Data: []byte("#!/bin/sh\necho hi\n"), Mode: 0o755},
		{Path: "trainer/hpctl_trainer/__init__.py", Data: []byte("")},
		{Path: "bin/data", Data: randomBytes(t, 100_000)},
		{Path: "odd name ' \" $x", Data: []byte("odd")},
	}
	if err := tr.Stage(ctx(t), dir, files); err != nil {
		t.Fatalf("Stage: %v", err)
	}
	for _, f := range files {
		got, err := tr.ReadFile(ctx(t), path.Join(dir, f.Path))
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("ReadFile %s after Stage: %d bytes, %v; want %d bytes", f.Path, len(got), err, len(f.Data))
		}
	}
	mustRun(t, tr, "test", "-x", path.Join(dir, "stages/frozen/job.sh"))
	// The staging directory is gone: the parent holds only dir.
	res := mustRun(t, tr, "ls", "-A", path.Dir(dir))
	if got := strings.TrimSpace(string(res.Stdout)); got != path.Base(dir) {
		t.Errorf("parent after Stage holds %q, want only %q", got, path.Base(dir))
	}
}

func testStageExisting(t *testing.T, tr transport.Transport) {
	dir := path.Join(Scratch(t, tr), "run")
	if err := tr.Stage(ctx(t), dir, []transport.File{{Path: "a", Data: []byte("first")}}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Stage(ctx(t), dir, []transport.File{{Path: "a", Data: []byte("second")}}); err == nil {
		t.Fatal("Stage over an existing directory succeeded")
	}
	got, err := tr.ReadFile(ctx(t), path.Join(dir, "a"))
	if err != nil || string(got) != "first" {
		t.Fatalf("existing run directory changed: %q, %v", got, err)
	}
	res := mustRun(t, tr, "ls", "-A", path.Dir(dir))
	if got := strings.TrimSpace(string(res.Stdout)); got != "run" {
		t.Errorf("parent after refused Stage holds %q, want only run", got)
	}
}

func testStageFailure(t *testing.T, tr transport.Transport) {
	parent := Scratch(t, tr)
	dir := path.Join(parent, "run")
	// No file system takes a NUL in a name: the stage fails part-way, after "first".
	err := tr.Stage(ctx(t), dir, []transport.File{
		{Path: "first", Data: randomBytes(t, 200_000)},
		{Path: "bad\x00name", Data: []byte("x")},
	})
	if err == nil {
		t.Fatal("Stage of a file named with a NUL succeeded")
	}
	res := mustRun(t, tr, "ls", "-A", parent)
	if got := strings.TrimSpace(string(res.Stdout)); got != "" {
		t.Errorf("failed Stage left %q in the parent; want nothing", got)
	}
}

// tree is a small run directory: what Pull copies and what it must leave out.
func tree(t *testing.T) []transport.File {
	return []transport.File{
		{Path: "spec.yaml", Data: []byte("name: x\n")},
		{Path: "stages/frozen/history.csv", Data: []byte("epoch,loss\n1,0.5\n")},
		{Path: "stages/frozen/checkpoints/best.keras", Data: randomBytes(t, 300_000)},
		{Path: "stages/frozen/checkpoints/final.keras", Data: randomBytes(t, 1000)},
		{Path: "stages/frozen/state/epoch-0001/model.weights.h5", Data: randomBytes(t, 1000)},
		{Path: "trainer/train.py", Data: []byte("print(1)\n")},
		{Path: "logs/x-1.out", Data: []byte("log ' $(x)\n")},
		{Path: "odd name 'q' $HOME", Data: []byte("odd")},
	}
}

var treeExclude = []string{"trainer/", "stages/*/state/", "stages/*/checkpoints/final.*"}

func testPullIncremental(t *testing.T, tr transport.Transport) {
	remote := path.Join(Scratch(t, tr), "run")
	files := tree(t)
	if err := tr.Stage(ctx(t), remote, files); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "results", "run")
	var lastDone, lastTotal int64
	st, err := tr.Pull(ctx(t), remote, local, transport.PullOptions{
		Exclude:  treeExclude,
		Progress: func(done, total int64) { lastDone, lastTotal = done, total },
	})
	if err != nil {
		t.Fatalf("first Pull: %v", err)
	}
	var want int64
	var n int
	for _, f := range files {
		if !transport.Excluded(f.Path, treeExclude) {
			want += int64(len(f.Data))
			n++
		}
	}
	if st.Files != n || st.Bytes < want || st.Checked != n {
		t.Errorf("first Pull: %+v; want %d files, at least %d bytes, %d checked", st, n, want, n)
	}
	if lastTotal != want || lastDone != want {
		t.Errorf("progress ended at %d/%d, want %d/%d", lastDone, lastTotal, want, want)
	}
	CheckLocal(t, local, files, treeExclude)

	st, err = tr.Pull(ctx(t), remote, local, transport.PullOptions{Exclude: treeExclude})
	if err != nil {
		t.Fatalf("second Pull: %v", err)
	}
	if st.Bytes != 0 || st.Files != 0 || st.Checked != n {
		t.Errorf("second Pull of an unchanged directory moved %+v; want 0 files, 0 bytes, %d checked", st, n)
	}

	// A job appends a row: the next Pull copies that file only.
	mustRun(t, tr, "sh", "-c", `printf '2,0.25\n' >> "$1"`, "sh", path.Join(remote, "stages/frozen/history.csv"))
	files[1].Data = append(files[1].Data, "2,0.25\n"...)
	st, err = tr.Pull(ctx(t), remote, local, transport.PullOptions{Exclude: treeExclude})
	if err != nil {
		t.Fatalf("third Pull: %v", err)
	}
	if st.Files != 1 {
		t.Errorf("third Pull after one file changed: %+v; want 1 file", st)
	}
	CheckLocal(t, local, files, treeExclude)

	// Same size, same second, different content (damaged locally): verification catches it.
	p := filepath.Join(local, "spec.yaml")
	fi, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte("name: y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(p, fi.ModTime(), fi.ModTime())
	if _, err := tr.Pull(ctx(t), remote, local, transport.PullOptions{Exclude: treeExclude}); err != nil {
		t.Fatalf("Pull after local damage: %v", err)
	}
	CheckLocal(t, local, files, treeExclude)
}

func testPullMissing(t *testing.T, tr transport.Transport) {
	remote := path.Join(Scratch(t, tr), "no-such-run")
	_, err := tr.Pull(ctx(t), remote, t.TempDir(), transport.PullOptions{})
	if !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("Pull of a missing directory: %v, want errkind.ErrNotFound", err)
	}
}

func testPullInterrupted(t *testing.T, tr transport.Transport) {
	remote := path.Join(Scratch(t, tr), "run")
	files := []transport.File{
		{Path: "a-small", Data: []byte("small")},
		{Path: "stages/s/checkpoints/best.keras", Data: randomBytes(t, 6<<20)},
		{Path: "z-after", Data: randomBytes(t, 1<<20)},
	}
	if err := tr.Stage(ctx(t), remote, files); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "run")
	c, cancel := context.WithCancel(ctx(t))
	// At 2 MiB/s the copy takes about 3.5 s; stop it after 1 s, part-way into the big file.
	timer := time.AfterFunc(time.Second, cancel)
	defer timer.Stop()
	_, err := tr.Pull(c, remote, local, transport.PullOptions{BWLimit: 2 << 20})
	cancel()
	if err == nil {
		t.Fatal("interrupted Pull reported success")
	}
	// Whatever is under a final name is complete.
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(local, filepath.FromSlash(f.Path)))
		if err == nil && !bytes.Equal(got, f.Data) {
			t.Errorf("after the interrupted Pull, %s holds %d bytes under its final name, not the %d-byte source", f.Path, len(got), len(f.Data))
		}
	}
	st, err := tr.Pull(ctx(t), remote, local, transport.PullOptions{})
	if err != nil {
		t.Fatalf("Pull after the interruption: %v", err)
	}
	t.Logf("rerun moved %+v", st)
	CheckLocal(t, local, files, nil)
}

// CheckLocal asserts local holds exactly the non-excluded files, byte for byte, and no
// temporary or partial file anywhere.
func CheckLocal(t *testing.T, local string, files []transport.File, exclude []string) {
	t.Helper()
	want := map[string]string{}
	for _, f := range files {
		if !transport.Excluded(f.Path, exclude) {
			want[f.Path] = sha(f.Data)
		}
	}
	got := map[string]string{}
	err := filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(local, p)
		b, err := os.ReadFile(p)
		got[filepath.ToSlash(rel)] = sha(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var extra, wrong []string
	for k, v := range got {
		if w, ok := want[k]; !ok {
			extra = append(extra, k)
		} else if w != v {
			wrong = append(wrong, k)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			wrong = append(wrong, k+" (missing)")
		}
	}
	sort.Strings(extra)
	sort.Strings(wrong)
	if len(extra) > 0 || len(wrong) > 0 {
		t.Errorf("local copy: unexpected files %q; wrong or missing %q", extra, wrong)
	}
	// Empty leftover directories (.rsync-partial) count too.
	_ = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), ".") {
			t.Errorf("leftover directory %s", p)
		}
		return nil
	})
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
