package idempotency

import (
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
)

// Clock tells the time and arms timers. The memory store, the executor,
// the middleware and Dedup read time and arm timers (lease heartbeats, polls
// while waiting for a duplicate) only through it, so tests drive them with
// a fake clock (storetest.FakeClock) instead of sleeping. A nil Clock in a
// config means the system clock (time.Now, time.AfterFunc).
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f, in its own goroutine or the clock's, once d has
	// passed, unless the returned Timer is stopped first; like time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer armed by Clock.AfterFunc. *time.Timer satisfies it.
type Timer interface {
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

type systemClock struct{}

// clockBase anchors systemClock.Now: the time at start-up plus the
// monotonic time elapsed since, which reads one clock where time.Now reads
// two (wall and monotonic). Only the monotonic reading of these times
// matters: the store only compares and subtracts them, which Go does with
// the monotonic readings when both times have one, as these all do. Their
// wall reading does not follow later steps of the system's wall clock.
var clockBase = time.Now()

func (systemClock) Now() time.Time                            { return clockBase.Add(time.Since(clockBase)) }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

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
