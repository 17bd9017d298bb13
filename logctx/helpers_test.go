package logctx

import (
	"context"
	"errors"
	"sync"
	"time"
)

var testTime = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)

// fakeClock returns t and then advances by step on every Now call.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

// nilCtx is a nil context, as passed by mistake.
var nilCtx context.Context
