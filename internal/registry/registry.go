// Package registry is hpctl's local index of runs: a SQLite database (modernc.org/sqlite,
// pure Go, no cgo) in the user's state directory.
//
// Why SQLite: several hpctl processes may write at once (two terminals submitting, a
// status --watch recording cancellations) and any of them may be killed mid-write. SQLite
// in WAL mode gives atomic, durable transactions across processes with file locks, so a
// record is either wholly there or not there at all; busy_timeout makes concurrent
// writers queue instead of failing. A run is stored as one JSON document in one row,
// written by one statement, so there is no multi-row record to tear.
package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/hpctl/hpctl/internal/errkind"
)

// FileName is the database's name inside the state directory.
const FileName = "registry.db"

// busyTimeout is how long a writer waits for another process's transaction before giving
// up. Transactions here last milliseconds; a long wait means a stuck process. (A variable
// so that tests wait less.)
var busyTimeout = 10 * time.Second

// migrations[i] takes the schema from user_version i to i+1. Append only: a database
// written by an older hpctl is brought forward, one step per transaction.
var migrations = []string{
	`CREATE TABLE runs (
		id           TEXT PRIMARY KEY,
		submitted_at INTEGER NOT NULL, -- Unix nanoseconds, for newest-first order
		status       TEXT NOT NULL,
		data         TEXT NOT NULL CHECK (json_valid(data))
	);
	CREATE INDEX runs_by_time ON runs (submitted_at DESC, id DESC);`,
}

// SchemaVersion is the user_version this hpctl writes.
var SchemaVersion = len(migrations)

// Registry implements Store over SQLite.
type Registry struct {
	db   *sql.DB
	path string
	// readOnly: this user may read the file but not write it (another user's registry,
	// a read-only file system); reads work, Put says why it cannot.
	readOnly error
}

var _ Store = (*Registry)(nil)

// Open opens (creating if needed) <dir>/registry.db and brings its schema up to date.
func Open(ctx context.Context, dir string) (*Registry, error) {
	if dir == "" {
		return nil, errors.New("registry: no state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	path := filepath.Join(dir, FileName)
	q := url.Values{}
	// WAL: readers never block the writer and a killed writer's half transaction is
	// discarded on the next open. synchronous(FULL): a commit is on disk when Put returns.
	for _, p := range []string{
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"foreign_keys(ON)",
	} {
		q.Add("_pragma", p)
	}
	// BEGIN IMMEDIATE takes the write lock at the start, so two processes migrating at
	// once queue on busy_timeout instead of failing to upgrade a read lock.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", path, err)
	}
	r := &Registry{db: db, path: path}
	if err := r.migrate(ctx); err != nil {
		db.Close()
		if !cannotWrite(err) {
			return nil, err
		}
		return openReadOnly(ctx, path, err)
	}
	return r, nil
}

// openReadOnly opens a registry this process may read but not write: immutable, so
// SQLite needs neither a write lock nor the WAL's shared-memory file (which it could
// not create). It reads the file as it is; Put refuses with why.
func openReadOnly(ctx context.Context, path string, why error) (*Registry, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("immutable", "1")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", path, err)
	}
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		db.Close()
		return nil, fmt.Errorf("registry %s: cannot be read: %w (and opening it to write: %v)", path, err, why)
	}
	if v != SchemaVersion {
		db.Close()
		return nil, fmt.Errorf("registry %s has schema %d, this hpctl %d, and cannot be upgraded: %w", path, v, SchemaVersion, why)
	}
	return &Registry{db: db, path: path, readOnly: why}, nil
}

// cannotWrite reports errors that mean "readable perhaps, but not writable by us".
func cannotWrite(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return true
		}
	}
	return errors.Is(err, fs.ErrPermission)
}

// Path is the database file.
func (r *Registry) Path() string { return r.path }

func (r *Registry) migrate(ctx context.Context) error {
	// Read the version first, outside any transaction: in WAL mode that read never waits
	// for a writer, so read-only commands (runs, status, logs) work while another hpctl
	// holds the write lock. Only an out-of-date schema takes the write lock.
	var cur int
	if err := retryBusy(ctx, func() error {
		return r.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur)
	}); err != nil {
		return fmt.Errorf("registry %s: read schema version: %w", r.path, err)
	}
	if cur == SchemaVersion {
		return nil
	}
	for {
		tx, err := r.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("registry %s: %w", r.path, err)
		}
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			tx.Rollback()
			return fmt.Errorf("registry %s: read schema version: %w", r.path, err)
		}
		if v > SchemaVersion {
			tx.Rollback()
			return fmt.Errorf("registry %s: schema version %d is newer than this hpctl knows (%d); upgrade hpctl", r.path, v, SchemaVersion)
		}
		if v == SchemaVersion {
			return tx.Rollback()
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("registry %s: migrate to schema %d: %w", r.path, v+1, err)
		}
		// PRAGMA takes no bound parameters; v+1 is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("registry %s: migrate to schema %d: %w", r.path, v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("registry %s: migrate to schema %d: %w", r.path, v+1, err)
		}
	}
}

