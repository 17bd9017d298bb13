package ordering_test

import (
	"context"
	"testing"
	"time"

	"github.com/sadpath/sadpath/ordering"
)

// TestMissingEventArrivingAtTimeoutIsApplied: the missing event arrives
// once the events held behind it have waited HoldTimeout, before any Sweep.
// The timeout Process applies first must not skip the very event it is
// processing (it would be dropped as a "duplicate" that was never applied,
// and a consumer would record it as processed): only the sequences before
// it, still unseen, are skipped, and it is applied with the held events.
func TestMissingEventArrivingAtTimeoutIsApplied(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
	var r recorder
	var s settled
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	mustProcess(t, g, ev("s", 3), r.apply, s.settle) // 2 is missing
	clk.Advance(10 * time.Second)
	if o, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("missing 2 arriving at the timeout: %+v %v, want apply", o, err)
	}
	if got := r.got(); got != "s/1 s/2 s/3" {
		t.Fatalf("applied %q, want 2 then the held 3", got)
	}

	// Missing 2..4, 6 held: 3 arrives at the timeout. 2 went unseen and is
	// skipped; 3 is applied; 4 went unseen too and is skipped, then 6 (5
	// is held as well) is applied.
	mustProcess(t, g, ev("t", 1), r.apply, s.settle)
	mustProcess(t, g, ev("t", 5), r.apply, s.settle)
	mustProcess(t, g, ev("t", 6), r.apply, s.settle)
	clk.Advance(10 * time.Second)
	if o, err := g.Process(ctx, ev("t", 3), r.apply, s.settle); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("missing 3 arriving at the timeout: %+v %v, want apply", o, err)
	}
	g.Sweep(ctx)
	if got := r.got(); got != "s/1 s/2 s/3 t/1 t/3 t/5 t/6" {
		t.Fatalf("applied %q", got)
	}
	if got := s.String(); got != "s/3=apply t/5=apply t/6=apply" {
		t.Fatalf("settled %q", got)
	}
}

// TestMissingEventArrivingAtRejectTimeoutReleasesHeld: under TimeoutReject,
// the missing event arriving once the events held behind it have waited
// HoldTimeout (before any Sweep) fills their gap on this very call: they
// are applied behind it, not rejected for a redelivery (which a consumer
// at MaxAttempts turns into a dead letter while the gap has just filled).
func TestMissingEventArrivingAtRejectTimeoutReleasesHeld(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, OnTimeout: ordering.TimeoutReject, HoldTimeout: 10 * time.Second, Clock: clk})
	var r recorder
	var s settled
	mustProcess(t, g, ev("s", 1), r.apply, s.settle)
	mustProcess(t, g, ev("s", 3), r.apply, s.settle) // 2 is missing
	clk.Advance(10 * time.Second)
	if o, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); err != nil || o.Decision != ordering.Apply {
		t.Fatalf("missing 2 arriving at the timeout: %+v %v, want apply", o, err)
	}
	if got, set := r.got(), s.String(); got != "s/1 s/2 s/3" || set != "s/3=apply" {
		t.Fatalf("applied %q, settled %q; want 3 released behind 2", got, set)
	}
	// Without the missing event, the timeout still rejects.
	mustProcess(t, g, ev("s", 5), r.apply, s.settle)
	clk.Advance(10 * time.Second)
	if o, err := g.Process(ctx, ev("s", 6), r.apply, s.settle); err != nil || !o.Held {
		t.Fatalf("6: %+v %v, want held", o, err)
	}
	if got := s.String(); got != "s/3=apply s/5=err:ordering.gap" {
		t.Fatalf("settled %q, want 5 rejected", got)
	}
}
