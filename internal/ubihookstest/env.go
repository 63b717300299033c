// Package ubihookstest holds what the tests of several packages share: a fresh SQLite
// store (or one the test opens, on PostgreSQL say) with the service, a project and a
// token (Env); webhook receivers scripted to answer as a test needs, verifying every
// signature with the public httpsig verifier (Receiver); model backends for the executor
// (Backend); a client for the REST API (API); a movable clock; and waits that re-check a
// condition whenever something changed (Progress) instead of sleeping.
//
// Only tests import it. It imports no adapter (api, delivery, executor, web), so that
// the tests of every adapter, internal ones included, may use it without an import
// cycle: a test builds its engine, executor or API handler itself and hands it to
// Env.Run or Env.ServeAPI, which start, wire and stop it in order.
package ubihookstest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/secret"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// StopGrace is how long a service stopped at the end of a test may take to finish its work.
const StopGrace = 5 * time.Second

// Options tune an Env. Zero values take the documented defaults.
type Options struct {
	// Project is the name of the project the Env creates with a token (default "acme").
	Project string
	// Organization is the project's organization (default Project + "-org").
	Organization string
	// Clock is the clock of the service and of the verifier (default: a new Clock).
	Clock *Clock
	// Logger receives the service's logs (default: discarded).
	Logger *slog.Logger
	// SQLite are the options of the store (default: synchronous FULL, as in production).
	SQLite sqlite.Options
	// Open, when set, opens the store instead of SQLite in t.TempDir() (SQLite is then
	// ignored and Path is empty): New calls it, and Reopen again, as a restarted process
	// opens its database. It returns the store and what tells of the commits that made
	// work due: the store itself, or what wraps it and hears every replica's commits (a
	// *postgres.DB, whose Subscribe listens for them).
	Open func(ctx context.Context) (*sqlstore.Store, Subscriber, error)
	// Admin makes Token an admin token, which may create projects and manage tokens. By
	// default it is a project token, the kind that most callers hold, so that tests do not
	// pass on rights that their callers would lack.
	Admin bool
}

// Subscriber tells of the commits that made work due (see ubihooks.Store.Subscribe).
type Subscriber interface {
	Subscribe(ctx context.Context, fn func(ubihooks.Channel))
}

// Service is the lifecycle every background service of ubihooks has (the delivery engine,
// the executor, the cleaner).
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Notify()
}

// Env is the setup bundle of a test: real SQLite in t.TempDir() (or the store of
// Options.Open), the service with a secret box and an active signing key, and a project
// with a token. One cleanup, at the end of the test (or Close), stops the services the
// test ran (newest first), then closes the receivers, backends and servers (newest
// first), reports what went wrong off the test goroutine, and closes the store.
type Env struct {
	T       testing.TB
	Ctx     context.Context
	Path    string // the SQLite database file; empty for a store of Options.Open
	Store   *sqlstore.Store
	Box     *secret.Box
	Service *service.Service
	Clock   *Clock
	Project *ubihooks.Project
	// Token is an API token of Project.
	Token string
	// Key is the active signing key.
	Key *ubihooks.SigningKey
	// Verifier verifies signatures with Key at the Clock's time.
	Verifier *httpsig.Verifier
	// Changed is signalled whenever something a test may wait for could have changed: a
	// request at one of the Env's receivers or backends, a commit that made work due, and
	// whatever the test wires to it (a delivery engine's OnRecordFunc).
	Changed Progress

	opts   Options
	ending context.Context // canceled when the cleanup begins
	end    context.CancelFunc
	// unsubscribe ends the subscription to the commits of Store.
	unsubscribe context.CancelFunc
	closed      sync.Once
	mu          sync.Mutex
	wakes       []wake
	runs        []Service
	defers      []func()
	errs        []string
}

// wake routes the commits on some store channels (all of them when none) to a service.
type wake struct {
	s        Service
	channels []ubihooks.Channel
}

