package ubihookstest

import (
	"net"
	"testing"
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
