package retrytest

import (
	"context"
	"math"
	"sync"
	"time"
)

// Clock is a fake retry.Clock. Now returns virtual time; Sleep records the
// requested duration and advances virtual time by it without waiting
// (returning ctx.Err() instead when ctx is already done). It is safe for
// concurrent use.
//
// Contexts with deadlines should be derived from the clock's time
// (context.WithDeadline(ctx, clk.Now().Add(d))): NewClock starts at the real
// current time, so such deadlines lie in the real future too and only fire
// if a test really runs that long.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	sleeps  []time.Duration
	onSleep func(time.Duration)
}

// NewClock returns a Clock starting at the current real time.
func NewClock() *Clock {
	return &Clock{now: time.Now()}
}

// NewClockAt returns a Clock starting at t.
func NewClockAt(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the virtual time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep records d and advances the virtual time by d, at once. It returns
// ctx.Err() without advancing when ctx is done.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	if d > 0 {
		c.now = c.now.Add(d)
	}
	f := c.onSleep
	c.mu.Unlock()
	if f != nil {
		f(d)
	}
	return ctx.Err()
}

// Advance moves the virtual time forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Sleeps returns a copy of the durations passed to Sleep, in order.
func (c *Clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// Slept returns the sum of the durations passed to Sleep, negative ones
// counting as 0. It saturates at the largest Duration instead of wrapping.
func (c *Clock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Duration
	for _, d := range c.sleeps {
		if d <= 0 {
			continue
		}
		if t > math.MaxInt64-d {
			return math.MaxInt64
		}
		t += d
	}
	return t
}

// OnSleep sets a function called after each Sleep (outside the clock's
// lock) with the slept duration, e.g. to cancel a context mid-retry.
func (c *Clock) OnSleep(f func(time.Duration)) {
	c.mu.Lock()
	c.onSleep = f
	c.mu.Unlock()
}
