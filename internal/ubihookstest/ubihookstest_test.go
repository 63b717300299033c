package ubihookstest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/postgres"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

const wait = 10 * time.Second

// send POSTs body to url, signed with key when it is not nil.
func send(t *testing.T, url string, key ed25519.PrivateKey, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != nil {
		if err := (&httpsig.Signer{Key: key}).Sign(req, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(res.Body)
	res.Body.Close()
	return res
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestReceiverResponders: each scripted answer reaches the client as scripted.
func TestReceiverResponders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		respond Responder
		status  []int // per call
		header  map[string]string
	}{
		{name: "default", respond: nil, status: []int{200}},
		{name: "status 410", respond: Status(http.StatusGone), status: []int{410}},
		{name: "status and body", respond: StatusBody(500, "down"), status: []int{500}},
		{name: "script", respond: Script(503, 500, 204), status: []int{503, 500, 204, 204}},
		{name: "redirect", respond: Redirect(http.StatusFound, "/elsewhere"), status: []int{302},
			header: map[string]string{"Location": "/elsewhere"}},
		{name: "retry after", respond: RetryAfter(http.StatusTooManyRequests, 7), status: []int{429},
			header: map[string]string{"Retry-After": "7"}},
		{name: "slow", respond: Slow(time.Millisecond, Status(202)), status: []int{202}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewReceiver(t, ReceiverConfig{Respond: tt.respond})
			for i, want := range tt.status {
				res := send(t, r.URL+"/hook", nil, `{"id":"e1"}`)
				if res.StatusCode != want {
					t.Errorf("call %d: status %d, want %d", i+1, res.StatusCode, want)
				}
				for k, v := range tt.header {
					if got := res.Header.Get(k); got != v {
						t.Errorf("call %d: %s = %q, want %q", i+1, k, got, v)
					}
				}
			}
			if n := r.Count(); n != len(tt.status) {
				t.Errorf("Count = %d, want %d", n, len(tt.status))
			}
		})
	}
}

// TestReceiverHangAndDrop: a hanging receiver holds the call until the client gives up; a
// dropping one closes the connection without an answer.
func TestReceiverHangAndDrop(t *testing.T) {
	t.Parallel()
	hang := NewReceiver(t, ReceiverConfig{Respond: Hang()})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hang.URL, strings.NewReader(`{"id":"e1"}`))
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call to a hanging receiver: %v, want the client's deadline", err)
	}
	hang.Until(t, wait, "the held call to end", func() bool { active, _ := hang.Concurrency(); return active == 0 })

	drop := NewReceiver(t, ReceiverConfig{Respond: Drop()})
	if res, err := http.Post(drop.URL, "application/json", strings.NewReader(`{"id":"e1"}`)); err == nil {
		res.Body.Close()
		t.Errorf("call to a dropping receiver: status %d, want a transport error", res.StatusCode)
	}
}

