package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/storetest"
)

func open(t *testing.T, path string) ubihooks.Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) ubihooks.Store {
		s := open(t, filepath.Join(t.TempDir(), "ubihooks.db"))
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ubihooks.db")
	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var fk int
	if err := s.DB().QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if fk != 1 {
		t.Errorf("PRAGMA foreign_keys = %d on the store's connection, want 1", fk)
	}
	var sync int
	if err := s.DB().QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != 2 { // FULL
		t.Errorf("PRAGMA synchronous = %d, want 2 (FULL) by default", sync)
	}
	var temp int
	if err := s.DB().QueryRowContext(t.Context(), `PRAGMA temp_store`).Scan(&temp); err != nil {
		t.Fatal(err)
	}
	if temp != 2 { // MEMORY
		t.Errorf("PRAGMA temp_store = %d, want 2 (MEMORY): statement journals must not be files", temp)
	}
	// Foreign keys are enforced: a version of a missing object is refused.
	err = s.CreateVersion(t.Context(), &ubihooks.Version{ID: "v", ObjectID: "no-such-object", ProjectID: "p", Name: "v1",
		CreatedAt: time.Now(), UpdatedAt: time.Now()})
	if err == nil {
		t.Errorf("CreateVersion of a missing object succeeded; foreign keys are not enforced")
	}

	// WAL is a property of the file: a plain connection without any pragma sees it.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var mode string
	if err := raw.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode of the file = %q, want wal", mode)
	}
}

func TestReopenMigratesIdempotently(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ubihooks.db")
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v, %v", names, err)
	}
	applied := func(s ubihooks.Store) map[string]int64 {
		t.Helper()
		rows, err := s.(interface{ DB() *sql.DB }).DB().QueryContext(ctx, `SELECT version, applied_at FROM schema_migrations`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[string]int64{}
		for rows.Next() {
			var v string
			var at int64
			if err := rows.Scan(&v, &at); err != nil {
				t.Fatal(err)
			}
			m[v] = at
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}

	s := open(t, path)
	first := applied(s)
	if len(first) != len(names) {
		t.Errorf("fresh database records %d migrations, want %d", len(first), len(names))
	}
	p := &ubihooks.Project{ID: "p1", Name: "acme", OrganizationName: "org", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		s := open(t, path)
		again := applied(s)
		if len(again) != len(first) {
			t.Errorf("reopen %d: %d migrations recorded, want %d", i+1, len(again), len(first))
		}
		for v, at := range first {
			if again[v] != at {
				t.Errorf("reopen %d: migration %s re-applied (applied_at %d, was %d)", i+1, v, again[v], at)
			}
		}
		got, err := s.GetProject(ctx, "acme")
		if err != nil {
			t.Errorf("reopen %d: data lost: %v", i+1, err)
		} else if got.ID != p.ID || !got.CreatedAt.Equal(p.CreatedAt) {
			t.Errorf("reopen %d: project %+v, want %+v", i+1, got, p)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Under continuous writes the WAL must still start over after checkpoints: a checkpoint
// that runs beside the writer never catches up with it, and the WAL would grow without
// bound (every commit then also extends the file, which makes its fsync dearer).
func TestWALStaysBoundedUnderContinuousWrites(t *testing.T) {
	// Not parallel: it measures the WAL under its own continuous writes, which other tests
	// competing for the CPU would slow down.
	path := filepath.Join(t.TempDir(), "ubihooks.db")
	s, err := Open(t.Context(), path, Options{Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WriterExec(t.Context(), `CREATE TABLE filler (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	// A reader polls meanwhile, as the API and the engines do.
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			_ = s.DB().QueryRow(`SELECT COUNT(*) FROM filler WHERE rowid > (SELECT MAX(rowid) - 10 FROM filler)`).Scan(&n)
		}
	}()
	const blob = 16 << 10
	written, maxWAL := 0, int64(0)
	seqs := map[uint32]bool{} // the checkpoint sequence numbers of the WAL headers seen
	// At least 2 s (ten checkpoint periods) and at least 8 MiB: on a machine slowed down by
	// other work, 2 s alone may carry too little to tell a WAL that starts over from one
	// that does not.
	const minWritten = 8 << 20
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline) || written < minWritten; i++ {
		if err := s.WriterExec(t.Context(), `INSERT INTO filler (b) VALUES (randomblob(16384))`); err != nil {
			t.Fatal(err)
		}
		written += blob
		if i%50 == 0 {
			if fi, err := os.Stat(path + "-wal"); err == nil {
				maxWAL = max(maxWAL, fi.Size())
			}
			if seq, ok := walCheckpointSeq(path + "-wal"); ok {
				seqs[seq] = true
			}
		}
	}
	close(stop)
	<-readerDone
	// Checkpoints run every 200ms, at least ten times meanwhile. A WAL that starts over
	// from its beginning writes a new header each time (its checkpoint sequence number goes
	// up), and its file stays well under what went through it; one that never does has one
	// header and outgrows all of it. (How far under depends on how many checkpoints a
	// machine busy with other work lets through, so the size bound is loose.)
	restarts := len(seqs) - 1
	t.Logf("wrote %d MiB through the WAL; the WAL file reached %.1f MiB; it started over %d times",
		written>>20, float64(maxWAL)/(1<<20), restarts)
	if restarts < 2 {
		t.Errorf("the WAL started over %d times while %d MiB were written; want at least 2", restarts, written>>20)
	}
	if maxWAL > int64(written*3/4) {
		t.Errorf("WAL grew to %.1f MiB while %d MiB were written: it never starts over", float64(maxWAL)/(1<<20), written>>20)
	}
}

// walCheckpointSeq reads the checkpoint sequence number from the header of the WAL file
// at path (a big-endian 32-bit number at byte 12), which SQLite increments each time the
// WAL starts over from its beginning.
func walCheckpointSeq(path string) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var h [16]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint32(h[12:16]), true
}

// TestFileModes: the database and its WAL and shared-memory files hold request inputs
// and results, so only their owner may read them.
func TestFileModes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ubihooks.db")
	s := open(t, path)
	defer s.Close()
	if err := s.CreateProject(t.Context(), &ubihooks.Project{ID: "01900000-0000-7000-8000-000000000001", Name: "modes", CreatedAt: time.Now().UTC()}); err != nil { // a write, past the migrations
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatalf("after a write: %v", err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(name), mode)
		}
	}
}
