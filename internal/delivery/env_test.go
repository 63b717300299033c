package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/postgres"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// testUA is the User-Agent the test engines send, as serve.go builds it ("ubihooks/" + version).
const testUA = "ubihooks/1.2.3-test"

// fastRetry is the retry policy of test engines: three retries 100ms apart, no jitter.
func fastRetry() RetryPolicy {
	return RetryPolicy{Schedule: []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}}
}

// env is the setup(t) bundle: a ubihookstest.Env (real SQLite in t.TempDir() unless
// withStore says otherwise, the real service with a secret box and a signing key, project
// "acme") with a deployment (versions v1 = default and v2), the experiments deployment
// (exp-a = default, exp-b) and a pipeline (p1), and engines wired as
// cmd/ubihooks/serve.go wires them. The Env's cleanup stops the engines, then the
// receivers, then closes the store.
type env struct {
	*ubihookstest.Env
	t     *testing.T
	logs  *ubihookstest.SyncBuffer
	log   *slog.Logger
	allow []netip.Prefix

	dep   *ubihooks.Object // "scorer": v1 (default), v2
	train *ubihooks.Object // training-base-deployment: exp-a (default), exp-b
	pipe  *ubihooks.Object // "flow": p1

	mu      sync.Mutex
	engines int
	hooks   int
}

type option func(*env, *ubihookstest.Options)

// noAllowedNetworks makes engines use the SSRF policy without exceptions (loopback refused).
func noAllowedNetworks(e *env, _ *ubihookstest.Options) { e.allow = nil }

// withClock sets the clock of the service, the engines and the verifier.
func withClock(c *ubihookstest.Clock) option {
	return func(_ *env, o *ubihookstest.Options) { o.Clock = c }
}

// withStore makes the Env open its store with open instead of SQLite in t.TempDir().
func withStore(open func(context.Context) (*sqlstore.Store, ubihookstest.Subscriber, error)) option {
	return func(_ *env, o *ubihookstest.Options) { o.Open = open }
}

// stores returns, for each store under test (SQLite, and PostgreSQL in a schema of its
// own when UBIHOOKS_TEST_POSTGRES_URL is set), the options of setup that put the Env on
// it.
func stores(t *testing.T) map[string]func(t *testing.T) []option {
	t.Helper()
	out := map[string]func(t *testing.T) []option{"sqlite": func(*testing.T) []option { return nil }}
	if base := ubihookstest.PostgresBase(t); base != "" {
		out["postgres"] = func(t *testing.T) []option {
			url := ubihookstest.PostgresSchema(t, base)
			return []option{withStore(func(ctx context.Context) (*sqlstore.Store, ubihookstest.Subscriber, error) {
				db, err := postgres.Open(ctx, url, postgres.Options{})
				if err != nil {
					return nil, nil, err
				}
				return db.Store, db, nil
			})}
		}
	}
	return out
}

func setup(t *testing.T, opts ...option) *env {
	t.Helper()
	e := &env{t: t, logs: &ubihookstest.SyncBuffer{}, allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	e.log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := ubihookstest.Options{Project: "acme", Logger: e.log.With("component", "service")}
	for _, f := range opts {
		f(e, &o)
	}
	e.Env = ubihookstest.New(t, o)
	e.dep = e.Object(ubihooks.ObjectDeployment, "scorer", "v1", "v2")
	e.train = e.Object(ubihooks.ObjectDeployment, ubihooks.TrainingDeployment, "exp-a", "exp-b")
	e.pipe = e.Object(ubihooks.ObjectPipeline, "flow", "p1")
	return e
}

// engineConfig is the configuration serve.go builds, with short intervals for tests.
func (e *env) engineConfig() Config {
	e.mu.Lock()
	n := e.engines
	e.mu.Unlock()
	return Config{
		Store:           e.Store,
		Client:          outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: e.allow})),
		SignerFunc:      e.Service.Signer,
		OpenHeadersFunc: e.Service.OpenHeaders,
		Owner:           fmt.Sprintf("test-engine-%d-%s", n, uuid.NewString()[:8]),
		Lease:           5 * time.Second,
		PollInterval:    50 * time.Millisecond,
		RescueInterval:  100 * time.Millisecond,
		FlushInterval:   2 * time.Millisecond,
		Retry:           fastRetry(),
		UserAgent:       testUA,
		Logger:          e.log.With("component", "delivery"),
		NowFunc:         e.Clock.Now,
		OnRecordFunc:    func([]ubihooks.Outcome) { e.Changed.Signal() },
	}
}

// start starts an engine with the test configuration changed by mods, its test signals
// armed; every commit wakes it, and the Env stops it at the end of the test.
func (e *env) start(mods ...func(*Config)) *Engine {
	e.t.Helper()
	cfg := e.engineConfig()
	for _, m := range mods {
		m(&cfg)
	}
	eng := NewEngine(cfg)
	eng.TestSignals.Init()
	e.mu.Lock()
	e.engines++
	e.mu.Unlock()
	// As the server does: events emitted from now on are dispatched to this engine;
	// those emitted before wait for its claims.
	e.Store.SetDispatcher(eng)
	e.Defer(cfg.Client.CloseIdleConnections)
	e.Run(eng)
	return eng
}

// receiver starts a receiver of the Env that answers with respond (nil: 200).
func (e *env) receiver(respond ubihookstest.Responder) *ubihookstest.Receiver {
	return e.Receiver(ubihookstest.ReceiverConfig{Respond: respond})
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
	return e.Webhook(in)
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
	n, err := e.Service.RecordTransition(e.Ctx, e.Project, service.Transition{ObjectType: t, ObjectName: object, Version: version,
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
	ds, err := e.Service.ListDeliveries(e.Ctx, e.Project.ID, w.Name, service.DeliveryQuery{Limit: service.MaxDeliveryLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

func (e *env) delivery(w *ubihooks.Webhook, id string) (*ubihooks.Delivery, []*ubihooks.Attempt) {
	e.t.Helper()
	d, as, err := e.Service.GetDelivery(e.Ctx, e.Project.ID, w.Name, id)
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
	e.Until(within, fmt.Sprintf("%d finished deliveries of %s", n, w.Name), func() bool {
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
