// Package postgres is the scale-out store: the shared SQL store (internal/sqlstore) on
// PostgreSQL through pgx and pgxpool. Several replicas share one database: claims use
// FOR UPDATE SKIP LOCKED with leases, commits that make work due send NOTIFY so that idle
// replicas wake at once, and migrations run under an advisory lock so that replicas can
// start together.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the first key of the advisory lock that serialises migrations across
// replicas; the second key is a hash of the schema being migrated, so that stores in
// different schemas of one database (tenants, tests) migrate independently.
const migrationLock = 0x75626968 // "ubih"

// Options tune the store.
type Options struct {
	Logger *slog.Logger
	// MaxConns bounds the pool (default 16).
	MaxConns int32
}

// DB is an open PostgreSQL store: the shared SQL store, its pool, and wake-ups that reach
// every replica (NOTIFY after commits, LISTEN in Subscribe).
type DB struct {
	*sqlstore.Store
	Pool *pgxpool.Pool
	log  *slog.Logger
}

var _ ubihooks.Store = (*DB)(nil)

// emitLinger is how long an emission waits for more EmitEvents calls to join it while
// emissions carry several calls each (see sqlstore.Dialect.EmitLinger): on PostgreSQL a row
// costs about half as much in a 60-row insert as in a 4-row one. Alternating bursts
// (docs/performance.md): with it, two replicas delivered 106% of what one did on average
// (at least as much in 8 pairs of 10); without it, 94% (2 pairs of 7).
const emitLinger = 2 * time.Millisecond

// emitBatch ends an emission's wait for company early once this many events queued (see
// sqlstore.Dialect.EmitBatch): with 8, one replica's burst ran at 7,959 / 7,037 / 7,910 /
// 8,308 / 6,935 deliveries/s against 6,306 / 7,046 / 6,584 / 7,408 / 6,973 with the whole
// wait (alternating, docs/performance.md). Two replicas, whose emissions are smaller and
// rarely reach 8 events, still wait it out and kept their rate.
const emitBatch = 8

// emitLeaders is how many emissions of one replica run at once (see
// sqlstore.Dialect.EmitLeaders). With one, a burst was bound by emissions that waited on
// each other's commits (every delivery dispatched at emission, 12–23% of the CPU idle);
// with two, one replica's burst ran at 6,135/6,777/6,635 deliveries/s against
// 6,401/5,918/6,466 (alternating runs), about as fast as four (7,026/6,755) and faster
// than eight (6,400/6,254), which split the calls into smaller emissions.
const emitLeaders = 2

// txBatches is how many write transactions of one replica run at once, each carrying the
// writes that queued meanwhile (see sqlstore.Dialect.TxBatches).
const txBatches = 4

// Open connects, migrates and returns the store. The URL's search_path (e.g.
// ?search_path=tenant_a) selects the schema, which tests use for isolation.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	return OpenDB(ctx, url, opts)
}

// OpenDB is Open.
func OpenDB(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Migrate on a connection of its own: closing it releases the advisory lock even when
	// the unlock could not be sent, so a pooled connection never keeps the lock.
	if err := migrate(ctx, cfg.ConnConfig.Copy()); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	// Like stdlib.OpenDBFromPool, but closing the *sql.DB (Store.Close) closes the pool too.
	sqldb := sql.OpenDB(closingConnector{stdlib.GetPoolConnector(pool), pool})
	sqldb.SetMaxIdleConns(0) // idle connections live in the pool
	db := &DB{Pool: pool, log: opts.Logger}
	db.Store = sqlstore.New(sqldb, sqldb, sqlstore.Dialect{
		AfterCommitFunc: db.notify,
		Name:            "postgres",
		Migrations:      migrations,
		Numbered:        true,
		SkipLocked:      "FOR UPDATE SKIP LOCKED",
		// A version 7 UUID (time-ordered, so inserts append to the primary-key index).
		UUIDExpr: `(substr(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0'), 1, 8) || '-' ||
			substr(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0'), 9, 4) || '-7' ||
			substr(gen_random_uuid()::text, 16, 3) || '-' || substr(gen_random_uuid()::text, 20, 4) || '-' ||
			substr(gen_random_uuid()::text, 25, 12))`,
		IsUnique:    func(err error) bool { return hasCode(err, "23505") },
		IsTransient: isTransient,
		SafeToRetry: safeToRetry,
		IsConflict:  func(err error) bool { return hasCode(err, "40P01") || hasCode(err, "40001") },
		// Write transactions share commits: under load most of a small transaction's cost
		// to the server is its BEGIN, its COMMIT and the flush of the log that the commit
		// waits for.
		TxBatches:   txBatches,
		EmitLinger:  emitLinger,
		EmitLeaders: emitLeaders,
		EmitBatch:   emitBatch,
	})
	return db, nil
}

