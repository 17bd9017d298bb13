package storetest

import (
	"sync"
	"time"
)

// FakeClock is a manual clock for tests: Now stays put until Advance moves
// it. It satisfies both Clock and idempotency.Clock, so one value drives a
// MemoryStore and the suite:
//
//	clk := storetest.NewFakeClock(time.Unix(0, 0))
//	s, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clk})
//
// It is safe for concurrent use.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward for a negative d).
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
