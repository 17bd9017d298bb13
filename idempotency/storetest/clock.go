package storetest

import (
	"slices"
	"sync"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// FakeClock is a manual clock for tests: Now stays put until Advance moves
// it, and functions armed with AfterFunc run when Advance reaches their
// time. It satisfies both Clock and idempotency.Clock, so one value drives
// a MemoryStore, an Executor and the suite:
//
//	clk := storetest.NewFakeClock(time.Unix(0, 0))
//	s, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clk})
//
// It is safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*fakeTimer
}

type fakeTimer struct {
	c       *FakeClock
	at      time.Time
	f       func()
	stopped bool
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms f to run once Advance has moved the clock d or more past
// now. Advance runs due functions in the calling goroutine, after releasing
// the clock's lock (so f may arm another timer). A d <= 0 runs f in a new
// goroutine at once, like time.AfterFunc.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) idempotency.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	if d <= 0 {
		t.stopped = true
		go f()
		return t
	}
	c.waiters = append(c.waiters, t)
	return t
}

// Stop disarms the timer; it reports whether the timer was still armed.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped {
		return false
	}
	t.stopped = true
	for i, w := range t.c.waiters {
		if w == t {
			t.c.waiters = append(t.c.waiters[:i], t.c.waiters[i+1:]...)
			break
		}
	}
	return true
}

// Waiters returns how many armed timers have not fired or been stopped.
// Tests use it to know a goroutine is parked on the clock before advancing it.
func (c *FakeClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// Advance moves the clock forward by d (backward for a negative d) and
// runs every armed function whose time has come, earliest first.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.stopped = true
		due = append(due, w)
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
	c.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
	for _, w := range due {
		w.f()
	}
}
