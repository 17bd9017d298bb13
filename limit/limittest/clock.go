// Package limittest provides test doubles for package limit: a manual
// Clock whose time only moves when the test says so, so tests of bulkhead
// wait timeouts and rate limiter waits never sleep on real time, and a
// Probe that records the most calls ever seen running at once.
//
// Clock satisfies limit.Clock without importing package limit, so it can be
// used from the limit package's own tests as well as from users' tests:
//
//	clk := limittest.NewClock(time.Unix(0, 0))
//	b, _ := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1, MaxWaiting: 1, MaxWait: time.Second, Clock: clk})
//	// ... start a goroutine that waits for a slot ...
//	clk.BlockUntilTimers(1) // the waiter has armed its timeout
//	clk.Advance(time.Second) // fires it: the waiter gets a timeout error
package limittest

import (
	"sort"
	"sync"
	"time"
)

// Clock is a manual clock, safe for concurrent use. Now returns the current
// fake time; timers created with NewTimer fire (in deadline order) when
// Advance or Set moves the time to or past their deadline. The zero value is
// not usable; call NewClock.
type Clock struct {
	mu      sync.Mutex
	cond    *sync.Cond
	now     time.Time
	timers  []*timer
	created int
}

type timer struct {
	at      time.Time
	c       chan time.Time
	stopped bool
}

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock {
	c := &Clock{now: start}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a channel that receives the fake time once the clock
// reaches now+d, and a stop function reporting whether it stopped the timer
// before it fired. A timer with d <= 0 fires at once.
func (c *Clock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.created++
	if d <= 0 {
		t.c <- c.now
		c.cond.Broadcast()
		return t.c, func() bool { return false }
	}
	c.timers = append(c.timers, t)
	c.cond.Broadcast()
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.timers {
			if x == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				t.stopped = true
				c.cond.Broadcast()
				return true
			}
		}
		return false
	}
}

// Advance moves the clock forward by d and fires every timer due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(c.now.Add(d))
}

// Set moves the clock to t (never backwards) and fires every timer due.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.setLocked(t)
	}
}

func (c *Clock) setLocked(t time.Time) {
	c.now = t
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	keep := c.timers[:0]
	for _, x := range c.timers {
		if !x.at.After(t) {
			x.c <- t
			continue
		}
		keep = append(keep, x)
	}
	for i := len(keep); i < len(c.timers); i++ {
		c.timers[i] = nil
	}
	c.timers = keep
	c.cond.Broadcast()
}

// Timers returns the number of pending (armed, not fired, not stopped) timers.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Created returns how many timers were ever created with NewTimer.
func (c *Clock) Created() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.created
}

// BlockUntilTimers blocks until at least n timers are pending: the usual way
// for a test to know that goroutines have started waiting before it calls
// Advance.
func (c *Clock) BlockUntilTimers(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.timers) < n {
		c.cond.Wait()
	}
}
