package delivery

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// failingSigner fails every signature.
type failingSigner struct{}

func (failingSigner) Sign(*http.Request, []byte) error { return errors.New("no") }

// TestSenderAttempt makes single attempts against a real receiver: what it sends (headers,
// signature, body) and what it makes of each way an attempt can end before or after the
// call.
func TestSenderAttempt(t *testing.T) {
	t.Parallel()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	verifier := &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{"k1": pub}}
	client := outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	t.Cleanup(client.CloseIdleConnections)

	headers := []ubihooks.Header{{Key: "X-Secret", Value: "s3cr3t", Protected: true}, {Key: "X-Plain", Value: "plain"}}
	opened := func(hs []ubihooks.Header) ([]ubihooks.Header, error) { return hs, nil }
	signers := httpsigSigners(func(context.Context) (ed25519.PrivateKey, string, error) { return key, "k1", nil }, time.Now)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name        string
		path        string
		url         string
		timeout     time.Duration
		ctx         context.Context
		openHeaders func([]ubihooks.Header) ([]ubihooks.Header, error)
		signerFunc  func(context.Context) (signer, error)
		wantClass   string
		wantError   string // a part of it
		wantBody    string
		wantCall    bool
	}{
		{name: "answered", path: "/ok", wantBody: "key was [redacted]", wantCall: true},
		{name: "headers cannot be opened", path: "/ok", wantClass: ubihooks.ClassOther, wantError: "protected header cannot be decrypted",
			openHeaders: func([]ubihooks.Header) ([]ubihooks.Header, error) { return nil, errors.New("sealed") }},
		{name: "no signing key", path: "/ok", wantClass: ubihooks.ClassOther, wantError: "(signing key unavailable)",
			signerFunc: func(context.Context) (signer, error) { return nil, errors.New("no key") }},
		{name: "signing fails", path: "/ok", wantClass: ubihooks.ClassOther, wantError: "the server could not sign the webhook",
			signerFunc: func(context.Context) (signer, error) { return failingSigner{}, nil }},
		{name: "invalid URL", url: "http://[::1", wantClass: ubihooks.ClassOther, wantError: "the webhook URL is not valid"},
		{name: "timeout", path: "/stall", timeout: 50 * time.Millisecond, wantClass: ubihooks.ClassTimeout,
			wantError: "no response within the webhook's timeout of 50ms", wantCall: true},
		{name: "cut by a stop", path: "/ok", ctx: canceled, wantClass: ubihooks.ClassOther, wantError: "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, arrivals := signedReceiver(t, verifier)
			s := sender{client: client, openHeaders: opened, signerFunc: signers, userAgent: "ubihooks/test",
				now: time.Now, logger: slog.New(slog.DiscardHandler)}
			if tt.openHeaders != nil {
				s.openHeaders = tt.openHeaders
			}
			if tt.signerFunc != nil {
				s.signerFunc = tt.signerFunc
			}
			d := &ubihooks.Delivery{ID: "d1", EventID: "ev-1", URL: srv.URL + tt.path, Headers: headers, Timeout: cmp.Or(tt.timeout, 5*time.Second)}
			if tt.url != "" {
				d.URL = tt.url
			}
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx
			}
			res := s.attempt(ctx, d, []byte(`{"id":"ev-1"}`))
			if res.ErrorClass != tt.wantClass || !strings.Contains(res.Error, tt.wantError) || res.Body != tt.wantBody {
				t.Errorf("attempt = class %q error %q body %q, want %q, an error with %q, body %q",
					res.ErrorClass, res.Error, res.Body, tt.wantClass, tt.wantError, tt.wantBody)
			}
			if strings.Contains(res.Body+res.Error, "s3cr3t") {
				t.Errorf("the result carries the protected value: %+v", res)
			}
			var a seen
			select {
			case a = <-arrivals:
			default:
				if tt.wantCall {
					t.Fatal("the receiver got no call")
				}
				return
			}
			if !tt.wantCall {
				t.Fatal("the receiver got a call, want none")
			}
			if a.sigErr != nil {
				t.Errorf("signature does not verify: %v", a.sigErr)
			}
			for h, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "ubihooks/test",
				"Idempotency-Key": "ev-1", "X-Secret": "s3cr3t", "X-Plain": "plain"} {
				if got := a.header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			if a.body != `{"id":"ev-1"}` {
				t.Errorf("body %q", a.body)
			}
		})
	}
}

// seen is a request as signedReceiver saw it.
type seen struct {
	header http.Header
	body   string
	sigErr error
}

// signedReceiver answers "key was <X-Secret>", or at /stall nothing until the caller hangs
// up, and passes on each request it got with the verdict of verifier.
func signedReceiver(t *testing.T, verifier *httpsig.Verifier) (*httptest.Server, chan seen) {
	t.Helper()
	arrivals := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, sigErr := verifier.Verify(r, body)
		arrivals <- seen{r.Header.Clone(), string(body), sigErr}
		if r.URL.Path == "/stall" {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "key was "+r.Header.Get("X-Secret"))
	}))
	t.Cleanup(srv.Close)
	return srv, arrivals
}

