package ordering_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sadpath/sadpath/ordering"
)

// An event further ahead than Config.MaxGap (an absurd sequence from a
// producer bug) is refused at once as invalid, under either timeout policy
// and on either path to the State: it is never held, so a TimeoutSkip never
// skips the subject to it, and the real events after it are applied.
func TestMaxGapRefusesAbsurdSequence(t *testing.T) {
	for _, tc := range []struct {
		name      string
		onTimeout ordering.TimeoutAction
		state     func(t *testing.T) ordering.State
	}{
		{"skip", ordering.TimeoutSkip, func(*testing.T) ordering.State { return nil }},
		{"reject", ordering.TimeoutReject, func(*testing.T) ordering.State { return nil }},
		{"skip/state", ordering.TimeoutSkip, func(t *testing.T) ordering.State {
			m, err := ordering.NewMemory(ordering.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return opaqueState{m}
		}},
		{"reject/state", ordering.TimeoutReject, func(t *testing.T) ordering.State {
			m, err := ordering.NewMemory(ordering.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			return opaqueState{m}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			log, buf := logBuffer()
			g := mustGuard(t, ordering.Config{State: tc.state(t), Gap: ordering.GapHold, OnTimeout: tc.onTimeout,
				MaxGap: 10, HoldTimeout: time.Second, Clock: clk, Logger: log})
			var r recorder
			var s settled
			mustProcess(t, g, ev("s", 1), r.apply, s.settle)
			o, err := g.Process(ctx, ev("s", 1<<63), r.apply, s.settle)
			if !errors.Is(err, ordering.ErrInvalidEvent) || o.Decision != ordering.Gap || o.Held || g.Held() != 0 {
				t.Fatalf("absurd sequence: %+v %v (held %d), want refused as invalid", o, err, g.Held())
			}
			clk.Advance(time.Hour)
			if n := g.Sweep(ctx); n != 0 {
				t.Fatalf("Sweep settled %d subjects, want nothing held", n)
			}
			mustProcess(t, g, ev("s", 2), r.apply, s.settle)
			if last, err := g.State().Last(ctx, "s"); err != nil || last != 2 || r.got() != "s/1 s/2" {
				t.Fatalf("last = %d %v, applied %q: the entity must go on with its real events", last, err, r.got())
			}
			// The bound itself: 10 missing sequences is still a gap, 11 is not.
			if o, err := g.Process(ctx, ev("s", 13), r.apply, s.settle); err != nil || !o.Held {
				t.Fatalf("sequence 13 (10 missing): %+v %v, want held", o, err)
			}
			if _, err := g.Process(ctx, ev("s", 14), r.apply, s.settle); !errors.Is(err, ordering.ErrInvalidEvent) {
				t.Fatalf("sequence 14 (11 missing): %v, want refused", err)
			}
			refused := 0
			for _, rec := range decisions(t, buf) {
				if rec["decision"] == "gap: event refused" {
					refused++
				}
			}
			if refused != 2 {
				t.Fatalf("%d 'gap: event refused' records, want 2", refused)
			}
		})
	}
}

// Without MaxGap (the default, unlimited) a far gap is held as before: a
// Memory state that forgot a subject catches up with TimeoutSkip.
func TestMaxGapZeroIsUnlimited(t *testing.T) {
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold})
	var r recorder
	var s settled
	if o, err := g.Process(context.Background(), ev("s", 1<<40), r.apply, s.settle); err != nil || !o.Held {
		t.Fatalf("%+v %v, want held", o, err)
	}
}