// RecordFlushInterval is how long the delivery engine lets outcomes gather before it
// records them (see delivery.RecordFlusher): on a burst, 10 ms instead of the engine's 2 ms
// made record batches about three times larger and cost the server 12–14% less CPU in
// alternating runs (throughput within the machine's noise but for one pair); on SQLite
// the two gave the same.
func (db *DB) RecordFlushInterval() time.Duration { return 10 * time.Millisecond }

// closingConnector closes the pool when database/sql closes the *sql.DB (database/sql
// calls Close on a connector that is an io.Closer).
type closingConnector struct {
	driver.Connector
	pool *pgxpool.Pool
}

func (c closingConnector) Close() error {
	c.pool.Close()
	return nil
}

// isTransient reports the errors of a connection that a restart or a network failure
// ended: connection exceptions (SQLSTATE class 08), the server shutting down or starting
// (57P01–57P03), and the I/O errors of a connection closed under pgx.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return pgconn.SafeToRetry(err) || errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// safeToRetry reports an error after which a statement may be sent again, even a write:
// pgx sent nothing, or the server answered the statement with its own termination
// (57P01–57P03) instead of completing it, so the statement was rolled back.
func safeToRetry(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	return pgconn.SafeToRetry(err)
}

func hasCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// notify tells every replica (this one included, through its listener) that work is due.
func (db *DB) notify(ctx context.Context, channel ubihooks.Channel) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := db.Pool.Exec(ctx, "SELECT pg_notify($1, '')", string(channel)); err != nil {
		db.log.Warn("postgres: notify failed; idle replicas will poll", "err", err)
	}
}

// Subscribe calls fn for every commit that made work due, of any replica, until ctx ends:
// it listens in a goroutine of its own (see Listen). It returns once the listener listens,
// so that no commit made after it returns goes unheard; or, when the first try to listen
// failed, at once (the listener tries again in the background; workers poll meanwhile).
func (db *DB) Subscribe(ctx context.Context, fn func(ubihooks.Channel)) {
	ready := make(chan struct{})
	go db.listen(ctx, fn, ready)
	select {
	case <-ready:
	case <-ctx.Done():
	}
}

// Listen calls fn for every notification on the wake-up channels until ctx ends. It holds
// one connection; when that breaks it reconnects after a second (workers poll meanwhile).
func (db *DB) Listen(ctx context.Context, fn func(ubihooks.Channel)) {
	db.listen(ctx, fn, nil)
}

// listen is Listen, closing ready (when not nil) once it listens or its first try failed.
func (db *DB) listen(ctx context.Context, fn func(ubihooks.Channel), ready chan struct{}) {
	var once sync.Once
	signal := func() {
		if ready != nil {
			once.Do(func() { close(ready) })
		}
	}
	defer signal()
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, fn, signal)
		signal()
		if ctx.Err() != nil {
			return
		}
		db.log.Warn("postgres: listener lost its connection; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, fn func(ubihooks.Channel), listening func()) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for _, ch := range []ubihooks.Channel{ubihooks.ChannelDeliveries, ubihooks.ChannelRequests} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{string(ch)}.Sanitize()); err != nil {
			return err
		}
	}
	defer func() {
		// Do not return a listening connection to the pool.
		_ = conn.Conn().Close(context.Background())
	}()
	listening()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(ubihooks.Channel(n.Channel))
	}
}

// migrate applies the embedded migrations under an advisory lock, each in a transaction.
// Migrations and their schema_migrations table go to the connection's current schema (the
// first existing schema of search_path), and the lock is keyed by that schema.
func migrate(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var schema *string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if schema == nil {
		return errors.New("postgres: migrate: no schema of search_path exists; create it first")
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", int32(migrationLock), *schema); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext($2))", int32(migrationLock), *schema) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	applied := func(version string) (bool, error) {
		var n int
		err := conn.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n)
		return n > 0, err
	}
	apply := func(version, body string) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it does nothing
		if _, err := tx.Exec(ctx, body); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, time.Now().UnixMicro()); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	if err := sqlstore.Migrate(migrations, applied, apply); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}
