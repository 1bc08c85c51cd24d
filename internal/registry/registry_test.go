package registry

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hpctl/hpctl/internal/errkind"
)

// The test binary doubles as a writer process for the concurrency and crash tests.
func TestMain(m *testing.M) {
	if dir := os.Getenv("HPCTL_REGISTRY_HOLD_DIR"); dir != "" {
		os.Exit(holdLock(dir))
	}
	if dir := os.Getenv("HPCTL_REGISTRY_READER_DIR"); dir != "" {
		os.Exit(readOnly(dir))
	}
	if dir := os.Getenv("HPCTL_REGISTRY_WRITER_DIR"); dir != "" {
		os.Exit(writer(dir, os.Getenv("HPCTL_REGISTRY_WRITER_PREFIX"), os.Getenv("HPCTL_REGISTRY_WRITER_COUNT")))
	}
	os.Exit(m.Run())
}

// writer puts runs prefix-0, prefix-1, ... and prints each id once its Put returned (a
// commit). count <= 0 writes until killed.
func writer(dir, prefix, count string) int {
	n, _ := strconv.Atoi(count)
	ctx := context.Background()
	r, err := Open(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer r.Close()
	w := bufio.NewWriter(os.Stdout)
	for i := 0; n <= 0 || i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if err := r.Put(ctx, sampleRun(id, i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(w, id)
		w.Flush()
	}
	return 0
}

// sampleRun is a run whose every field is derived from id and i, so a reader can tell a
// whole record from a torn one. The padding makes records span several pages.
func sampleRun(id string, i int) Run {
	pad := strings.Repeat("x", 3000+i%500)
	return Run{
		ID: id, SpecName: "spec-" + id, SpecFile: "/specs/" + id + ".yaml", SpecHash: pad,
		RunDir: "/runs/" + id, Executor: "slurm", Status: RunSubmitted,
		SubmittedAt: time.Unix(1_700_000_000+int64(i), 0).UTC(), HpctlVersion: "test",
		Stages: []RunStage{
			{Name: "frozen", JobID: strconv.Itoa(2 * i), JobName: id + "-frozen", Epochs: i},
			{Name: "finetune", JobID: strconv.Itoa(2*i + 1), JobName: id + "-finetune", DependsOn: []string{"frozen"}, Epochs: i},
		},
	}
}

func checkWhole(t *testing.T, run Run) {
	t.Helper()
	i := run.Stages[0].Epochs
	want := sampleRun(run.ID, i)
	if fmt.Sprint(run) != fmt.Sprint(want) {
		t.Fatalf("run %s is not whole:\n got %+v\nwant %+v", run.ID, run, want)
	}
}

func TestPutGetListLatest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Latest(ctx); !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("Latest on empty registry: %v, want ErrNotFound", err)
	}
	if _, err := r.Get(ctx, "nope"); !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("Get missing: %v, want ErrNotFound", err)
	}
	for i := 0; i < 5; i++ {
		if err := r.Put(ctx, sampleRun(fmt.Sprintf("run-%d", i), i)); err != nil {
			t.Fatal(err)
		}
	}
	// Replace one: Put is an upsert.
	updated := sampleRun("run-2", 2)
	updated.Status, updated.Error = RunFailed, "sbatch said no"
	if err := r.Put(ctx, updated); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, "run-2")
	if err != nil || got.Status != RunFailed || got.Error != "sbatch said no" {
		t.Fatalf("Get after update: %+v, %v", got, err)
	}
	runs, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, run := range runs {
		ids = append(ids, run.ID)
	}
	if strings.Join(ids, ",") != "run-4,run-3,run-2,run-1,run-0" {
		t.Fatalf("List order: %v, want newest first", ids)
	}
	latest, err := r.Latest(ctx)
	if err != nil || latest.ID != "run-4" {
		t.Fatalf("Latest: %s, %v", latest.ID, err)
	}
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// Delete removes exactly one run; deleting it again is no error.
	for i := 0; i < 2; i++ {
		if err := r.Delete(ctx, "run-3"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := r.Get(ctx, "run-3"); !errors.Is(err, errkind.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if runs, _ := r.List(ctx); len(runs) != 4 {
		t.Fatalf("%d runs after deleting one of 5", len(runs))
	}
}

func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := r.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("user_version %d (%v), want %d", v, err, SchemaVersion)
	}
	var mode string
	if err := r.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v), want wal", mode, err)
	}
	r.Close()
	// Reopening is a no-op migration.
	r, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	// A database from a newer hpctl is refused, not silently misread.
	db, err := sql.Open("sqlite", "file:"+dir+"/"+FileName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v, want a 'newer' error", err)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Each goroutine opens its own handle, as separate hpctl processes would.
			r, err := Open(ctx, dir)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			for i := 0; i < each; i++ {
				if err := r.Put(ctx, sampleRun(fmt.Sprintf("g%d-%d", w, i), i)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runs, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != writers*each {
		t.Fatalf("%d runs recorded, want %d", len(runs), writers*each)
	}
	for _, run := range runs {
		checkWhole(t, run)
	}
}

func writerCmd(t *testing.T, dir, prefix string, count int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HPCTL_REGISTRY_WRITER_DIR="+dir,
		"HPCTL_REGISTRY_WRITER_PREFIX="+prefix, "HPCTL_REGISTRY_WRITER_COUNT="+strconv.Itoa(count))
	cmd.Stderr = os.Stderr
	return cmd
}

func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	const procs, each = 4, 40
	var cmds []*exec.Cmd
	for p := 0; p < procs; p++ {
		cmd := writerCmd(t, dir, fmt.Sprintf("p%d", p), each)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer process: %v", err)
		}
	}
	ctx := context.Background()
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Check(ctx); err != nil {
		t.Fatal(err)
	}
	runs, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != procs*each {
		t.Fatalf("%d runs recorded by %d processes, want %d", len(runs), procs, procs*each)
	}
	for _, run := range runs {
		checkWhole(t, run)
	}
}

