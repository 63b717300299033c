package handler

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Listener returns ln with the error answers that net/http writes by itself rewritten as
// the JSON error body {"error": "<message>"}. net/http answers a request it cannot parse (a
// bad percent-escape in the path, a malformed or missing header, an unsupported transfer
// encoding, headers beyond MaxHeaderBytes) before any handler runs, in text/plain, and
// offers no hook to change that; raising MaxHeaderBytes and checking the size in a
// handler would cover oversized headers only. Those answers are written straight to the
// connection in a single Write of a fixed form, the last one on the connection, which a
// connection wrapper can recognise and replace.
func Listener(ln net.Listener) net.Listener { return &jsonErrorListener{ln} }

type jsonErrorListener struct{ net.Listener }

func (l *jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{c}, nil
}

// jsonErrorConn rewrites net/http's own error answers (see Listener).
type jsonErrorConn struct{ net.Conn }

// netHTTPErrorHeaders are the headers of every error answer net/http writes by itself
// (net/http's server.go). An answer written through a ResponseWriter never has them in
// this order: it writes its headers sorted (Connection before Content-Type), with a Date.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonErrorConn) Write(b []byte) (int, error) {
	if j, ok := jsonNetHTTPError(b); ok {
		if _, err := c.Conn.Write(j); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite passes on the half-close that net/http does after an oversized header
// (without it, net/http waits before closing the connection instead).
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// jsonNetHTTPError returns the JSON form of b when b is one of net/http's own error
// answers: "HTTP/1.1 <code> <reason>" + netHTTPErrorHeaders + "<text>".
func jsonNetHTTPError(b []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(b, []byte(proto)) {
		return nil, false
	}
	end := bytes.Index(b, []byte("\r\n"))
	if end < len(proto)+3 || !bytes.HasPrefix(b[end:], []byte(netHTTPErrorHeaders)) {
		return nil, false
	}
	code, err := strconv.Atoi(string(b[len(proto) : len(proto)+3]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	msg := netHTTPErrorMessage(code, string(b[end+len(netHTTPErrorHeaders):]))
	body, err := encodeJSON(map[string]string{"error": msg})
	if err != nil {
		return nil, false
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", code, http.StatusText(code), body.Len())
	out.Write(body.Bytes())
	return out.Bytes(), true
}

// netHTTPErrorMessage makes a message of net/http's answer text: "400 Bad Request",
// "400 Bad Request: missing required Host header", "Unsupported transfer encoding".
func netHTTPErrorMessage(code int, text string) string {
	reason := http.StatusText(code)
	text = strings.TrimPrefix(text, strconv.Itoa(code)+" ")
	if detail, ok := strings.CutPrefix(text, reason+": "); ok {
		text = detail
	}
	if text == "" || text == reason {
		if code == http.StatusBadRequest {
			return "malformed HTTP request"
		}
		return strings.ToLower(reason)
	}
	r, n := utf8.DecodeRuneInString(text)
	return string(unicode.ToLower(r)) + text[n:]
}
