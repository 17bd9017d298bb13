package main

import (
	"sync"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// simClock is the simulated broker's clock: time moves only when the
// simulation moves it, to the next scheduled redelivery, so a run with
// seconds of redelivery delays takes milliseconds and is reproducible.
// It satisfies ordering.Clock and idempotency.Clock.
type simClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*simTimer
}

type simTimer struct {
	c    *simClock
	at   time.Time
	f    func()
	done bool
}

func newSimClock(start time.Time) *simClock { return &simClock{now: start} }

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms f to run, on the goroutine that moves the clock, once
// the clock reaches now+d.
func (c *simClock) AfterFunc(d time.Duration, f func()) idempotency.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &simTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *simTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}

// Set moves the clock to at (never backwards) and runs the timers due.
func (c *simClock) Set(at time.Time) {
	c.mu.Lock()
	if at.After(c.now) {
		c.now = at
	}
	var due []func()
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			due = append(due, t.f)
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}
