// Package sqlite is the embedded default store: one SQLite file in WAL mode.
//
// Durability: FULL by default: the WAL is fsynced before a transaction returns. An API call
// is answered 2xx only after its transaction returned, so neither a killed process
// (SIGKILL) nor a power loss can lose an acknowledged event. (synchronous=NORMAL would
// survive a killed process too, but not a power loss.) The fsync is not inside the commit,
// though: the writer's connection commits at NORMAL, and the callers of what it committed
// flush the WAL (one flush shared by all it covers) before their transactions return, so
// the writer goes on with the next batch while the disk works (sqlstore's syncer).
//
// Concurrency: one writer connection serialises writes in-process (SQLite has a single
// writer anyway, and a Go-side queue is cheaper than SQLITE_BUSY retries); reads use a
// separate pool and never block the writer. Transactions start IMMEDIATE so that another
// process (e.g. `ubihooks token create` beside a running server) waits on busy_timeout
// instead of failing on a lock upgrade.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks/internal/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune the store.
type Options struct {
	// Synchronous is the PRAGMA synchronous value; FULL unless set (see the package doc).
	Synchronous string
}

// Open opens (creating if needed) the SQLite database at path and migrates it.
func Open(ctx context.Context, path string, opts Options) (*sqlstore.Store, error) {
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	// The database holds request inputs and results: created here, it is readable by its
	// owner only, and SQLite gives its WAL and shared-memory files the database's mode.
	// An existing file keeps the mode its operator gave it.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: create: %w", err)
	}
	// temp_store=MEMORY keeps statement journals (the undo log of a multi-row statement
	// inside a transaction, such as a fan-out) in memory: on a file, each one opened and
	// removed a temporary file.
	dsnFor := func(synchronous string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(" + synchronous + ")", "temp_store(MEMORY)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		return "file:" + path + "?" + q.Encode()
	}
	dsn := dsnFor(opts.Synchronous)
	// FULL durability without a flush inside every commit: the writer's connection commits
	// at NORMAL (the WAL is written, not flushed), and the store flushes the WAL itself, off
	// the writer's path, before it answers the transactions it committed (see walSync).
	wdsn := dsn
	pipelined := strings.EqualFold(opts.Synchronous, "FULL")
	if pipelined {
		wdsn = dsnFor("NORMAL")
	}
	// The writer never checkpoints on commit (that would put the copy of WAL pages into the
	// database file, and its fsync, on the path of every thousandth commit); a background
	// checkpointer does it instead.
	w, err := sql.Open("sqlite", wdsn+"&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	var syncFunc func() error
	if pipelined {
		ws, err := newWALSync(path)
		if err != nil {
			w.Close()
			return nil, err
		}
		syncFunc = ws.sync
		if err := ws.sync(); err != nil { // the migrations, if any
			w.Close()
			return nil, err
		}
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	st, err := sqlstore.NewSingleWriter(ctx, w, r, sqlstore.Dialect{
		Name:       "sqlite",
		SyncFunc:   syncFunc,
		Migrations: migrations,
		// A version 7 UUID: time-ordered, so that new deliveries append to the end of
		// their primary-key index instead of dirtying random pages.
		UUIDExpr: `(substr(printf('%012x', CAST(unixepoch('subsec') * 1000 AS INTEGER)), 1, 8) || '-' ||
			substr(printf('%012x', CAST(unixepoch('subsec') * 1000 AS INTEGER)), 9, 4) || '-7' || substr(lower(hex(randomblob(2))), 2) ||
			'-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))`,
		IsUnique: func(err error) bool {
			return hasCode(err, sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
		},
	})
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go checkpoint(r, st, stop, done)
	st.OnClose(func() { close(stop); <-done })
	return st, nil
}

// checkpoint copies the WAL into the database file in the background, so that commits
// never wait for the bulk of it: every 200 ms, a PASSIVE checkpoint on a reader connection
// (it blocks neither writers nor readers) copies what the WAL holds; then a second one on
// the writer's connection, between two write transactions, copies the few frames committed
// meanwhile. Only a checkpoint that no commit overtakes leaves the WAL wholly copied, and
// only then does the next write transaction start the WAL over from its beginning: under
// continuous writes the first alone never catches up, and the WAL would grow without bound
// (and every commit would extend the file, which makes its fsync dearer). FULL or RESTART
// checkpoints would hold back writers while they wait for readers.
func checkpoint(db *sql.DB, st *sqlstore.Store, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		_, _ = db.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		_ = st.WriterExec(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// walSync flushes the WAL file, as the commit of a synchronous=FULL connection does: what
// it holds is then durable. It opens the file for each flush (an open and a close beside
// an fsync), so that it never holds a descriptor past the store's life.
type walSync struct{ path string }

func newWALSync(dbPath string) (*walSync, error) {
	ws := &walSync{path: dbPath + "-wal"}
	if _, err := os.Stat(ws.path); err != nil {
		return nil, fmt.Errorf("sqlite: the WAL to flush: %w", err)
	}
	// The directory entry of a new WAL must be durable too (SQLite's FULL does the same).
	if d, err := os.Open(filepath.Dir(dbPath)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return ws, nil
}

func (ws *walSync) sync() error {
	f, err := os.Open(ws.path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func hasCode(err error, codes ...int) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.Code() == c {
			return true
		}
	}
	return false
}

// migrate applies the embedded migrations that the database has not seen, each in its own
// transaction, recording them in schema_migrations.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	applied := func(version string) (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n)
		return n > 0, err
	}
	apply := func(version, body string) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
		if _, err := tx.ExecContext(ctx, body); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().UnixMicro()); err != nil {
			return err
		}
		return tx.Commit()
	}
	if err := sqlstore.Migrate(migrations, applied, apply); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}
