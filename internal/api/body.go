package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
)

// bodyLimits bound the time and the memory that request bodies take.
type bodyLimits struct {
	grace time.Duration
	rate  int64

	mu   sync.Mutex
	max  int64
	held int64
}

func newBodyLimits(cfg Config) *bodyLimits {
	b := &bodyLimits{grace: cfg.BodyReadGrace, rate: cfg.BodyReadRate, max: cfg.MaxBodyMemory}
	if b.grace <= 0 {
		b.grace = DefaultBodyReadGrace
	}
	if b.rate <= 0 {
		b.rate = DefaultBodyReadRate
	}
	if b.max <= 0 {
		b.max = DefaultMaxBodyMemory
	}
	return b
}

// tryHold takes n bytes of the budget, if it has them or nothing is held: a body larger
// than the budget is then served alone rather than never.
func (b *bodyLimits) tryHold(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held > 0 && b.held+n > b.max {
		return false
	}
	b.held += n
	return true
}

func (b *bodyLimits) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
}

// chunkHold is the step in which a body of unknown length takes budget as it arrives.
const chunkHold = 64 << 10

// errBodyBusy and errBodySlow end the reading of a body.
var (
	errBodyBusy = errors.New("request bodies in flight exceed the server's memory budget")
	errBodySlow = errors.New("request body too slow")
)

// busyError answers a call whose body does not fit in the budget now. It is a 429, which
// UbiOps' client waits for (X-Ratelimit-Reset) and retries on its own.
func busyError(w http.ResponseWriter) error {
	w.Header().Set("Retry-After", "1")
	return ubihooks.Errorf(ubihooks.ERATELIMITED, "the server is reading too many large request bodies at once; retry in a moment")
}

// bodyReader reads a request body within the call's share of the memory budget and at a
// minimum rate: byte n must have arrived grace + n/rate after the reading began. The rule
// is enforced with the connection's read deadline, moved forward as bytes arrive, so that
// a stalled read ends without a goroutine of its own.
type bodyReader struct {
	r     io.Reader
	rc    *http.ResponseController
	lim   *bodyLimits
	c     *call
	start time.Time
	read  int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(b.start.Add(b.lim.grace + time.Duration(float64(b.read+1)/float64(b.lim.rate)*float64(time.Second))))
	n, err := b.r.Read(p)
	b.read += int64(n)
	if b.read > b.c.held {
		more := (b.read - b.c.held + chunkHold - 1) / chunkHold * chunkHold
		if !b.lim.tryHold(more) {
			return n, errBodyBusy
		}
		b.c.held += more
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errBodySlow
	}
	return n, err
}

// readBody reads a bounded request body, within the memory budget and the minimum rate
// (Config). The budget it takes is given back when the call ends (serve): the body, and
// what is made of it, live until then.
func (c *call) readBody(limit int64) ([]byte, error) {
	tooLarge := &handler.StatusError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", limit)}
	n := c.r.ContentLength
	if n > limit {
		return nil, tooLarge
	}
	if n > 0 {
		if !c.lim.tryHold(n) {
			return nil, busyError(c.w)
		}
		c.held = n
	}
	br := &bodyReader{r: http.MaxBytesReader(c.w, c.r.Body, limit), rc: http.NewResponseController(c.w), lim: c.lim, c: c, start: time.Now()}
	// A buffer of the announced size is filled without the copies of growing.
	buf := bytes.NewBuffer(make([]byte, 0, max(n, 0)+bytes.MinRead))
	_, err := buf.ReadFrom(br)
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		// On an error the deadline stays: net/http then gives up at once on discarding
		// the rest of the body, and closes the connection after the answer.
		_ = br.rc.SetReadDeadline(time.Time{})
		return buf.Bytes(), nil
	case errors.As(err, &mbe):
		return nil, tooLarge
	case errors.Is(err, errBodyBusy):
		return nil, busyError(c.w)
	case errors.Is(err, errBodySlow):
		return nil, &handler.StatusError{Status: http.StatusRequestTimeout,
			Message: fmt.Sprintf("the request body did not arrive in time: send it at %d bytes/s or faster", c.lim.rate)}
	}
	return nil, ubihooks.Errorf(ubihooks.EINVALID, "could not read the request body")
}
