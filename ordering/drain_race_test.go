package ordering_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// pausingState wraps a Memory; once armed, the next Advance call blocks
// (before locking the subject) until released.
type pausingState struct {
	*ordering.Memory
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newPausingState(t *testing.T) *pausingState {
	m, err := ordering.NewMemory(ordering.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &pausingState{Memory: m, entered: make(chan struct{}), release: make(chan struct{})}
}

func (p *pausingState) Advance(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
	if p.armed.CompareAndSwap(true, false) {
		close(p.entered)
		<-p.release
	}
	return p.Memory.Advance(ctx, subject, fn)
}

// A held event that drain has taken out of the hold (between take and its
// advance) is invisible to a concurrent timeout skip: the skip jumps over
// it, and the event, which was delivered, is then settled as Stale with a
// nil error (the consumer acks it) although it was never applied.
func TestTimeoutSkipSparesHeldEventBeingApplied(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	st := newPausingState(t)
	g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
	rec := &recorder{}
	var set settled
	apply2 := func(ctx context.Context, e *contract.Event) error {
		st.armed.Store(true) // the next Advance (drain's, for held 3) pauses
		return rec.apply(ctx, e)
	}
	mustProcess := func(e *contract.Event, a ordering.ApplyFunc) ordering.Outcome {
		o, err := g.Process(ctx, e, a, set.settle)
		if err != nil {
			t.Fatalf("seq %d: %v", e.Sequence, err)
		}
		return o
	}
	mustProcess(ev("s", 1), rec.apply)
	if o := mustProcess(ev("s", 3), rec.apply); !o.Held {
		t.Fatal("3 not held")
	}
	if o := mustProcess(ev("s", 5), rec.apply); !o.Held {
		t.Fatal("5 not held")
	}
	clk.Advance(9 * time.Second) // not timed out yet

	done := make(chan struct{})
	go func() { // 2 arrives: applied, then drain takes held 3 ...
		defer close(done)
		mustProcess(ev("s", 2), apply2)
	}()
	<-st.entered // ... and is about to advance it
	clk.Advance(2 * time.Second)
	g.Sweep(ctx) // 5 (held at T0) timed out: skip the missing 4
	close(st.release)
	<-done
	g.Sweep(ctx) // 4 is still missing: skipped now if not before

	t.Logf("applied: %s; settled: %s", rec.got(), set.String())
	if got, want := rec.got(), "s/1 s/2 s/3 s/5"; got != want {
		t.Fatalf("applied %q, want %q: held event 3 was delivered but never applied (settled %s)", got, want, set.String())
	}
}

// The restart of the wait when the missing event fails (35e6d1e) does not
// reach a held entry that a drain has momentarily taken out of the hold:
// the entry is put back with its old wait, and the same Sweep skips the
// event that has just failed, so its redelivery is dropped as stale.
func TestFailureRestartsWaitOfHeldEventBeingApplied(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	st := newPausingState(t)
	g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
	rec := &recorder{}
	var set settled
	apply3 := func(ctx context.Context, e *contract.Event) error {
		st.armed.Store(true) // the next Advance (drain's, for held 6) pauses
		return rec.apply(ctx, e)
	}
	if _, err := g.Process(ctx, ev("s", 1), rec.apply, set.settle); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		seq uint64
		a   ordering.ApplyFunc
	}{{3, apply3}, {6, rec.apply}} {
		if o, err := g.Process(ctx, ev("s", e.seq), e.a, set.settle); err != nil || !o.Held {
			t.Fatalf("%d: %+v %v", e.seq, o, err)
		}
	}
	clk.Advance(11 * time.Second)
	done := make(chan struct{})
	go func() { // skips 2, applies 3, then takes 6 out and pauses
		defer close(done)
		g.Sweep(ctx)
	}()
	<-st.entered
	// 4 is delivered now and fails: it must get a full HoldTimeout.
	failing := func(context.Context, *contract.Event) error {
		return &contract.Error{Kind: contract.KindUnavailable, Code: "down"}
	}
	if o, err := g.Process(ctx, ev("s", 4), failing, set.settle); err == nil || o.Decision != ordering.Apply {
		t.Fatalf("4: %+v %v, want a failed apply", o, err)
	}
	close(st.release)
	<-done

	clk.Advance(time.Second) // redelivered 1s after its failure
	o, err := g.Process(ctx, ev("s", 4), rec.apply, set.settle)
	t.Logf("applied: %s; settled: %s", rec.got(), set.String())
	if err != nil || o.Decision != ordering.Apply {
		t.Fatalf("redelivery of 4 one second after it failed: %+v %v, want Apply (HoldTimeout is 10s)", o, err)
	}
}
