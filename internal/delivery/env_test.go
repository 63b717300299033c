package delivery

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/secret"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// testUA is the User-Agent the test engines send, as serve.go builds it ("ubihooks/" + version).
const testUA = "ubihooks/1.2.3-test"

// fastRetry is the retry policy of test engines: three retries 100ms apart, no jitter.
func fastRetry() RetryPolicy {
	return RetryPolicy{Schedule: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}}
}

// env is the setup(t) bundle: real SQLite in t.TempDir(), the real service with a
// secret.Box and a signing key, one project with a deployment (versions v1 = default and
// v2), the experiments deployment (exp-a = default, exp-b) and a pipeline (p1), plus
// receivers and engines wired as cmd/ubihooks/serve.go wires them. Everything is stopped
// and closed by one cleanup: engines first, then receivers, then the store.
type env struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	path  string
	box   *secret.Box
	st    *sqlstore.Store
	svc   *service.Service
	logs  *logBuffer
	log   *slog.Logger
	now   func() time.Time
	allow []netip.Prefix

	project *ubihooks.Project
	dep     *ubihooks.Object // "scorer": v1 (default), v2
	train   *ubihooks.Object // training-base-deployment: exp-a (default), exp-b
	pipe    *ubihooks.Object // "flow": p1
	pub     ed25519.PublicKey
	keyID   string

	verifier *httpsig.Verifier

	mu        sync.Mutex
	engines   []*Engine
	receivers []*receiver
	failures  []string
	hooks     int
	changed   chan struct{} // closed and replaced at each change (see changes)
	quit      chan struct{} // closed at cleanup: stalled receivers give up
}

type option func(*env)

// noAllowedNetworks makes engines use the SSRF policy without exceptions (loopback refused).
func noAllowedNetworks(e *env) { e.allow = nil }

// withClock sets the clock of the service, the engines and the verifier.
func withClock(now func() time.Time) option { return func(e *env) { e.now = now } }

func setup(t *testing.T, opts ...option) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), dir: t.TempDir(), now: time.Now, quit: make(chan struct{}), changed: make(chan struct{}),
		allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, logs: &logBuffer{}}
	for _, o := range opts {
		o(e)
	}
	e.path = filepath.Join(e.dir, "ubihooks.db")
	e.log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	key := make([]byte, secret.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.box, err = secret.New(key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	e.open()
	ctx := e.ctx
	if err := e.svc.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := e.svc.ActiveKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.pub, e.keyID = ed25519.PublicKey(k.PublicKey), k.KeyID
	e.verifier = &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{k.KeyID: e.pub}, Now: e.now}

	if e.project, err = e.svc.CreateProject(ctx, "acme", "acme-org", ""); err != nil {
		t.Fatal(err)
	}
	e.dep = e.object(ubihooks.ObjectDeployment, "scorer", "v1", "v2")
	e.train = e.object(ubihooks.ObjectDeployment, ubihooks.TrainingDeployment, "exp-a", "exp-b")
	e.pipe = e.object(ubihooks.ObjectPipeline, "flow", "p1")
	return e
}

// open opens (or reopens) the store on e.path and a service over it; commits wake the
// engines, as serve.go does with store.Subscribe, and the tests' waits.
func (e *env) open() {
	e.t.Helper()
	st, err := sqlite.Open(e.ctx, e.path, sqlite.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	st.Subscribe(e.ctx, func(ubihooks.Channel) {
		e.mu.Lock()
		for _, eng := range e.engines {
			eng.Notify()
		}
		e.mu.Unlock()
		e.change()
	})
	e.st = st
	e.svc = service.New(service.Config{Store: st, Box: e.box, NowFunc: e.now, Logger: e.log.With("component", "service")})
}

// reopen closes the store and opens the database file again (a restarted process).
func (e *env) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) object(t ubihooks.ObjectType, name string, versions ...string) *ubihooks.Object {
	e.t.Helper()
	o, err := e.svc.CreateObject(e.ctx, e.project.ID, t, ubihooks.ObjectCreate{Name: name, InputType: ubihooks.TypeStructured, OutputType: ubihooks.TypeStructured})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range versions {
		if _, err := e.svc.CreateVersion(e.ctx, o, ubihooks.VersionCreate{Version: v}); err != nil {
			e.t.Fatal(err)
		}
	}
	if o, err = e.svc.GetObject(e.ctx, e.project.ID, t, name); err != nil {
		e.t.Fatal(err)
	}
	return o
}

func (e *env) version(o *ubihooks.Object, name string) *ubihooks.Version {
	e.t.Helper()
	v, err := e.svc.GetVersion(e.ctx, o, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// engineConfig is the configuration serve.go builds, with short intervals for tests.
func (e *env) engineConfig() Config {
	e.mu.Lock()
	n := len(e.engines)
	e.mu.Unlock()
	return Config{
		Store:           e.st,
		Client:          outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: e.allow})),
		SignerFunc:      e.svc.Signer,
		OpenHeadersFunc: e.svc.OpenHeaders,
		Owner:           fmt.Sprintf("test-engine-%d-%s", n, uuid.NewString()[:8]),
		Lease:           5 * time.Second,
		PollInterval:    50 * time.Millisecond,
		RescueInterval:  100 * time.Millisecond,
		FlushInterval:   2 * time.Millisecond,
		Retry:           fastRetry(),
		UserAgent:       testUA,
		Logger:          e.log.With("component", "delivery"),
		NowFunc:         e.now,
		OnRecordFunc:    func([]ubihooks.Outcome) { e.change() },
	}
}