// TestReceiverChecks: a signed JSON payload passes; an unsigned one, one signed by another
// key, and a body that is not a payload are refused and recorded as failures.
func TestReceiverChecks(t *testing.T) {
	t.Parallel()
	pub, priv := newKey(t)
	_, other := newKey(t)
	var seen []string
	var mu sync.Mutex
	r := newReceiver(ReceiverConfig{
		Verifier:  &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{httpsig.KeyID(pub): pub}},
		Respond:   Status(204),
		OnArrival: func(a *Arrival) { mu.Lock(); seen = append(seen, a.ID()); mu.Unlock() },
	}, nil)
	defer r.close()

	if res := send(t, r.URL+"/ok", priv, `{"id":"good"}`); res.StatusCode != 204 {
		t.Errorf("signed payload: status %d, want 204", res.StatusCode)
	}
	if fs := r.Failures(); len(fs) != 0 {
		t.Fatalf("failures after a good request: %v", fs)
	}
	for _, c := range []struct {
		name, body string
		key        ed25519.PrivateKey
		status     int
		failure    string
	}{
		{"unsigned", `{"id":"u"}`, nil, 401, "signature"},
		{"other key", `{"id":"o"}`, other, 401, "signature"},
		{"not JSON", `nope`, priv, 400, "not a JSON object"},
		{"no id", `{"event":"x"}`, priv, 400, "without id"},
	} {
		before := len(r.Failures())
		if res := send(t, r.URL+"/bad", c.key, c.body); res.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, res.StatusCode, c.status)
		}
		fs := r.Failures()
		if len(fs) != before+1 || !strings.Contains(fs[len(fs)-1], c.failure) {
			t.Errorf("%s: failures %v, want one more naming %q", c.name, fs, c.failure)
		}
	}
	as := r.Arrivals()
	if len(as) != 5 || as[0].Sig == nil || as[0].Sig.KeyID != httpsig.KeyID(pub) || as[1].SigErr == nil || as[0].N != 1 || as[4].N != 5 {
		t.Errorf("arrivals: %d, first %+v", len(as), as[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 5 || seen[0] != "good" || seen[1] != "u" {
		t.Errorf("OnArrival saw %q, want every arrival in order", seen)
	}
}

// TestBackendHold: held calls wait for Release and count as in flight; the model answers
// JSON and text; an error is a 500.
func TestBackendHold(t *testing.T) {
	t.Parallel()
	b := NewBackend(t, BackendConfig{Hold: func(n int) bool { return n <= 2 }, Model: func(in any) (any, error) {
		if s, ok := in.(string); ok {
			return strings.ToUpper(s), nil
		}
		if m, _ := in.(map[string]any); m["fail"] == true {
			return nil, errors.New("model failed")
		}
		return map[string]any{"ok": true}, nil
	}})
	answers := make(chan int, 2)
	for range 2 {
		go func() {
			res, err := http.Post(b.URL, "application/json", strings.NewReader(`{}`))
			if err != nil {
				answers <- 0
				return
			}
			res.Body.Close()
			answers <- res.StatusCode
		}()
	}
	b.WaitHeld(t, wait, 2)
	if n := b.InFlight(); n != 2 {
		t.Errorf("InFlight = %d, want 2", n)
	}
	select {
	case s := <-answers:
		t.Fatalf("a held call answered %d before Release", s)
	default:
	}
	b.Release(2)
	for range 2 {
		if s := <-answers; s != 200 {
			t.Errorf("released call: status %d, want 200", s)
		}
	}
	res, err := http.Post(b.URL, "text/plain", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "ABC" || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("text call: %q (%s), want ABC as text", body, res.Header.Get("Content-Type"))
	}
	res, err = http.Post(b.URL, "application/json", strings.NewReader(`{"fail":true}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 500 {
		t.Errorf("failing model: status %d, want 500", res.StatusCode)
	}
	if b.Calls() != 4 || b.Peak() != 2 {
		t.Errorf("%s, want 4 calls, peak 2", b)
	}
}

// TestProgressAwait: a change wakes every waiter; Await reports false after its timeout.
func TestProgressAwait(t *testing.T) {
	t.Parallel()
	var p Progress
	var mu sync.Mutex
	n := 0
	done := make(chan bool, 2)
	for range 2 {
		go func() { done <- p.Await(wait, func() bool { mu.Lock(); defer mu.Unlock(); return n == 3 }) }()
	}
	for range 3 {
		mu.Lock()
		n++
		mu.Unlock()
		p.Signal()
	}
	for range 2 {
		if !<-done {
			t.Error("a waiter timed out although the condition held")
		}
	}
	if p.Await(time.Millisecond, func() bool { return false }) {
		t.Error("Await of a false condition = true")
	}
}

// TestEnv: a fresh store with a project and its token, a verifier of the active key,
// services run in order and stopped in reverse, deferred work after them.
func TestEnv(t *testing.T) {
	t.Parallel()
	var order []string
	t.Run("env", func(t *testing.T) {
		e := New(t, Options{Project: "p1"})
		if e.Project.Name != "p1" || e.Project.OrganizationName != "p1-org" || !strings.HasPrefix(e.Token, "ubh_") {
			t.Errorf("project %+v, token %q", e.Project, e.Token)
		}
		if _, p, err := e.Service.Authenticate(e.Ctx, "Token "+e.Token, "p1"); err != nil || p.ID != e.Project.ID {
			t.Errorf("the token does not open its project: %v", err)
		}
		if _, ok := e.Verifier.Keys[e.Key.KeyID]; !ok {
			t.Errorf("the verifier lacks the active key %s", e.Key.KeyID)
		}
		o := e.Object(ubihooks.ObjectDeployment, "d", "v1", "v2")
		if o.DefaultVersion != "v1" || e.Version(o, "v2").Name != "v2" {
			t.Errorf("object %+v", o)
		}
		e.Defer(func() { order = append(order, "deferred") })
		for _, name := range []string{"first", "second"} {
			e.Run(&fakeService{name: name, order: &order}, "ubihooks_requests")
		}
		before := e.Clock.Now()
		e.Clock.Advance(time.Hour)
		if d := e.Clock.Now().Sub(before); d < time.Hour {
			t.Errorf("Advance(1h) moved the clock by %s", d)
		}
	})
	if got := strings.Join(order, " "); got != "start first start second stop second stop first deferred" {
		t.Errorf("lifecycle order %q", got)
	}
}

type fakeService struct {
	name  string
	order *[]string
}

func (f *fakeService) Start(context.Context) error {
	*f.order = append(*f.order, "start "+f.name)
	return nil
}
func (f *fakeService) Stop(context.Context) error {
	*f.order = append(*f.order, "stop "+f.name)
	return nil
}
func (f *fakeService) Notify() {}

// TestClockFreeze: a frozen clock stands still at its time until Advance moves it.
func TestClockFreeze(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var c Clock
	c.Advance(time.Hour)
	c.Freeze(at)
	if got := c.Now(); !got.Equal(at) {
		t.Errorf("frozen Now = %s, want %s", got, at)
	}
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(at.Add(time.Minute)) {
		t.Errorf("Now after Advance(1m) = %s, want %s", got, at.Add(time.Minute))
	}
}

// TestEnvReopenAndClose: on each store (SQLite on Path, SQLite and PostgreSQL through
// Options.Open), a reopened store holds what was committed before, its commits still wake
// the services, and Close ends the Env at once and only once.
func TestEnvReopenAndClose(t *testing.T) {
	t.Parallel()
	opens := map[string]func(t *testing.T) (Options, *atomic.Int32){
		"sqlite": func(*testing.T) (Options, *atomic.Int32) { return Options{}, nil },
		"sqlite opened": func(t *testing.T) (Options, *atomic.Int32) {
			path, n := filepath.Join(t.TempDir(), "opened.db"), &atomic.Int32{}
			return Options{Open: func(ctx context.Context) (*sqlstore.Store, Subscriber, error) {
				n.Add(1)
				st, err := sqlite.Open(ctx, path, sqlite.Options{})
				return st, st, err
			}}, n
		},
	}
	if base := PostgresBase(t); base != "" {
		opens["postgres"] = func(t *testing.T) (Options, *atomic.Int32) {
			url, n := PostgresSchema(t, base), &atomic.Int32{}
			return Options{Open: func(ctx context.Context) (*sqlstore.Store, Subscriber, error) {
				n.Add(1)
				db, err := postgres.Open(ctx, url, postgres.Options{})
				if err != nil {
					return nil, nil, err
				}
				return db.Store, db, nil
			}}, n
		}
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts, opened := open(t)
			e := New(t, opts)
			if (e.Path == "") != (opts.Open != nil) {
				t.Errorf("Path %q with Open set: %v", e.Path, opts.Open != nil)
			}
			o := e.Object(ubihooks.ObjectDeployment, "before", "v1")
			s := &countingService{}
			e.Run(s, ubihooks.ChannelRequests)
			old := e.Store
			e.Reopen()
			if e.Store == old {
				t.Fatal("Reopen kept the store")
			}
			if opened != nil && opened.Load() != 2 {
				t.Errorf("Open called %d times by New and Reopen, want 2", opened.Load())
			}
			if _, err := e.Service.GetObject(e.Ctx, e.Project.ID, ubihooks.ObjectDeployment, "before"); err != nil {
				t.Errorf("after Reopen: %v", err)
			}
			before := s.notified.Load()
			if _, err := e.Service.CreateRequests(e.Ctx, service.CreateRequestsParams{Project: e.Project, Object: o,
				Version: e.Version(o, "v1"), Inputs: []json.RawMessage{json.RawMessage(`{}`)}, Timeout: time.Minute}); err != nil {
				t.Fatal(err)
			}
			e.Until(wait, "a commit of the reopened store to wake the service", func() bool { return s.notified.Load() > before })
			e.Close()
			if !s.stopped.Load() {
				t.Error("Close did not stop the service")
			}
			if err := e.Store.DB().Ping(); err == nil {
				t.Error("the store is open after Close")
			}
			e.Close()
		})
	}
}

// TestAPIAuthAndBodies: without a token no Authorization is sent, Header may send any;
// []byte and string bodies go as they are.
func TestAPIAuthAndBodies(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(Obj{"auth": r.Header.Values("Authorization"), "body": string(b)})
	}))
	defer srv.Close()
	a := &API{T: t, URL: srv.URL}
	got := a.MustObj("POST", "/", []byte(`raw`), 200)
	if got["auth"] != nil || got["body"] != "raw" {
		t.Errorf("without a token: %v, want no Authorization and the body as is", got)
	}
	if got := a.As("tok").MustObj("GET", "/", nil, 200); fmt.Sprint(got["auth"]) != "[Token tok]" {
		t.Errorf("with a token: %v, want Authorization: Token tok", got)
	}
	a.Header = http.Header{"Authorization": {"Bearer x"}}
	a.Token = "tok"
	if got := a.Do("POST", "/", "text", "text/plain").Object(t); fmt.Sprint(got["auth"]) != "[Bearer x]" || got["body"] != "text" {
		t.Errorf("with a Header: %v, want its Authorization only", got)
	}
	if got := a.Auth("").MustObj("GET", "/", nil, 200); got["auth"] != nil {
		t.Errorf("Auth(\"\"): %v, want no Authorization", got)
	}
	if got := a.Auth("Basic abc").MustObj("GET", "/", nil, 200); fmt.Sprint(got["auth"]) != "[Basic abc]" {
		t.Errorf("Auth(\"Basic abc\"): %v, want it as it is", got)
	}
	if a.Header.Get("Authorization") != "Bearer x" {
		t.Errorf("Auth changed the client it copies: %v", a.Header)
	}
}

type countingService struct {
	notified atomic.Int64
	stopped  atomic.Bool
}

func (s *countingService) Start(context.Context) error { return nil }
func (s *countingService) Stop(context.Context) error  { s.stopped.Store(true); return nil }
func (s *countingService) Notify()                     { s.notified.Add(1) }
