package retry

import (
	"context"
	"time"
)

// Clock tells the time and waits. Policy, RatioBudget and Transport read time
// and sleep only through it, so tests drive them with a fake
// (retrytest.Clock) that never sleeps on real time; the one exception is
// TransportConfig.BodyTimeout, a real-time bound on a blocked body read,
// which a fake clock could never end. A nil Clock in a config means the
// system clock.
//
// Sleep waits for d or until ctx is done, whichever comes first, and returns
// ctx.Err() in the latter case. It must return at once when ctx is already
// done.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
