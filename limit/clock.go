package limit

import "time"

// Clock is the time source of bulkheads and limiters. Tests inject a manual
// clock (see package limittest) so wait timeouts and token refills never
// depend on real time; nil in a config means the real clock.
//
// NewTimer returns a channel that receives once d has elapsed and a stop
// function reporting whether the timer was stopped before it fired, the shape
// of time.NewTimer without its struct so that implementations need not
// import this package.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

func clockOr(c Clock) Clock {
	if c == nil {
		return realClock{}
	}
	return c
}