// TestKilledWriter kills a process in the middle of a write loop (SIGKILL: no cleanup of
// any kind) and checks that the database is intact and holds every run the process had
// committed, each one whole.
func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	for round := 0; round < 3; round++ {
		cmd := writerCmd(t, dir, fmt.Sprintf("k%d", round), 0)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var committed []string
		target := 20 + 15*round // vary where in the loop the kill lands
		for sc.Scan() {
			committed = append(committed, sc.Text())
			if len(committed) == target {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for sc.Scan() { // ids committed between our signal and the process's death
			committed = append(committed, sc.Text())
		}
		cmd.Wait()

		ctx := context.Background()
		r, err := Open(ctx, dir)
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		if err := r.Check(ctx); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, id := range committed {
			run, err := r.Get(ctx, id)
			if err != nil {
				t.Fatalf("round %d: committed run %s lost: %v", round, id, err)
			}
			checkWhole(t, run)
		}
		runs, err := r.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range runs {
			checkWhole(t, run) // including any run committed but not yet printed
		}
		r.Close()
	}
}

// TestReadsWhileAnotherProcessHoldsTheWriteLock: `hpctl runs` and `hpctl status` only
// read, so another hpctl in the middle of a write (here a transaction that holds the
// write lock for the whole test) must not make them fail with "database is locked".
func TestReadsWhileAnotherProcessHoldsTheWriteLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Put(ctx, sampleRun("held-0", 0)); err != nil {
		t.Fatal(err)
	}
	holder, err := sql.Open("sqlite", "file:"+w.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK")

	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatalf("open while another connection holds the write lock: %v", err)
	}
	defer r.Close()
	runs, err := r.List(ctx)
	if err != nil || len(runs) != 1 {
		t.Fatalf("List while locked: %d runs, %v", len(runs), err)
	}
	if _, err := r.Get(ctx, "held-0"); err != nil {
		t.Fatalf("Get while locked: %v", err)
	}
}

// holdLock takes the registry's write lock, says "held" and keeps it until killed.
func holdLock(dir string) int {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+dir+"/"+FileName)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("held")
	select {}
}

// readOnly opens the registry, lists it and tries to write, printing what happened.
func readOnly(dir string) int {
	ctx := context.Background()
	r, err := Open(ctx, dir)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	runs, err := r.List(ctx)
	fmt.Printf("list: %d %v\n", len(runs), err)
	fmt.Println("put:", r.Put(ctx, sampleRun("intruder", 9)))
	_, err = r.Hold("intruder")
	fmt.Println("hold:", err)
	return 0
}

// A lock wait that runs out names the processes that have the registry open and says
// what to do, instead of a bare "database is locked".
func TestLockWaitNamesTheHolder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), "HPCTL_REGISTRY_HOLD_DIR="+dir)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "held\n" {
		t.Fatalf("holder said %q", line)
	}
	old := busyTimeout
	busyTimeout = 200 * time.Millisecond
	defer func() { busyTimeout = old }()
	r2, err := Open(ctx, dir) // a new connection, with the short wait
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	err = r2.Put(ctx, sampleRun("blocked", 1))
	want := fmt.Sprintf("pid %d (", holder.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "wait for it to finish") {
		t.Fatalf("Put under another process's lock: %v; want it to name %q and say what to do", err, want)
	}
}

// Another user's registry, readable but not writable: reads work; a write says why not
// and what to do; nothing is written.
func TestReadOnlyRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a reader as another user")
	}
	ctx := context.Background()
	base, err := os.MkdirTemp("", "hpctl-ro-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	dir := base + "/state"
	r, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, sampleRun("mine", 0)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	os.Chmod(dir, 0o755) // readable by all, writable by its owner only
	bin := base + "/reader.test"
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "HPCTL_REGISTRY_READER_DIR="+dir)
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("reader: %v\n%s", err, got)
	}
	s := string(got)
	if !strings.Contains(s, "list: 1 <nil>") {
		t.Errorf("reading another user's registry failed:\n%s", s)
	}
	if !strings.Contains(s, "put: registry") || !strings.Contains(s, "may only read it") || !strings.Contains(s, "--state-dir") {
		t.Errorf("a write to another user's registry should say why not and what to do:\n%s", s)
	}
	if !strings.Contains(s, "hold: registry") {
		t.Errorf("Hold on a read-only registry:\n%s", s)
	}
	r, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Get(ctx, "intruder"); !errors.Is(err, errkind.ErrNotFound) {
		t.Errorf("the reader wrote a run: %v", err)
	}
}
