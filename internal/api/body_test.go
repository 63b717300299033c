package api_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/api"
)

// rawClient writes a request on a connection of its own, as slowly as the test decides.
type rawClient struct {
	t    *testing.T
	conn net.Conn
}

func dialRaw(t *testing.T, srv *httptest.Server) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Nothing in these tests takes long: the deadline only turns a hang into a failure.
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, conn: conn}
}

func (c *rawClient) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// answer reads one answer and checks that it is a JSON error with status.
func (c *rawClient) answer(status int) *http.Response {
	c.t.Helper()
	res, err := http.ReadResponse(bufio.NewReader(c.conn), nil)
	if err != nil {
		c.t.Fatalf("read the answer (want %d): %v", status, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var m map[string]string
	if res.StatusCode != status || res.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil || m["error"] == "" {
		c.t.Fatalf("answer %d %q %s, want a JSON error %d", res.StatusCode, res.Header.Get("Content-Type"), body, status)
	}
	return res
}

// postHead is the head of a webhook creation in project A whose body has length n
// (chunked when n < 0).
func postHead(tok string, n int) string {
	te := "Transfer-Encoding: chunked"
	if n >= 0 {
		te = fmt.Sprintf("Content-Length: %d", n)
	}
	return "POST /v2.1/projects/" + projA + "/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Token " + tok +
		"\r\nContent-Type: application/json\r\n" + te + "\r\n\r\n"
}

// TestSlowBodyTimesOut: a body that arrives slower than the minimum rate, past the grace,
// is answered 408 instead of holding its connection as long as the client likes.
func TestSlowBodyTimesOut(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	srv := httptest.NewServer(api.New(api.Config{Service: e.Service, BodyReadGrace: 200 * time.Millisecond, BodyReadRate: 1000}))
	t.Cleanup(srv.Close)

	for _, n := range []int{100000, -1} {
		c := dialRaw(t, srv)
		c.write(postHead(e.tokA, n))
		if n < 0 {
			c.write("1\r\n{\r\n")
		} else {
			c.write("{")
		}
		// The client sends nothing more.
		c.answer(http.StatusRequestTimeout)
	}
	// A body sent at once is read as before.
	c := dialRaw(t, srv)
	body := `{"name": "h", "object_type": "deployment", "object_name": "dep", "url": "https://example.com/h", "event": "deployment_request_completed"}`
	c.write(postHead(e.tokA, len(body)) + body)
	if res, err := http.ReadResponse(bufio.NewReader(c.conn), nil); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("a prompt body: %v, %v; want 201", res, err)
	}
}

// TestBodyMemoryBound: the bodies held at once stay within MaxBodyMemory; beyond it a call
// is answered 429 with Retry-After (which UbiOps' client waits for and retries), and the
// budget is free again once the call that held it ends.
func TestBodyMemoryBound(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	srv := httptest.NewServer(api.New(api.Config{Service: e.Service, MaxBodyMemory: 1000}))
	t.Cleanup(srv.Close)

	// One body of 800 bytes on its way holds 800 bytes of the budget.
	held := dialRaw(t, srv)
	held.write(postHead(e.tokA, 800) + "{")
	// Its arrival is not observable from here, so wait for the budget to be taken by
	// asking until a second one is refused.
	for i := 0; ; i++ {
		c := dialRaw(t, srv)
		c.write(postHead(e.tokA, 800) + strings.Repeat(" ", 800))
		res, err := http.ReadResponse(bufio.NewReader(c.conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			break
		}
		if i == 1000 {
			t.Fatalf("a second body of 800 bytes is answered %d, want 429", res.StatusCode)
		}
	}
	c := dialRaw(t, srv)
	c.write(postHead(e.tokA, 800) + strings.Repeat(" ", 800))
	if res := c.answer(http.StatusTooManyRequests); res.Header.Get("Retry-After") == "" || res.Header.Get("X-Ratelimit-Reset") == "" {
		t.Errorf("429 without Retry-After or X-Ratelimit-Reset: %v", res.Header)
	}
	// A chunked body counts as it arrives.
	c = dialRaw(t, srv)
	c.write(postHead(e.tokA, -1) + "2\r\n{}\r\n0\r\n\r\n")
	c.answer(http.StatusTooManyRequests)

	// The first body ends (a 400: it is not a webhook), and its bytes are free again.
	held.write(strings.Repeat(" ", 798) + "}")
	held.answer(http.StatusBadRequest)
	c = dialRaw(t, srv)
	c.write(postHead(e.tokA, 800) + strings.Repeat(" ", 800))
	c.answer(http.StatusBadRequest)
}
