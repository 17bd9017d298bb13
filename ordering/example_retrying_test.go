package ordering_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// manualClock is a Clock the example moves by hand.
type manualClock struct{ now time.Time }

func (c *manualClock) Now() time.Time { return c.now }

// A held gap waits HoldTimeout for its missing event. When that event fails
// and its redelivery comes later than HoldTimeout (a long backoff, a lease
// left by a crashed instance), the caller says so with Retrying: the wait
// restarts at the redelivery, so the timeout does not skip the event before
// it comes back. Package consumer does this for every retry it schedules.
func ExampleGuard_Retrying() {
	clock := &manualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g, err := ordering.New(ordering.Config{Gap: ordering.GapHold, HoldTimeout: 30 * time.Second, Clock: clock})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	down := true
	apply := func(_ context.Context, e *contract.Event) error {
		if e.Sequence == 1 && down {
			return contract.New(contract.KindUnavailable, "ledger.post", "database down")
		}
		fmt.Println("applied", e.Sequence)
		return nil
	}
	settle := func(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
		fmt.Println("settled", e.Sequence, o.Decision)
	}
	ev := func(seq uint64) *contract.Event {
		return &contract.Event{ID: fmt.Sprint(seq), Source: "ledger", Subject: "acct_1", Sequence: seq}
	}

	_, _ = g.Process(ctx, ev(2), apply, settle) // held: 1 is missing
	if _, err := g.Process(ctx, ev(1), apply, settle); err != nil {
		g.Retrying(ctx, ev(1), time.Minute) // redelivered in a minute
	}
	clock.now = clock.now.Add(time.Minute)
	fmt.Println("swept after a minute:", g.Sweep(ctx))

	down = false
	_, _ = g.Process(ctx, ev(1), apply, settle) // the redelivery
	// Output:
	// swept after a minute: 0
	// applied 1
	// applied 2
	// settled 2 apply
}