// TestSenderOutcome: what an attempt's result means for its delivery, by the retry policy.
func TestSenderOutcome(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	end := start.Add(250 * time.Millisecond)
	fail := outbound.Result{StatusCode: 500, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 500"}
	tests := []struct {
		name       string
		attempts   int
		retryBase  int
		retry      bool
		res        outbound.Result
		wantStatus ubihooks.DeliveryStatus
		wantNext   time.Time
	}{
		{"success", 0, 0, true, outbound.Result{StatusCode: 204}, ubihooks.DeliverySucceeded, time.Time{}},
		{"success after retries", 2, 0, true, outbound.Result{StatusCode: 200, Body: "ok"}, ubihooks.DeliverySucceeded, time.Time{}},
		{"failure with retry", 0, 0, true, fail, ubihooks.DeliveryPending, end.Add(100 * time.Millisecond)},
		{"failure without retry", 0, 0, false, fail, ubihooks.DeliveryFailed, time.Time{}},
		{"last attempt", 3, 0, true, fail, ubihooks.DeliveryFailed, time.Time{}},
		{"Retry-After", 1, 0, true, outbound.Result{StatusCode: 429, ErrorClass: ubihooks.ClassHTTPStatus, RetryAfter: 2 * time.Second},
			ubihooks.DeliveryPending, end.Add(2 * time.Second)},
		{"refused by policy", 0, 0, true, outbound.Result{ErrorClass: ubihooks.ClassRefusedByPolicy}, ubihooks.DeliveryFailed, time.Time{}},
		// A redelivery gets its full schedule again, counted from its attempts before.
		{"redelivered, first retry", 4, 4, true, fail, ubihooks.DeliveryPending, end.Add(100 * time.Millisecond)},
		{"redelivered, last attempt", 7, 4, true, fail, ubihooks.DeliveryFailed, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := sender{retry: fastRetry(), owner: "engine-1"}
			d := &ubihooks.Delivery{ID: "d1", Attempts: tt.attempts, RetryBase: tt.retryBase, Retry: tt.retry}
			o := s.outcome(d, tt.res, start, end)
			if o.Status != tt.wantStatus || !o.NextAttemptAt.Equal(tt.wantNext) {
				t.Errorf("outcome %s, next attempt at %s; want %s at %s", o.Status, o.NextAttemptAt, tt.wantStatus, tt.wantNext)
			}
			a := o.Attempt
			if o.DeliveryID != "d1" || o.Owner != "engine-1" || a.DeliveryID != "d1" || a.Number != tt.attempts+1 ||
				!a.StartedAt.Equal(start) || a.Duration != 250*time.Millisecond || a.StatusCode != tt.res.StatusCode ||
				a.ErrorClass != tt.res.ErrorClass || a.Error != tt.res.Error || a.ResponseBody != tt.res.Body {
				t.Errorf("outcome %+v does not record the attempt of %+v", o, tt.res)
			}
		})
	}
}

// TestRedirectIsSuccess: a 3xx counts as success and is not followed.
func TestRedirectIsSuccess(t *testing.T) {
	t.Parallel()
	e := setup(t)
	target := e.receiver(nil)
	rc := e.receiver(func(_ *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/landing", http.StatusFound)
	})
	w := e.hook(rc.URL+"/", retry(true))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	if ds[0].Status != ubihooks.DeliverySucceeded || len(as[0]) != 1 {
		t.Fatalf("delivery %s with %d attempts, want succeeded after 1", ds[0].Status, len(as[0]))
	}
	if a := as[0][0]; a.StatusCode != http.StatusFound || a.ErrorClass != "" {
		t.Errorf("attempt: %d class %q, want 302 success", a.StatusCode, a.ErrorClass)
	}
	if n := target.Count(); n != 0 {
		t.Errorf("the Location target received %d requests, want 0", n)
	}
	if n := rc.Count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestTimeoutCutsAttempt: a receiver that never answers is cut at the webhook's timeout.
func TestTimeoutCutsAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var cut atomic.Bool
	rc := e.receiver(func(_ *ubihookstest.Arrival, _ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the client gives up, or the test ends
		cut.Store(r.Context().Err() != nil)
	})
	w := e.hook(rc.URL+"/", timeoutSecs(1))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	if ds[0].Status != ubihooks.DeliveryFailed || len(as[0]) != 1 {
		t.Fatalf("delivery %s with %d attempts, want failed after 1", ds[0].Status, len(as[0]))
	}
	a := as[0][0]
	if a.ErrorClass != ubihooks.ClassTimeout || a.StatusCode != 0 {
		t.Errorf("attempt class %q status %d, want timeout", a.ErrorClass, a.StatusCode)
	}
	if a.Duration < time.Second || a.Duration > 1800*time.Millisecond {
		t.Errorf("attempt took %s, want about the 1s timeout", a.Duration)
	}
	if !strings.Contains(a.Error, "1s") {
		t.Errorf("error %q does not name the webhook's timeout", a.Error)
	}
	e.Until(5*time.Second, "the receiver to see the cut", cut.Load)
}
