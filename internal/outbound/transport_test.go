package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// countingServer is an httptest server that counts the requests it receives.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// get sends a GET with a deadline and classifies the outcome; it also returns how long the
// call took and its error.
func get(t *testing.T, client *http.Client, rawURL string, timeout time.Duration) (Result, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatalf("NewRequest(%q): %v", rawURL, err)
	}
	start := time.Now()
	resp, err := client.Do(req)
	res := Classify(resp, err, time.Now())
	return res, time.Since(start), err
}

func TestTransportRefusesNonPublic(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	client := NewClient(NewTransport(TransportConfig{}))

	tests := []struct{ name, host string }{
		{"loopback literal", "127.0.0.1"},
		{"loopback name", "localhost"},
		{"loopback other", "127.1.2.3"},
		{"private 10/8", "10.0.0.1"},
		{"private 192.168/16", "192.168.1.1"},
		{"private 172.16/12", "172.16.0.1"},
		{"CGNAT", "100.64.0.1"},
		{"metadata", "169.254.169.254"},
		{"unspecified", "0.0.0.0"},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]"},
		{"IPv6 loopback", "[::1]"},
		{"IPv6 metadata", "[fd00:ec2::254]"},
		{"IPv6 link-local", "[fe80::1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := "http://" + tt.host + ":" + strconv.Itoa(port) + "/"
			res, elapsed, err := get(t, client, u, 5*time.Second)
			if !errors.Is(err, ErrRefusedByPolicy) {
				t.Fatalf("GET %s: err = %v, want one wrapping ErrRefusedByPolicy", u, err)
			}
			if elapsed > time.Second {
				t.Errorf("GET %s took %v, want a refusal before connecting (well under 1s)", u, elapsed)
			}
			if res.ErrorClass != ubihooks.ClassRefusedByPolicy {
				t.Errorf("class = %q, want %q", res.ErrorClass, ubihooks.ClassRefusedByPolicy)
			}
			if ip := strings.Trim(tt.host, "[]"); strings.Contains(res.Error, ip) || strings.Contains(res.Error, "127.0.0.1") {
				t.Errorf("error %q reveals the address", res.Error)
			}
		})
	}
	t.Cleanup(func() {
		if n := hits.Load(); n != 0 {
			t.Errorf("server received %d requests, want 0", n)
		}
	})
}

func TestTransportAllowNetworks(t *testing.T) {
	t.Parallel()
	srv, hits := countingServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	allow, err := ParseNetworks("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(NewTransport(TransportConfig{AllowNetworks: allow}))

	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		res, _, err := get(t, client, u, 5*time.Second)
		if err != nil || res.StatusCode != 200 || res.Body != "hi" {
			t.Errorf("GET %s = %+v, %v; want 200 \"hi\"", u, res, err)
		}
	}
	if got := hits.Load(); got != 2 {
		t.Errorf("server hits = %d, want 2", got)
	}
	// Allowing loopback allows nothing else.
	for _, host := range []string{"10.0.0.1", "169.254.169.254", "192.168.0.1"} {
		u := "http://" + host + ":" + port + "/"
		if _, elapsed, err := get(t, client, u, 5*time.Second); !errors.Is(err, ErrRefusedByPolicy) || elapsed > time.Second {
			t.Errorf("GET %s: err = %v after %v, want ErrRefusedByPolicy at once", u, err, elapsed)
		}
	}
}

func TestTransportAllowMappedPrefix(t *testing.T) {
	t.Parallel()
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	allow, err := ParseNetworks("::ffff:127.0.0.0/104")
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(NewTransport(TransportConfig{AllowNetworks: allow}))
	if res, _, err := get(t, client, srv.URL, 5*time.Second); err != nil || res.StatusCode != 200 {
		t.Errorf("GET %s with %v allowed = %+v, %v; want 200", srv.URL, allow, res, err)
	}
}

