package main

import (
	"sync"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// manualClock is a clock that moves only when told: the tour uses it where
// waiting for real would take a lease or a retention period. It satisfies
// idempotency.Clock.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newManualClock(t time.Time) *manualClock { return &manualClock{now: t} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// AfterFunc never fires: the scenarios using manualClock disable the
// heartbeat and never wait for a duplicate, so no timer is armed.
func (c *manualClock) AfterFunc(time.Duration, func()) idempotency.Timer { return stoppedTimer{} }

type stoppedTimer struct{}

func (stoppedTimer) Stop() bool { return false }
