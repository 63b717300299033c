package ubihookstest

import (
	"sync/atomic"
	"time"
)

// Clock is a clock that tests move forward: the wall clock plus an offset. Share one
// between the service, the engine and the verifier, so that leases, retries and
// signatures agree on the time. The zero Clock reads the wall clock.
type Clock struct {
	offset atomic.Int64 // ns
}

// Now returns the wall clock's time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