// start starts an engine with the test configuration changed by mods, its test signals
// armed.
func (e *env) start(mods ...func(*Config)) *Engine {
	e.t.Helper()
	cfg := e.engineConfig()
	for _, m := range mods {
		m(&cfg)
	}
	eng := NewEngine(cfg)
	eng.TestSignals.Init()
	e.mu.Lock()
	e.engines = append(e.engines, eng)
	e.mu.Unlock()
	// As the server does: events emitted from now on are dispatched to this engine;
	// those emitted before wait for its claims.
	e.st.SetDispatcher(eng)
	if err := eng.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	eng.Notify()
	return eng
}

func (e *env) close() {
	close(e.quit)
	e.mu.Lock()
	engines, receivers := e.engines, e.receivers
	e.mu.Unlock()
	for _, eng := range engines {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = eng.Stop(ctx)
		cancel()
		eng.cfg.Client.CloseIdleConnections()
	}
	for _, r := range receivers {
		r.srv.Close()
	}
	e.mu.Lock()
	for _, f := range e.failures {
		e.t.Error(f)
	}
	e.mu.Unlock()
	if err := e.st.Close(); err != nil {
		e.t.Errorf("close store: %v", err)
	}
}

// fail records a failure seen off the test goroutine (receivers); it is reported at cleanup.
func (e *env) fail(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures = append(e.failures, fmt.Sprintf(format, args...))
}

// hook creates a webhook on the deployment "scorer" (default version), event completed,
// to url, changed by mods.
func (e *env) hook(url string, mods ...func(*ubihooks.WebhookCreate)) *ubihooks.Webhook {
	e.t.Helper()
	e.mu.Lock()
	e.hooks++
	name := fmt.Sprintf("hook-%d", e.hooks)
	e.mu.Unlock()
	timeout := 2
	in := ubihooks.WebhookCreate{Name: name, ObjectType: "deployment", ObjectName: "scorer", URL: url,
		Event: string(ubihooks.EventDeploymentCompleted), Timeout: &timeout}
	for _, m := range mods {
		m(&in)
	}
	w, err := e.svc.CreateWebhook(e.ctx, e.project.ID, in)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func retry(on bool) func(*ubihooks.WebhookCreate) {
	return func(in *ubihooks.WebhookCreate) { in.Retry = &on }
}

func timeoutSecs(s int) func(*ubihooks.WebhookCreate) {
	return func(in *ubihooks.WebhookCreate) { in.Timeout = &s }
}

func onEvent(objectType, objectName, version string, event ubihooks.EventType) func(*ubihooks.WebhookCreate) {
	return func(in *ubihooks.WebhookCreate) {
		in.ObjectType, in.ObjectName, in.Event = objectType, objectName, string(event)
		in.Version = nil
		if version != "" {
			in.Version = &version
		}
	}
}

// transition records a request status change of an object's version through the service.
func (e *env) transition(t ubihooks.ObjectType, object, version, requestID string, from, to ubihooks.RequestStatus, result json.RawMessage) int {
	e.t.Helper()
	n, err := e.svc.RecordTransition(e.ctx, e.project, service.Transition{ObjectType: t, ObjectName: object, Version: version,
		RequestID: requestID, From: from, To: to, Result: result})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// complete records a new request of scorer (default version) going processing →
// completed and returns its id.
func (e *env) complete() string {
	e.t.Helper()
	id := uuid.NewString()
	e.transition(ubihooks.ObjectDeployment, "scorer", "", id, ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	return id
}

func (e *env) deliveries(w *ubihooks.Webhook) []*ubihooks.Delivery {
	e.t.Helper()
	ds, err := e.svc.ListDeliveries(e.ctx, e.project.ID, w.Name, 500)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

func (e *env) delivery(w *ubihooks.Webhook, id string) (*ubihooks.Delivery, []*ubihooks.Attempt) {
	e.t.Helper()
	d, as, err := e.svc.GetDelivery(e.ctx, e.project.ID, w.Name, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d, as
}

func final(s ubihooks.DeliveryStatus) bool {
	return s == ubihooks.DeliverySucceeded || s == ubihooks.DeliveryFailed
}

// waitDone waits until w has n deliveries, all succeeded or failed, and returns them with
// their attempts (newest delivery first).
func (e *env) waitDone(w *ubihooks.Webhook, n int, within time.Duration) ([]*ubihooks.Delivery, [][]*ubihooks.Attempt) {
	e.t.Helper()
	var ds []*ubihooks.Delivery
	e.waitFor(within, fmt.Sprintf("%d finished deliveries of %s", n, w.Name), func() bool {
		ds = e.deliveries(w)
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if !final(d.Status) {
				return false
			}
		}
		return true
	})
	attempts := make([][]*ubihooks.Attempt, len(ds))
	for i, d := range ds {
		ds[i], attempts[i] = e.delivery(w, d.ID)
	}
	return ds, attempts
}

// changes returns a channel that is closed at the next change a test may wait for: a
// receiver got or answered a request, a commit made work due, an engine recorded outcomes.
func (e *env) changes() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// change tells the waits that something changed.
func (e *env) change() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// waitFor waits until cond holds, checking it again at each change (see changes), and
// fails the test after within. cond may only depend on what changes report.
func (e *env) waitFor(within time.Duration, what string, cond func() bool) {
	e.t.Helper()
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	for {
		changed := e.changes()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			e.t.Fatalf("timed out after %s waiting for %s", within, what)
		}
	}
}
