package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// probe GETs a health endpoint and returns its status and JSON body.
func probe(t *testing.T, method, u string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var out map[string]string
	_ = json.Unmarshal(body, &out)
	return res.StatusCode, out
}

func TestHealthProbes(t *testing.T) {
	t.Parallel()
	addr, _ := startServe(t)
	base := "http://" + addr
	if code, body := probe(t, "GET", base+"/livez"); code != 200 || body["status"] != "ok" {
		t.Errorf("GET /livez = %d %v, want 200 ok", code, body)
	}
	if code, body := probe(t, "GET", base+"/readyz"); code != 200 || body["status"] != "ready" {
		t.Errorf("GET /readyz = %d %v, want 200 ready (no token needed)", code, body)
	}
	if code, _ := probe(t, "HEAD", base+"/readyz"); code != 200 {
		t.Errorf("HEAD /readyz = %d, want 200", code)
	}
	if code, body := probe(t, "POST", base+"/readyz"); code != 405 || !strings.Contains(body["error"], "use GET") {
		t.Errorf("POST /readyz = %d %v, want 405 with a JSON error", code, body)
	}
}

// tcpProxy forwards connections to a target until Down, which cuts every connection and
// refuses new ones, until Up: a database that goes away and comes back, without stopping
// the real one that other tests share.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.Down() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tcpProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
}

// Down cuts every connection and refuses new ones.
func (p *tcpProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Up accepts connections again.
func (p *tcpProxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestReadyzFollowsPostgres: /readyz turns 503 when PostgreSQL goes away and 200 again
// when it is back, without a restart; /livez stays 200 throughout.
func TestReadyzFollowsPostgres(t *testing.T) {
	t.Parallel()
	base := ubihookstest.PostgresBase(t)
	if base == "" {
		t.Skip("UBIHOOKS_TEST_POSTGRES_URL is not set")
	}
	pgURL, err := url.Parse(ubihookstest.PostgresSchema(t, base))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, pgURL.Host)
	pgURL.Host = proxy.ln.Addr().String()
	addr, _ := startServe(t, "--database", pgURL.String(), "--encryption-key", strings.Repeat("A", 43)+"=")
	srv := "http://" + addr

	wait := func(want int, within time.Duration) map[string]string {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			code, body := probe(t, "GET", srv+"/readyz")
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %v after %v, want %d", code, body, within, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait(200, 10*time.Second)
	proxy.Down()
	body := wait(503, 15*time.Second)
	if body["error"] != "database unavailable" {
		t.Errorf("unready /readyz says %q, want %q (and no address or user name)", body["error"], "database unavailable")
	}
	if code, _ := probe(t, "GET", srv+"/livez"); code != 200 {
		t.Errorf("/livez = %d while the database is away, want 200: the process still serves", code)
	}
	proxy.Up()
	wait(200, 30*time.Second)
}
