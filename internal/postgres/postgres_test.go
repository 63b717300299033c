package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/storetest"
)

// The tests need a PostgreSQL database, e.g.
//
//	UBIHOOKS_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//
// Without it they skip, except on CI (CI set), where they fail. Every store gets a schema
// of its own (ubh_test_<random>), dropped when its test ends, so that tests run in parallel
// and leave nothing behind.
const envURL = "UBIHOOKS_TEST_POSTGRES_URL"

func baseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set; CI must run the PostgreSQL tests", envURL)
		}
		t.Skipf("%s is not set; skipping PostgreSQL tests", envURL)
	}
	return u
}

// withSearchPath returns the connection string u selecting schema (pgx takes run-time
// parameters as URL query parameters, or as key=value pairs in the keyword form).
func withSearchPath(t testing.TB, u, schema string) string {
	t.Helper()
	if strings.Contains(u, "://") {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatalf("parse %s: %v", envURL, err)
		}
		q := pu.Query()
		q.Set("search_path", schema)
		pu.RawQuery = q.Encode()
		return pu.String()
	}
	return u + " search_path=" + schema
}

// exec runs statements on a plain connection (not a store's pool).
func exec(t testing.TB, ctx context.Context, sqls ...string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, baseURL(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range sqls {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// newSchema creates an empty schema, dropped when t ends, and returns its name and the
// connection string that selects it.
func newSchema(t testing.TB) (schema, connString string) {
	t.Helper()
	base := baseURL(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema = "ubh_test_" + hex.EncodeToString(b)
	ident := pgx.Identifier{schema}.Sanitize()
	exec(t, context.Background(), "CREATE SCHEMA "+ident)
	// Registered before any store's Close, so it runs after them (cleanups run last first).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exec(t, ctx, "DROP SCHEMA "+ident+" CASCADE")
	})
	return schema, withSearchPath(t, base, schema)
}

// openDB opens a store on connString, closed when t ends.
func openDB(t testing.TB, connString string) *DB {
	t.Helper()
	db, err := OpenDB(context.Background(), connString, Options{MaxConns: 4})
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestConformance(t *testing.T) {
	t.Parallel()
	baseURL(t)
	storetest.Run(t, func(t *testing.T) ubihooks.Store {
		_, cs := newSchema(t)
		return openDB(t, cs)
	})
}

// tables lists the tables of schema, by name.
func tables(t *testing.T, db *DB, schema string) []string {
	t.Helper()
	rows, err := db.Pool.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, schema)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func appliedMigrations(t *testing.T, db *DB) map[string]int64 {
	t.Helper()
	rows, err := db.Pool.Query(t.Context(), `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	var v string
	var at int64
	if _, err := pgx.ForEachRow(rows, []any{&v, &at}, func() error { m[v] = at; return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

var wantTables = []string{"attempts", "deliveries", "events", "objects", "projects", "requests", "schema_migrations",
	"signing_keys", "token_access", "tokens", "ui_sessions", "versions", "webhook_tests", "webhooks"}

func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	schema, cs := newSchema(t)
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = OpenDB(t.Context(), cs, Options{MaxConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("opener %d: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}
	if got := tables(t, dbs[0], schema); !slices.Equal(got, wantTables) {
		t.Errorf("tables of %s = %q, want %q", schema, got, wantTables)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v, %v", names, err)
	}
	first := appliedMigrations(t, dbs[0])
	if len(first) != len(names) {
		t.Errorf("schema_migrations holds %d rows, want %d: %v", len(first), len(names), first)
	}
	// Every opener works on the same tables.
	for i, db := range dbs {
		p := &ubihooks.Project{ID: ubihooks.NewID(), Name: fmt.Sprintf("p%d", i), OrganizationName: "org", CreatedAt: time.Now()}
		if err := db.CreateProject(t.Context(), p); err != nil {
			t.Errorf("opener %d: CreateProject: %v", i, err)
		}
	}
	for i, db := range dbs {
		for j := range n {
			if _, err := db.GetProject(t.Context(), fmt.Sprintf("p%d", j)); err != nil {
				t.Errorf("opener %d: GetProject(p%d): %v", i, j, err)
			}
		}
	}

	// Reopening migrates nothing again.
	again := openDB(t, cs)
	if got := appliedMigrations(t, again); !mapsEqual(got, first) {
		t.Errorf("after reopening, schema_migrations = %v, want %v", got, first)
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The migration lock is per schema: a migration in one schema does not wait for another's.
func TestMigrationLockPerSchema(t *testing.T) {
	t.Parallel()
	schemaA, csA := newSchema(t)
	_, csB := newSchema(t)
	conn, err := pgx.Connect(t.Context(), baseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Hold schema A's lock, as a replica in the middle of migrating A would.
	if _, err := conn.Exec(t.Context(), "SELECT pg_advisory_lock($1, hashtext($2))", int32(migrationLock), schemaA); err != nil {
		t.Fatal(err)
	}
	openB, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if db, err := OpenDB(openB, csB, Options{MaxConns: 2}); err != nil {
		t.Errorf("OpenDB on schema B while A's migration lock is held: %v", err)
	} else {
		db.Close()
	}
	openA, cancelA := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelA()
	if db, err := OpenDB(openA, csA, Options{MaxConns: 2}); err == nil {
		db.Close()
		t.Errorf("OpenDB on schema A did not wait for A's migration lock")
	}
	if _, err := conn.Exec(t.Context(), "SELECT pg_advisory_unlock($1, hashtext($2))", int32(migrationLock), schemaA); err != nil {
		t.Fatal(err)
	}
	openDB(t, csA)
}

func TestOpenMissingSchema(t *testing.T) {
	t.Parallel()
	_, err := OpenDB(t.Context(), withSearchPath(t, baseURL(t), "ubh_test_does_not_exist"), Options{})
	if err == nil || !strings.Contains(err.Error(), "search_path") {
		t.Fatalf("OpenDB with a search_path naming no existing schema: %v, want an error naming search_path", err)
	}
}

// fixture creates a project, a deployment with a default version and one webhook on it.
type fixture struct {
	p *ubihooks.Project
	o *ubihooks.Object
	v *ubihooks.Version
	w *ubihooks.Webhook
}

func newFixture(t *testing.T, s ubihooks.Store, now time.Time) fixture {
	t.Helper()
	ctx := t.Context()
	f := fixture{}
	f.p = &ubihooks.Project{ID: ubihooks.NewID(), Name: "acme", OrganizationName: "org", CreatedAt: now}
	f.o = &ubihooks.Object{ID: ubihooks.NewID(), ProjectID: f.p.ID, Type: ubihooks.ObjectDeployment, Name: "dep",
		Labels: map[string]string{}, InputType: ubihooks.TypePlain, OutputType: ubihooks.TypePlain, CreatedAt: now, UpdatedAt: now}
	f.v = &ubihooks.Version{ID: ubihooks.NewID(), ObjectID: f.o.ID, ProjectID: f.p.ID, ObjectType: f.o.Type, ObjectName: f.o.Name,
		Name: "v1", Labels: map[string]string{}, BackendURL: "http://backend.invalid", CreatedAt: now, UpdatedAt: now}
	f.w = &ubihooks.Webhook{ID: ubihooks.NewID(), ProjectID: f.p.ID, Name: "hook", ObjectType: f.o.Type, ObjectID: f.o.ID,
		ObjectName: f.o.Name, URL: "https://hooks.example.com/hook", Event: ubihooks.EventFor(f.o.Type, "completed"),
		Labels: map[string]string{}, Timeout: 5 * time.Second, Enabled: true, Retry: true, CreatedAt: now, UpdatedAt: now}
	for _, err := range []error{
		s.CreateProject(ctx, f.p),
		s.CreateObject(ctx, f.o),
		s.CreateVersion(ctx, f.v),
		s.CreateWebhook(ctx, f.w),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f fixture) events(n int, now time.Time) []*ubihooks.Event {
	out := make([]*ubihooks.Event, n)
	for i := range out {
		out[i] = &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: f.p.ID, ProjectName: f.p.Name,
			Type: ubihooks.EventFor(f.o.Type, "completed"), ObjectType: f.o.Type, ObjectID: f.o.ID, ObjectName: f.o.Name,
			VersionID: f.v.ID, VersionName: f.v.Name, RequestID: ubihooks.NewID(), Status: "completed", CreatedAt: now}
	}
	return out
}

func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	_, cs := newSchema(t)
	const replicas, total = 3, 500
	stores := make([]*DB, replicas)
	for i := range stores {
		stores[i] = openDB(t, cs) // separate pools, like replicas
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	f := newFixture(t, stores[0], now)
	n, err := stores[0].EmitEvents(t.Context(), f.events(total, now), now)
	if err != nil {
		t.Fatal(err)
	}
	if n != total {
		t.Fatalf("EmitEvents created %d deliveries, want %d", n, total)
	}

	// Each replica runs two claimers, which claim small batches until nothing is left.
	var mu sync.Mutex
	claimed := map[string]string{} // delivery ID → owner
	var dups []string
	var wg sync.WaitGroup
	for i, s := range stores {
		for k := range 2 {
			owner := fmt.Sprintf("replica-%d-%d", i, k)
			wg.Go(func() {
				for {
					ds, err := s.ClaimDeliveries(t.Context(), ubihooks.DeliveryClaim{Owner: owner, Limit: 7, Lease: time.Minute, Now: now})
					if err != nil {
						t.Errorf("%s: ClaimDeliveries: %v", owner, err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						if prev, ok := claimed[d.ID]; ok {
							dups = append(dups, fmt.Sprintf("%s (by %s and %s)", d.ID, prev, owner))
						}
						claimed[d.ID] = owner
						if d.LeaseOwner != owner || d.Status != ubihooks.DeliverySending {
							t.Errorf("%s: claimed delivery %s has owner %q, status %s", owner, d.ID, d.LeaseOwner, d.Status)
						}
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(dups) > 0 {
		t.Errorf("%d deliveries claimed twice: %v", len(dups), dups)
	}
	if len(claimed) != total {
		t.Errorf("claimers got %d distinct deliveries, want %d", len(claimed), total)
	}
	perOwner := map[string]int{}
	for _, o := range claimed {
		perOwner[o]++
	}
	t.Logf("claims per owner: %v", perOwner)
	// Nothing is left to claim, and nothing is pending.
	if ds, err := stores[0].ClaimDeliveries(t.Context(), ubihooks.DeliveryClaim{Owner: "late", Limit: total, Lease: time.Minute, Now: now}); err != nil || len(ds) != 0 {
		t.Errorf("claim after all were claimed: %d deliveries, %v", len(ds), err)
	}
}

func TestListenAfterEmit(t *testing.T) {
	// Not parallel: notifications are database-wide, and it waits for a quiet channel before
	// it emits, which the other tests' commits would never leave.
	_, cs := newSchema(t)
	db := openDB(t, cs)
	now := time.Now().UTC().Truncate(time.Microsecond)
	f := newFixture(t, db, now)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	got := make(chan ubihooks.Channel, 100)
	go func() {
		defer close(done)
		db.Listen(ctx, func(ch ubihooks.Channel) { got <- ch })
	}()
	t.Cleanup(func() { cancel(); <-done }) // runs before db.Close: the listener holds a pooled connection

	// Wait until the listener listens: probe on the requests channel until a probe arrives.
	deadline := time.Now().Add(10 * time.Second)
probe:
	for {
		if _, err := db.Pool.Exec(t.Context(), "SELECT pg_notify($1, '')", string(ubihooks.ChannelRequests)); err != nil {
			t.Fatal(err)
		}
		select {
		case ch := <-got:
			if ch == ubihooks.ChannelRequests {
				break probe
			}
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener never received a probe notification")
		}
	}
	// Drain late probes.
	for drained := false; !drained; {
		select {
		case <-got:
		case <-time.After(200 * time.Millisecond):
			drained = true
		}
	}

	start := time.Now()
	n, err := db.EmitEvents(t.Context(), f.events(1, now), now)
	if err != nil || n != 1 {
		t.Fatalf("EmitEvents: %d deliveries, %v; want 1", n, err)
	}
	timeout := time.After(time.Second)
	for {
		select {
		case ch := <-got:
			if ch == ubihooks.ChannelDeliveries {
				t.Logf("woken %v after EmitEvents began", time.Since(start))
				return
			}
		case <-timeout:
			t.Fatalf("no notification on %s within a second of EmitEvents", ubihooks.ChannelDeliveries)
		}
	}
}

func TestUniqueViolationIsConflict(t *testing.T) {
	t.Parallel()
	_, cs := newSchema(t)
	db := openDB(t, cs)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &ubihooks.Project{ID: ubihooks.NewID(), Name: "acme", OrganizationName: "org", CreatedAt: now}
	if err := db.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	dup := *p
	dup.ID = ubihooks.NewID()
	if err := db.CreateProject(ctx, &dup); ubihooks.ErrorCode(err) != ubihooks.ECONFLICT {
		t.Errorf("CreateProject with a taken name: code %q (err %v), want %q", ubihooks.ErrorCode(err), err, ubihooks.ECONFLICT)
	}
	// A duplicate primary key in a transaction goes through the generic translation.
	tok := &ubihooks.Token{ID: ubihooks.NewID(), ProjectID: p.ID, Hash: []byte{1, 2, 3}, Name: "t", CreatedAt: now}
	if err := db.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	tok2 := *tok
	tok2.ID = ubihooks.NewID()
	if err := db.CreateToken(ctx, &tok2); ubihooks.ErrorCode(err) != ubihooks.ECONFLICT {
		t.Errorf("CreateToken with a taken hash: code %q (err %v), want %q", ubihooks.ErrorCode(err), err, ubihooks.ECONFLICT)
	}
	// The raw driver error is classified by code.
	_, err := db.DB().ExecContext(ctx, `INSERT INTO projects (id, name, organization_name, created_at) VALUES ($1, $2, $3, $4)`,
		p.ID, "other", "org", 0)
	if !hasCode(err, "23505") {
		t.Errorf("duplicate primary key: err %v, want SQLSTATE 23505", err)
	}
}

// TestLostConnectionIsRetried: a pooled connection that the server closed (a restart, an
// administrator) fails its next statement; the store runs a read and a transaction that
// did not commit once more on another connection instead of failing them.
func TestLostConnectionIsRetried(t *testing.T) {
	t.Parallel()
	_, cs := newSchema(t)
	db, err := OpenDB(t.Context(), cs, Options{MaxConns: 1}) // one connection: the one killed is the one used next
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := &ubihooks.Project{ID: ubihooks.NewID(), Name: "acme", OrganizationName: "org", CreatedAt: now}
	if err := db.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, baseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	// kill ends the pool's connection and waits until its server process is gone.
	kill := func() {
		t.Helper()
		var pid int
		if err := db.Pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); ; {
			var alive bool
			if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid).Scan(&alive); err != nil {
				t.Fatal(err)
			}
			if !alive {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("server process %d still there 5s after pg_terminate_backend", pid)
			}
		}
	}

	kill()
	if got, err := db.GetProject(ctx, "acme"); err != nil || got.ID != p.ID {
		t.Errorf("GetProject after the connection was lost: %v, %v; want the project", got, err)
	}
	kill()
	q := &ubihooks.Project{ID: ubihooks.NewID(), Name: "beta", OrganizationName: "org", CreatedAt: now}
	if err := db.CreateProject(ctx, q); err != nil {
		t.Errorf("CreateProject after the connection was lost: %v", err)
	}
	kill()
	if _, err := db.ListWebhooks(ctx, p.ID, ubihooks.WebhookFilter{}); err != nil {
		t.Errorf("ListWebhooks after the connection was lost: %v", err)
	}
}

func TestTransientErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true}, // terminating connection due to administrator command
		{&pgconn.PgError{Code: "08006"}, true}, // connection failure
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P03"}), true},
		{&pgconn.PgError{Code: "23505"}, false}, // a unique violation is not transient
		{&pgconn.PgError{Code: "40001"}, false},
		{io.ErrUnexpectedEOF, true},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{errors.New("some other error"), false},
	} {
		if got := isTransient(tt.err); got != tt.want {
			t.Errorf("isTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	// A write may be sent again only when it cannot have completed.
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "08006"}, false},
		{io.ErrUnexpectedEOF, false}, // the statement may have committed before the connection went
		{context.Canceled, false},
	} {
		if got := safeToRetry(tt.err); got != tt.want {
			t.Errorf("safeToRetry(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestSubscribeReturnsListening: a notification sent right after Subscribe returns is
// heard, every time (a listener still connecting would miss it).
func TestSubscribeReturnsListening(t *testing.T) {
	t.Parallel()
	_, cs := newSchema(t)
	db := openDB(t, cs)
	for i := range 5 {
		ctx, cancel := context.WithCancel(t.Context())
		got := make(chan ubihooks.Channel, 100)
		db.Subscribe(ctx, func(ch ubihooks.Channel) { got <- ch })
		if _, err := db.Pool.Exec(t.Context(), "SELECT pg_notify($1, '')", string(ubihooks.ChannelDeliveries)); err != nil {
			cancel()
			t.Fatal(err)
		}
		heard := false
		for !heard {
			select {
			case ch := <-got:
				heard = ch == ubihooks.ChannelDeliveries
			case <-time.After(5 * time.Second):
				cancel()
				t.Fatalf("subscription %d: the notification sent after Subscribe returned was not heard", i)
			}
		}
		cancel()
	}
}

// The delivery engine takes a store's record flush interval through this method set
// (delivery.RecordFlusher): PostgreSQL records larger batches than the engine's default.
func TestRecordFlushInterval(t *testing.T) {
	var db any = (*DB)(nil)
	f, ok := db.(interface{ RecordFlushInterval() time.Duration })
	if !ok {
		t.Fatal("*DB has no RecordFlushInterval")
	}
	if got := f.RecordFlushInterval(); got <= 2*time.Millisecond || got > 50*time.Millisecond {
		t.Errorf("RecordFlushInterval %v; want above the engine's 2ms and at most 50ms", got)
	}
}
