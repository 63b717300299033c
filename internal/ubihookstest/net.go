package ubihookstest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// FreeAddr returns a loopback address ("127.0.0.1:port") where nothing listens: a
// connection to it is refused. Another process may take the port later, so prefer
// listening on ":0" where the code under test allows it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// RawExchange sends raw bytes on a new connection to addr and reads one answer, for
// requests that an http.Client would refuse to send (bad escapes, oversized headers). The
// answer may come before the whole request is written, so the write runs beside the read.
func RawExchange(t testing.TB, addr, raw string) (*http.Response, []byte) {
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
		t.Fatalf("%.60q: read answer: %v", raw, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%.60q: read body: %v", raw, err)
	}
	return res, body
}