// explainBusy says, for a lock wait that ran out, which processes have the registry open
// and what to do; other errors pass unchanged.
func (r *Registry) explainBusy(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
		return err
	}
	who := "another process"
	if hs := holders(r.path); len(hs) > 0 {
		who = strings.Join(hs, ", ")
	}
	return fmt.Errorf("the registry stayed locked for %s by %s; wait for it to finish, or stop it if it is stuck: %w", busyTimeout, who, err)
}

// retryBusy runs f again while SQLite answers SQLITE_BUSY, for up to busyTimeout. SQLite
// skips the busy handler in a few cases, notably while another process is turning a new
// database into WAL mode: several hpctl commands opening a fresh registry at once failed
// at once with "database is locked" instead of waiting their turn.
func retryBusy(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		err := f()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Put inserts or replaces a run, atomically.
func (r *Registry) Put(ctx context.Context, run Run) error {
	if run.ID == "" {
		return errors.New("registry: run without an id")
	}
	data, err := json.Marshal(run)
	if err != nil {
		return fmt.Errorf("registry: encode run %s: %w", run.ID, err)
	}
	if r.readOnly != nil {
		return fmt.Errorf("registry %s: cannot record run %s: this user may only read it (%v); use a state directory of your own (--state-dir or HPCTL_STATE_DIR)", r.path, run.ID, r.readOnly)
	}
	_, err = r.db.ExecContext(ctx, `INSERT INTO runs (id, submitted_at, status, data) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET submitted_at = excluded.submitted_at, status = excluded.status, data = excluded.data`,
		run.ID, run.SubmittedAt.UnixNano(), run.Status, string(data))
	if err != nil {
		return fmt.Errorf("registry: record run %s: %w", run.ID, r.explainBusy(err))
	}
	return nil
}

// Delete removes a run's record; a run that is not there is not an error. Submit uses it
// when the cluster refused a run outright (nothing of it is left queued): such a run
// never existed for the user.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if r.readOnly != nil {
		return fmt.Errorf("registry %s: cannot remove run %s: this user may only read it (%v)", r.path, id, r.readOnly)
	}
	if _, err := r.db.ExecContext(ctx, `DELETE FROM runs WHERE id = ?`, id); err != nil {
		return fmt.Errorf("registry: remove run %s: %w", id, r.explainBusy(err))
	}
	return nil
}

// Get returns one run; a missing one wraps errkind.ErrNotFound.
func (r *Registry) Get(ctx context.Context, id string) (Run, error) {
	var data string
	err := r.db.QueryRowContext(ctx, `SELECT data FROM runs WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("run %q: %w", id, errkind.ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("registry: read run %s: %w", id, err)
	}
	return decode(id, data)
}

// List returns every run, newest first.
func (r *Registry) List(ctx context.Context) ([]Run, error) { return r.Recent(ctx, 0) }

// Recent returns the newest limit runs (all of them when limit <= 0), newest first.
func (r *Registry) Recent(ctx context.Context, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id, data FROM runs ORDER BY submitted_at DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("registry: list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var id, data string
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("registry: list runs: %w", err)
		}
		run, err := decode(id, data)
		if err != nil {
			return nil, err
		}
		out = append(out, run)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("registry: list runs: %w", err)
	}
	return out, nil
}

// Latest returns the newest run; an empty registry wraps errkind.ErrNotFound.
func (r *Registry) Latest(ctx context.Context) (Run, error) {
	runs, err := r.Recent(ctx, 1)
	if err != nil {
		return Run{}, err
	}
	if len(runs) == 0 {
		return Run{}, fmt.Errorf("no runs recorded yet: %w", errkind.ErrNotFound)
	}
	return runs[0], nil
}

// Check runs SQLite's integrity_check and returns an error unless it says "ok".
func (r *Registry) Check(ctx context.Context) error {
	var res string
	if err := r.db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("registry %s: integrity check: %w", r.path, err)
	}
	if res != "ok" {
		return fmt.Errorf("registry %s: integrity check: %s", r.path, res)
	}
	return nil
}

// Close implements Registry.
func (r *Registry) Close() error { return r.db.Close() }

func decode(id, data string) (Run, error) {
	var run Run
	if err := json.Unmarshal([]byte(data), &run); err != nil {
		return Run{}, fmt.Errorf("registry: run %s is unreadable: %w", id, err)
	}
	return run, nil
}
