package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ubihooks/ubihooks"
)

func loopbackClient() *http.Client {
	return NewClient(NewTransport(TransportConfig{AllowNetworks: loopback}))
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	target, targetHits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/200":
			io.WriteString(w, "ok")
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/302":
			http.Redirect(w, r, target.URL+"/landing", http.StatusFound)
		case "/404":
			http.NotFound(w, r)
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/599":
			w.WriteHeader(599)
		case "/429-seconds":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/429-date":
			w.Header().Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
		case "/503-past":
			w.Header().Set("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/503-invalid":
			w.Header().Set("Retry-After", "soon")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/500-retry-after": // only 429 and 503 carry a Retry-After
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	client := loopbackClient()

	tests := []struct {
		path       string
		want       Result
		wantErrMsg string
	}{
		{path: "/200", want: Result{StatusCode: 200, Body: "ok"}},
		{path: "/204", want: Result{StatusCode: 204}},
		{path: "/302", want: Result{StatusCode: 302}},
		{path: "/404", want: Result{StatusCode: 404, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 404 Not Found", Body: "404 page not found\n"}},
		{path: "/500", want: Result{StatusCode: 500, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 500 Internal Server Error", Body: "boom\n"}},
		{path: "/599", want: Result{StatusCode: 599, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered status 599"}},
		{path: "/429-seconds", want: Result{StatusCode: 429, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 429 Too Many Requests (Retry-After 2m0s)", RetryAfter: 2 * time.Minute}},
		{path: "/429-date", want: Result{StatusCode: 429, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 429 Too Many Requests (Retry-After 1m30s)", RetryAfter: 90 * time.Second}},
		{path: "/503-past", want: Result{StatusCode: 503, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 503 Service Unavailable"}},
		{path: "/503-invalid", want: Result{StatusCode: 503, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 503 Service Unavailable"}},
		{path: "/500-retry-after", want: Result{StatusCode: 500, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 500 Internal Server Error"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+tt.path, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			got := Classify(resp, err, now)
			if got != tt.want {
				t.Errorf("Classify(POST %s) =\n %+v\nwant\n %+v", tt.path, got, tt.want)
			}
			if got.OK() != (tt.want.ErrorClass == "") {
				t.Errorf("OK() = %v, want %v", got.OK(), tt.want.ErrorClass == "")
			}
		})
	}
	t.Cleanup(func() {
		if n := targetHits.Load(); n != 0 {
			t.Errorf("redirect target received %d requests, want 0 (redirects must not be followed)", n)
		}
	})
}

func TestClassifyTimeout(t *testing.T) {
	t.Parallel()
	// A receiver that accepts connections and reads requests but never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { io.Copy(io.Discard, c); c.Close() })
		}
	})

	const deadline = 200 * time.Millisecond
	res, elapsed, err := get(t, loopbackClient(), "http://"+ln.Addr().String()+"/", deadline)
	if err == nil {
		t.Fatal("GET of a silent receiver succeeded, want a timeout")
	}
	if elapsed < deadline-50*time.Millisecond || elapsed > deadline+time.Second {
		t.Errorf("the call took %v, want close to the %v deadline", elapsed, deadline)
	}
	t.Logf("%v => %s: %s", err, res.ErrorClass, res.Error)
	if res.ErrorClass != ubihooks.ClassTimeout || res.StatusCode != 0 {
		t.Errorf("Classify(%v) = %+v, want class %q", err, res, ubihooks.ClassTimeout)
	}
	if got, want := res.WithTimeout(10*time.Second).Error, "no response within the webhook's timeout of 10s"; got != want {
		t.Errorf("WithTimeout(10s).Error = %q, want %q", got, want)
	}
}

func TestClassifyTransportErrors(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: listen, then close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	// A receiver that reads each request and closes the connection without answering.
	hangup, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hangup.Close() })
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				http.ReadRequest(bufio.NewReader(c))
			}()
		}
	}()

	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	untrusted.Config.ErrorLog = quietLog
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)

	plain, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})

	tests := []struct {
		name, url string
		class     string
		msg       string
	}{
		{"connection refused", "http://" + closedAddr + "/", ubihooks.ClassConnect, msgConnRefused},
		{"hang-up", "http://" + hangup.Addr().String() + "/", ubihooks.ClassConnect, msgConnClosed},
		{"DNS", "http://example.invalid/hook", ubihooks.ClassDNS, "could not resolve host example.invalid"},
		{"untrusted certificate", untrusted.URL, ubihooks.ClassTLS, "the receiver's TLS certificate is not signed by a trusted certificate authority"},
		{"https to a plain HTTP server", strings.Replace(plain.URL, "http:", "https:", 1), ubihooks.ClassTLS, "the receiver did not answer with TLS (does the URL need http:// instead of https://?)"},
		{"refused by policy", "http://10.0.0.1/", ubihooks.ClassRefusedByPolicy, msgRefused},
	}
	client := loopbackClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, elapsed, err := get(t, client, tt.url, 5*time.Second)
			if err == nil {
				t.Fatalf("GET %s succeeded, want an error", tt.url)
			}
			t.Logf("%v => %s: %s", err, res.ErrorClass, res.Error)
			if res.ErrorClass != tt.class || (tt.msg != "" && res.Error != tt.msg) {
				t.Errorf("Classify(%v) = class %q, error %q; want %q, %q", err, res.ErrorClass, res.Error, tt.class, tt.msg)
			}
			if res.Error == "" || res.StatusCode != 0 || res.Body != "" {
				t.Errorf("Classify(%v) = %+v, want a message, no status and no body", err, res)
			}
			if strings.Contains(res.Error, "127.0.0.1") || strings.Contains(res.Error, "10.0.0.1") || strings.Contains(res.Error, "10.255.") {
				t.Errorf("error %q reveals an internal address", res.Error)
			}
			if elapsed > time.Second {
				t.Errorf("GET %s took %v, want well under 1s", tt.url, elapsed)
			}
		})
	}
}

// TestClassifyErrorTypes covers error types that are hard to provoke with real sockets,
// wrapped the way net and net/http wrap them. The classification must not depend on text.
func TestClassifyErrorTypes(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error {
		return &url.Error{Op: "Post", URL: "http://receiver.example/", Err: &net.OpError{Op: "read", Net: "tcp", Err: err}}
	}
	tests := []struct {
		name  string
		err   error
		class string
	}{
		{"DNS timeout", &net.DNSError{Err: "x", Name: "h.example", IsTimeout: true}, ubihooks.ClassDNS},
		{"dial timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, ubihooks.ClassTimeout},
		{"read timeout", wrap(timeoutErr{}), ubihooks.ClassTimeout},
		{"dial failure", &net.OpError{Op: "dial", Err: errors.New("permission denied")}, ubihooks.ClassConnect},
		{"unexpected EOF", wrap(io.ErrUnexpectedEOF), ubihooks.ClassConnect},
		{"unknown", errors.New("connection refused"), ubihooks.ClassOther}, // text means nothing
		{"policy inside dial", &net.OpError{Op: "dial", Err: ErrRefusedByPolicy}, ubihooks.ClassRefusedByPolicy},
		{"TLS record header", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), ubihooks.ClassTLS},
		{"TLS alert", wrap(tls.AlertError(40)), ubihooks.ClassTLS},
		{"TLS hostname", &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "receiver.example", Certificate: &x509.Certificate{}}}, ubihooks.ClassTLS},
		{"TLS expired", &url.Error{Op: "Post", URL: "https://receiver.example/", Err: x509.CertificateInvalidError{Reason: x509.Expired}}, ubihooks.ClassTLS},
		{"context canceled", &url.Error{Op: "Post", URL: "https://receiver.example/", Err: context.Canceled}, ubihooks.ClassOther},
		{"context deadline", &url.Error{Op: "Post", URL: "https://receiver.example/", Err: context.DeadlineExceeded}, ubihooks.ClassTimeout},
	}
	for _, tt := range tests {
		res := Classify(nil, tt.err, time.Now())
		if res.ErrorClass != tt.class || res.Error == "" {
			t.Errorf("%s: Classify(%v) = %+v, want class %q", tt.name, tt.err, res, tt.class)
		}
		if res.Error == tt.err.Error() {
			t.Errorf("%s: Classify returned the raw error text %q", tt.name, res.Error)
		}
	}
	if res := Classify(nil, nil, time.Now()); res.ErrorClass != ubihooks.ClassOther {
		t.Errorf("Classify(nil, nil) = %+v, want class %q", res, ubihooks.ClassOther)
	}
	if got := (Result{ErrorClass: ubihooks.ClassDNS, Error: "x"}).WithTimeout(time.Second).Error; got != "x" {
		t.Errorf("WithTimeout changed a DNS message to %q", got)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"30", 30 * time.Second},
		{" 30 ", 30 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"99999999999999999999999", maxRetryAfter},
		{"9999999999", maxRetryAfter},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(time.Hour).Format(time.RFC850), time.Hour},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Format(http.TimeFormat), 0},
		{"tomorrow", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	const limit = ubihooks.MaxAttemptBody
	ascii := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name, body, want string
	}{
		{"empty", "", ""},
		{"short", "hello, wörld", "hello, wörld"},
		{"exactly the limit", ascii(limit), ascii(limit)},
		{"over the limit", ascii(limit + 100), ascii(limit)},
		{"2-byte rune cut by the limit", ascii(limit-1) + "é" + "tail", ascii(limit - 1)},
		{"3-byte rune cut by the limit", ascii(limit-2) + "€" + "tail", ascii(limit - 2)},
		{"4-byte rune cut by the limit", ascii(limit-1) + "😀", ascii(limit - 1)},
		{"rune ending at the limit", ascii(limit-2) + "é" + "tail", ascii(limit-2) + "é"},
		{"invalid bytes", "a\xffb\x00c", "a\uFFFDb\uFFFDc"},
		{"invalid bytes near the limit", "\xff" + ascii(limit-1), "\uFFFD" + ascii(limit-3)},
		{"far over the drain bound", ascii(maxDrain * 3), ascii(limit)},
	}
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		for _, tt := range tests {
			if tt.name == r.URL.Query().Get("case") {
				io.WriteString(w, tt.body)
			}
		}
	})
	client := loopbackClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/?case="+url.QueryEscape(tt.name), nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := ReadBody(resp)
			if got != tt.want {
				t.Errorf("ReadBody = %d bytes %q..., want %d bytes %q...", len(got), head(got), len(tt.want), head(tt.want))
			}
			if !utf8.ValidString(got) || len(got) > limit {
				t.Errorf("ReadBody returned %d bytes, valid UTF-8 %v; want at most %d valid bytes", len(got), utf8.ValidString(got), limit)
			}
			if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
				t.Error("body still readable after ReadBody, want it closed")
			}
		})
	}
	if got := ReadBody(nil); got != "" {
		t.Errorf("ReadBody(nil) = %q, want empty", got)
	}
}

func head(s string) string {
	if len(s) > 16 {
		return s[:8] + "…" + s[len(s)-8:]
	}
	return s
}

// TestReadBodyKnownLengths: answers from a real client — empty (204), a short body with its
// length, a body longer than the limit, one without a length — are read as they are, and
// the connection is reused after each.
func TestReadBodyKnownLengths(t *testing.T) {
	long := strings.Repeat("x", ubihooks.MaxAttemptBody+100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/short":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		case "/long":
			_, _ = io.WriteString(w, long)
		case "/chunked":
			_, _ = io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
		}
	}))
	var conns sync.Map
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Store(c, true)
		}
	}
	srv.Start()
	defer srv.Close()
	client := srv.Client()
	for _, tt := range []struct{ path, want string }{
		{"/empty", ""}, {"/short", "hello"}, {"/long", long[:ubihooks.MaxAttemptBody]}, {"/chunked", "part one, part two"}, {"/short", "hello"},
	} {
		resp, err := client.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := ReadBody(resp); got != tt.want {
			t.Errorf("%s: ReadBody = %d bytes %q, want %d bytes", tt.path, len(got), head(got), len(tt.want))
		}
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d connections for five answers read by ReadBody, want 1 (reused)", n)
	}
}