// New returns a fresh Env; its cleanup is registered with t.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Project == "" {
		opts.Project = "acme"
	}
	if opts.Organization == "" {
		opts.Organization = opts.Project + "-org"
	}
	if opts.Clock == nil {
		opts.Clock = &Clock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Env{T: t, Ctx: context.Background(), Clock: opts.Clock, Box: NewBox(t), opts: opts}
	if opts.Open == nil {
		e.Path = filepath.Join(t.TempDir(), "ubihooks.db")
	}
	e.ending, e.end = context.WithCancel(context.Background())
	e.open()
	t.Cleanup(e.Close)
	if err := e.Service.EnsureSigningKey(e.Ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.Key, err = e.Service.ActiveKey(e.Ctx); err != nil {
		t.Fatal(err)
	}
	e.Verifier = &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{e.Key.KeyID: e.Key.PublicKey}, Now: e.Clock.Now}
	nt, err := e.Service.CreateToken(e.Ctx, service.TokenCreate{Project: opts.Project, Organization: opts.Organization, Name: "test", Admin: opts.Admin})
	if err != nil {
		t.Fatal(err)
	}
	e.Token, e.Project = nt.Secret, nt.Project
	return e
}

// open opens the store (on Path, or with Options.Open), with a service over it, and makes
// its commits wake the services and the waits.
func (e *Env) open() {
	e.T.Helper()
	var (
		st  *sqlstore.Store
		sub Subscriber
		err error
	)
	if e.opts.Open != nil {
		st, sub, err = e.opts.Open(e.Ctx)
	} else {
		st, err = sqlite.Open(e.Ctx, e.Path, e.opts.SQLite)
		sub = st
	}
	if err != nil {
		e.T.Fatal(err)
	}
	e.Store = st
	// A subscription of its own, which ends before the store closes: a listener holds a
	// connection of the store until then.
	var ctx context.Context
	ctx, e.unsubscribe = context.WithCancel(e.ending)
	sub.Subscribe(ctx, e.commit)
	e.Service = service.New(service.Config{Store: st, Box: e.Box, NowFunc: e.Clock.Now, Logger: e.opts.Logger})
}

// Reopen closes the store and opens the database (file) again, with a new Service over it,
// as a restarted process does; the commits of the new store wake the services as before.
// What holds the old store or service keeps it: stop (or abort) a service before, and
// build its successor on the new Store and Service.
func (e *Env) Reopen() {
	e.T.Helper()
	e.unsubscribe()
	if err := e.Store.Close(); err != nil {
		e.T.Fatalf("close store: %v", err)
	}
	e.open()
}

