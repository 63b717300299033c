package handler_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ubihooks/ubihooks/internal/handler"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

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
		res, b := ubihookstest.RawExchange(t, addr, tc.raw)
		body := string(b)
		var m map[string]string
		if err := json.Unmarshal([]byte(body), &m); err != nil || res.StatusCode != tc.status ||
			res.Header.Get("Content-Type") != "application/json" || m["error"] != tc.msg {
			t.Errorf("%.40q: got %d %q %q, want %d application/json {\"error\": %q}", tc.raw, res.StatusCode,
				res.Header.Get("Content-Type"), body, tc.status, tc.msg)
		}
	}
	res, b := ubihookstest.RawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	body := string(b)
	if res.StatusCode != 400 || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" || body != "400 Bad Request" {
		t.Errorf("a handler's answer: got %d %q %q, want it untouched", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
}
