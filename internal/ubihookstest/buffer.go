package ubihookstest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is an io.Writer that goroutines (a server's logger, a child process's output)
// share and that the test reads and waits on. The zero SyncBuffer is empty and ready.
type SyncBuffer struct {
	// Changed is signalled after every write.
	Changed Progress

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	b.Changed.Signal()
	return n, err
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits until what was written contains s, and returns it all.
func (b *SyncBuffer) WaitFor(t testing.TB, within time.Duration, s string) string {
	t.Helper()
	var text string
	if !b.Changed.Await(within, func() bool { text = b.String(); return strings.Contains(text, s) }) {
		t.Fatalf("timed out after %s waiting for %q in:\n%s", within, s, text)
	}
	return text
}
