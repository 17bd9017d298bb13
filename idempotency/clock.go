package idempotency

import (
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Clock tells the time and waits. The memory store, the executor, the
// middleware and Dedup read time and arm timers (lease heartbeats, polls
// while waiting for a duplicate) only through it, so tests drive them with
// a fake clock (storetest.FakeClock) instead of sleeping. A nil Clock in a
// config means the system clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed, like time.After.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// configError returns the KindInvalid error for a bad config field, e.g.
// "idempotency: MemoryConfig.MaxEntries: must be >= 0, got -1".
func configError(field, format string, args ...any) error {
	return &contract.Error{
		Kind:   contract.KindInvalid,
		Code:   "config.invalid",
		Op:     "idempotency",
		Detail: field + ": " + fmt.Sprintf(format, args...),
	}
}