func TestTransportPolicyAddresses(t *testing.T) {
	t.Parallel()
	p := newPolicy([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd12::/16")})
	tests := []struct {
		network, addr string
		allowed       bool
	}{
		{"tcp4", "8.8.8.8:443", true},
		{"tcp4", "93.184.215.14:8080", true},
		{"tcp6", "[2606:4700:4700::1111]:443", true},
		{"tcp4", "10.1.2.3:80", true},          // allow-listed
		{"tcp6", "[fd12::1]:80", true},         // allow-listed
		{"tcp6", "[::ffff:10.1.0.9]:80", true}, // allow-listed, IPv4-mapped
		{"tcp4", "10.2.0.1:80", false},
		{"tcp4", "127.0.0.1:80", false},
		{"tcp4", "169.254.169.254:80", false},
		{"tcp6", "[fd00:ec2::254]:80", false},
		{"tcp6", "[fd13::1]:80", false},
		{"tcp6", "[::1]:80", false},
		{"tcp6", "[::]:80", false},
		{"tcp6", "[fe80::1]:80", false},
		{"tcp6", "[ff02::1]:80", false},
		{"tcp6", "[::ffff:127.0.0.1]:80", false},
		{"tcp6", "[::ffff:169.254.169.254]:80", false},
		{"tcp4", "100.100.100.200:80", false}, // CGNAT (and Alibaba metadata)
		{"tcp4", "224.0.0.1:80", false},
		{"tcp4", "255.255.255.255:80", false},
		{"tcp4", "0.0.0.0:80", false},
		{"udp4", "8.8.8.8:53", false},
	}
	for _, tt := range tests {
		err := p.control(tt.network, tt.addr, nil)
		if got := err == nil; got != tt.allowed {
			t.Errorf("control(%s, %s) = %v, want allowed %v", tt.network, tt.addr, err, tt.allowed)
		}
		if err != nil && !errors.Is(err, ErrRefusedByPolicy) {
			t.Errorf("control(%s, %s) = %v, want one wrapping ErrRefusedByPolicy", tt.network, tt.addr, err)
		}
	}
}

func TestTransportSettings(t *testing.T) {
	t.Parallel()
	tr := NewTransport(TransportConfig{})
	if tr.Proxy != nil {
		t.Error("Proxy is set, want none by default (environment ignored)")
	}
	if tr.DisableKeepAlives {
		t.Error("keep-alives disabled, want on")
	}
	if got, want := tr.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost; got != want {
		t.Errorf("MaxIdleConnsPerHost = %d, want %d", got, want)
	}
	if tr.ResponseHeaderTimeout != 0 {
		t.Errorf("ResponseHeaderTimeout = %v, want 0 (the context bounds the call)", tr.ResponseHeaderTimeout)
	}
	if got := tr.TLSClientConfig.MinVersion; got != tls.VersionTLS12 {
		t.Errorf("TLS MinVersion = %x, want TLS 1.2", got)
	}
	if !tr.ForceAttemptHTTP2 {
		t.Error("ForceAttemptHTTP2 = false, want HTTP/2 allowed")
	}

	proxy := func(*http.Request) (*url.URL, error) { return nil, nil }
	tr = NewTransport(TransportConfig{Proxy: proxy, MaxConnsPerHost: 8, MaxIdleConnsPerHost: 4})
	if tr.Proxy == nil || tr.MaxConnsPerHost != 8 || tr.MaxIdleConnsPerHost != 4 {
		t.Errorf("configured transport: proxy set %v, MaxConnsPerHost %d, MaxIdleConnsPerHost %d; want true, 8, 4",
			tr.Proxy != nil, tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost)
	}
}

func TestTransportHTTP2AndTrustedTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	client := NewClient(NewTransport(TransportConfig{AllowNetworks: loopback, RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}))
	res, _, err := get(t, client, srv.URL, 5*time.Second)
	if err != nil || res.StatusCode != 200 || res.Body != "HTTP/2.0" {
		t.Errorf("GET %s = %+v, %v; want 200 over HTTP/2.0", srv.URL, res, err)
	}
}

func TestTransportReusesConnections(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 20000) // over MaxAttemptBody, under the drain bound
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	client := NewClient(NewTransport(TransportConfig{AllowNetworks: loopback}))

	var reused []bool
	for range 3 {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		res := Classify(resp, err, time.Now())
		if res.StatusCode != 200 || len(res.Body) != ubihooks.MaxAttemptBody {
			t.Fatalf("GET = status %d, body %d bytes; want 200, %d bytes", res.StatusCode, len(res.Body), ubihooks.MaxAttemptBody)
		}
	}
	if want := []bool{false, true, true}; !slices.Equal(reused, want) {
		t.Errorf("connection reused = %v, want %v", reused, want)
	}
}

func TestParseNetworks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "127.0.0.0/8,10.1.0.0/16,::1/128", want: []string{"127.0.0.0/8", "10.1.0.0/16", "::1/128"}},
		{in: " 127.0.0.0/8 , fd00::/8 ", want: []string{"127.0.0.0/8", "fd00::/8"}},
		{in: "10.1.2.3", want: []string{"10.1.2.3/32"}},
		{in: "::1", want: []string{"::1/128"}},
		{in: "::ffff:10.0.0.1", want: []string{"10.0.0.1/32"}},
		{in: "::ffff:10.0.0.0/104", want: []string{"10.0.0.0/8"}},
		{in: "0.0.0.0/0", want: []string{"0.0.0.0/0"}},
		{in: "10.1.2.3/16", wantErr: `did you mean 10.1.0.0/16?`},
		{in: "127.0.0.0/8,", wantErr: "entry 2 is empty"},
		{in: "10.0.0.0/33", wantErr: `entry 1: "10.0.0.0/33" is not a network in CIDR notation`},
		{in: "127.0.0.0/8,example.com", wantErr: `entry 2: "example.com" is neither an IP address nor a network`},
		{in: "fe80::1%eth0", wantErr: "is neither an IP address"},
		{in: "10.0.0.0/8;192.168.0.0/16", wantErr: "is not a network in CIDR notation"},
	}
	for _, tt := range tests {
		got, err := ParseNetworks(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseNetworks(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseNetworks(%q) error = %v", tt.in, err)
			continue
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if !slices.Equal(gotS, tt.want) {
			t.Errorf("ParseNetworks(%q) = %v, want %v", tt.in, gotS, tt.want)
		}
	}
}

// quietLog discards a test server's log (expected TLS handshake errors).
var quietLog = log.New(io.Discard, "", 0)