// NewBox returns a secret box with a random key.
func NewBox(t testing.TB) *secret.Box {
	t.Helper()
	key := make([]byte, secret.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// NewStore opens a fresh SQLite store in t.TempDir(), closed when the test ends.
func NewStore(t testing.TB, opts sqlite.Options) *sqlstore.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ubihooks.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// commit wakes the services that wait for work on channel, as serve does.
func (e *Env) commit(channel ubihooks.Channel) {
	e.mu.Lock()
	wakes := e.wakes
	e.mu.Unlock()
	for _, w := range wakes {
		if len(w.channels) == 0 {
			w.s.Notify()
			continue
		}
		for _, c := range w.channels {
			if c == channel {
				w.s.Notify()
				break
			}
		}
	}
	e.Changed.Signal()
}

// Run starts s, makes the commits on the given store channels (ubihooks.ChannelRequests,
// ubihooks.ChannelDeliveries; every commit when none is given) wake it, and wakes it once.
// The Env stops s at the end of the test, before the services started earlier; a test may
// stop it sooner, since stopping twice does nothing.
func (e *Env) Run(s Service, channels ...ubihooks.Channel) {
	e.T.Helper()
	e.mu.Lock()
	e.wakes = append(e.wakes, wake{s: s, channels: channels})
	e.runs = append(e.runs, s)
	e.mu.Unlock()
	if err := s.Start(e.Ctx); err != nil {
		e.T.Fatalf("start %T: %v", s, err)
	}
	s.Notify()
}

// Defer runs f at the end of the test, after the services stopped and before the store
// closes; later calls run first.
func (e *Env) Defer(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.defers = append(e.defers, f)
}

// Done is closed when the test's cleanup begins: scripted receivers and backends that hold
// a call give up then.
func (e *Env) Done() <-chan struct{} { return e.ending.Done() }

// Errorf records a failure seen off the test goroutine; the cleanup reports it.
func (e *Env) Errorf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

// Until waits until cond holds, checking it again whenever Changed is signalled, and fails
// the test after within.
func (e *Env) Until(within time.Duration, what string, cond func() bool) {
	e.T.Helper()
	e.Changed.Until(e.T, within, what, cond)
}

// Close ends the Env now rather than at the end of the test, to look at the database
// files as a stopped process leaves them, say: it stops the services (newest first), runs
// the deferred work, reports the failures seen off the test goroutine and closes the
// store. Only the first call does anything; the test's cleanup calls it.
func (e *Env) Close() { e.closed.Do(e.close) }

func (e *Env) close() {
	e.end()
	e.mu.Lock()
	runs, defers := e.runs, e.defers
	e.mu.Unlock()
	for i := len(runs) - 1; i >= 0; i-- {
		ctx, cancel := context.WithTimeout(context.Background(), StopGrace)
		if err := runs[i].Stop(ctx); err != nil {
			e.T.Errorf("stop %T: %v", runs[i], err)
		}
		cancel()
	}
	for i := len(defers) - 1; i >= 0; i-- {
		defers[i]()
	}
	e.mu.Lock()
	for _, msg := range e.errs {
		e.T.Error(msg)
	}
	e.mu.Unlock()
	e.checkLeases()
	if err := e.Store.Close(); err != nil {
		e.T.Errorf("close store: %v", err)
	}
}

// checkLeases fails the test if, whatever it did, a delivery holds a lease without
// sending: the store records outcomes by lease owner alone, which is right only while
// claims and dispatch are what set an owner (with the status sending) and every other
// change of status clears it. (A store the test broke on purpose answers an error, and
// is not checked.)
func (e *Env) checkLeases() {
	var n int
	err := e.Store.DB().QueryRowContext(context.Background(),
		`SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL AND status <> 'sending'`).Scan(&n)
	if err == nil && n > 0 {
		e.T.Errorf("%d deliveries hold a lease without sending", n)
	}
}

// Object creates a deployment or pipeline with structured input and output (no fields)
// and the given versions, the first of them the default, and returns it as stored.
func (e *Env) Object(t ubihooks.ObjectType, name string, versions ...string) *ubihooks.Object {
	e.T.Helper()
	o, err := e.Service.CreateObject(e.Ctx, e.Project.ID, t, ubihooks.ObjectCreate{Name: name,
		InputType: ubihooks.TypeStructured, OutputType: ubihooks.TypeStructured})
	if err != nil {
		e.T.Fatal(err)
	}
	for _, v := range versions {
		if _, err := e.Service.CreateVersion(e.Ctx, o, ubihooks.VersionCreate{Version: v}); err != nil {
			e.T.Fatal(err)
		}
	}
	if o, err = e.Service.GetObject(e.Ctx, e.Project.ID, t, name); err != nil {
		e.T.Fatal(err)
	}
	return o
}

// Version returns a version of o.
func (e *Env) Version(o *ubihooks.Object, name string) *ubihooks.Version {
	e.T.Helper()
	v, err := e.Service.GetVersion(e.Ctx, o, name)
	if err != nil {
		e.T.Fatal(err)
	}
	return v
}

// Webhook creates a webhook in the project.
func (e *Env) Webhook(in ubihooks.WebhookCreate) *ubihooks.Webhook {
	e.T.Helper()
	w, err := e.Service.CreateWebhook(e.Ctx, e.Project.ID, in)
	if err != nil {
		e.T.Fatal(err)
	}
	return w
}
