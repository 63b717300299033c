package ubihookstest

import (
	"sync/atomic"
	"time"
)

// Clock is a clock that tests move forward: the wall clock plus an offset, or, once
// frozen, a fixed time plus the offset. Share one between the service, the engine and the
// verifier, so that leases, retries and signatures agree on the time. The zero Clock
// reads the wall clock.
type Clock struct {
	offset atomic.Int64 // ns
	frozen atomic.Int64 // ns since the epoch of the frozen time; 0 while the clock runs
}

// Now returns the wall clock's time plus the offset, or the frozen time plus the offset.
func (c *Clock) Now() time.Time {
	if at := c.frozen.Load(); at != 0 {
		return time.Unix(0, at+c.offset.Load())
	}
	return time.Now().Add(time.Duration(c.offset.Load()))
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Freeze stops the clock at t; only Advance moves it from then on. A frozen clock makes
// what depends on the time (signatures, timestamps) the same in every run, as golden
// values need.
func (c *Clock) Freeze(t time.Time) {
	c.offset.Store(0)
	c.frozen.Store(t.UnixNano())
}
