package ordering_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// A held event whose ApplyFunc panics while drain applies it must not stay
// in the hold's in-flight set: it would remain the subject's oldest held
// event for good, and a later gap would never be skipped on timeout.
func TestPanickingHeldApplyReleasesItsEntry(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	g, err := ordering.New(ordering.Config{Gap: ordering.GapHold, HoldTimeout: time.Second,
		OnTimeout: ordering.TimeoutSkip, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(seq uint64) *contract.Event { return &contract.Event{Subject: "acct", Sequence: seq} }
	var boom atomic.Bool
	apply := func(_ context.Context, e *contract.Event) error {
		if e.Sequence == 2 && boom.CompareAndSwap(true, false) {
			panic("apply failed")
		}
		return nil
	}
	var settled4 atomic.Bool
	settle := func(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
		if e.Sequence == 4 {
			settled4.Store(true)
		}
	}
	if o, err := g.Process(ctx, ev(2), apply, settle); err != nil || !o.Held {
		t.Fatalf("2: %+v %v", o, err)
	}
	boom.Store(true)
	func() {
		defer func() { _ = recover() }()
		_, _ = g.Process(ctx, ev(1), apply, settle) // drain applies held 2: panics
	}()
	if o, err := g.Process(ctx, ev(2), apply, settle); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("redelivered 2: %+v %v", o, err) // the producer redelivers 2: applied
	}
	if o, err := g.Process(ctx, ev(4), apply, settle); err != nil || !o.Held {
		t.Fatalf("4: %+v %v", o, err) // 3 is lost: 4 waits HoldTimeout, then the gap is skipped
	}
	for range 5 {
		clk.Advance(2 * time.Second)
		g.Sweep(ctx)
	}
	if !settled4.Load() {
		last, _ := g.State().Last(ctx, "acct")
		t.Fatalf("4 still held after 10s (HoldTimeout 1s): held %d, last %d", g.Held(), last)
	}
}
