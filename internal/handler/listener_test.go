package handler_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/handler"
)

// exchange sends raw on a new connection to addr and reads one answer.
func exchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = io.WriteString(conn, raw) }()
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%.60q: %v", raw, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestListener(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An answer of a handler in the form closest to net/http's own is left alone.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "400 Bad Request")
	}))
	srv.Config.MaxHeaderBytes = 4 << 10
	srv.Listener = handler.Listener(srv.Listener)
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	for _, tc := range []struct {
		raw    string
		status int
		msg    string
	}{
		{"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed HTTP request"},
		{"GET / HTTP/1.1\r\n\r\n", 400, "missing required Host header"},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", 431, "request header fields too large"},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported transfer encoding"},
	} {
		res, body := exchange(t, addr, tc.raw)
		var m map[string]string
		if err := json.Unmarshal([]byte(body), &m); err != nil || res.StatusCode != tc.status ||
			res.Header.Get("Content-Type") != "application/json" || m["error"] != tc.msg {
			t.Errorf("%.40q: got %d %q %q, want %d application/json {\"error\": %q}", tc.raw, res.StatusCode,
				res.Header.Get("Content-Type"), body, tc.status, tc.msg)
		}
	}
	res, body := exchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 400 || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" || body != "400 Bad Request" {
		t.Errorf("a handler's answer: got %d %q %q, want it untouched", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
}
