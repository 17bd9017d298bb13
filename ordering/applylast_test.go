package ordering_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// withGuards runs f on the Memory fast path and on the State interface
// path (a Memory behind an opaque State).
func withGuards(t *testing.T, cfg ordering.Config, f func(t *testing.T, g *ordering.Guard)) {
	for _, generic := range []bool{false, true} {
		t.Run(fmt.Sprintf("generic=%v", generic), func(t *testing.T) {
			m, err := ordering.NewMemory(ordering.MemoryConfig{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := cfg
			cfg.State = m
			if generic {
				cfg.State = opaqueState{m}
			}
			f(t, mustGuard(t, cfg))
		})
	}
}

// bounded runs f on another goroutine and fails the test when it has not
// returned once ctx ends: a call waiting for a lock its own caller holds
// on a Memory state waits for ever, whatever its context.
func bounded(t *testing.T, ctx context.Context, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("deadlock: the call waits for the subject lock its own caller holds")
	}
}

func mustProcessCtx(t *testing.T, ctx context.Context, g *ordering.Guard, e *contract.Event, apply ordering.ApplyFunc) {
	t.Helper()
	if o, err := g.Process(ctx, e, apply, nil); err != nil || o.Decision != ordering.Apply {
		t.Errorf("Process(%s/%d): %v, %v; want applied", e.Subject, e.Sequence, o.Decision, err)
	}
}

// TestApplyReadingLastOfItsSubject: Memory.Last took the subject's lock,
// which the ApplyFunc's caller holds: State().Last from the ApplyFunc, for
// its own subject, waited for ever (also behind a State wrapping the
// Memory, which the Guard cannot recognise). Last now reads without the
// lock and answers the sequence the apply started from.
func TestApplyReadingLastOfItsSubject(t *testing.T) {
	withGuards(t, ordering.Config{}, func(t *testing.T, g *ordering.Guard) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var r recorder
		mustProcess(t, g, ev("s", 1), r.apply, nil)
		var last uint64
		var err error
		apply := func(ctx context.Context, e *contract.Event) error {
			last, err = g.State().Last(context.Background(), e.Subject) // not even the ApplyFunc's context
			return r.apply(ctx, e)
		}
		bounded(t, ctx, func() { mustProcessCtx(t, ctx, g, ev("s", 2), apply) })
		if last != 1 || err != nil {
			t.Fatalf("State().Last in s/2's ApplyFunc: %d, %v; want 1", last, err)
		}
		if last, err := g.State().Last(ctx, "s"); last != 2 || err != nil {
			t.Fatalf("Last after: %d, %v; want 2", last, err)
		}
	})
}

// TestApplyCallingFailedAndRetryingForItsSubject: Failed and Retrying only
// read the subject's last sequence, which does not wait for the lock the
// ApplyFunc's caller holds: called from the ApplyFunc for its own subject,
// with an event held behind a gap, they return.
func TestApplyCallingFailedAndRetryingForItsSubject(t *testing.T) {
	withGuards(t, ordering.Config{Gap: ordering.GapHold}, func(t *testing.T, g *ordering.Guard) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var r recorder
		mustProcess(t, g, ev("s", 1), r.apply, nil)
		settle := func(context.Context, *contract.Event, ordering.Outcome, error) {}
		if o, err := g.Process(ctx, ev("s", 4), r.apply, settle); err != nil || !o.Held {
			t.Fatalf("s/4: %v, %v; want held", o.Decision, err)
		}
		apply := func(ctx context.Context, e *contract.Event) error {
			g.Failed(ctx, ev("s", 3))
			g.Retrying(ctx, ev("s", 3), time.Second)
			return r.apply(ctx, e)
		}
		bounded(t, ctx, func() { mustProcessCtx(t, ctx, g, ev("s", 2), apply) })
		if got := r.got(); got != "s/1 s/2" {
			t.Fatalf("applied %q; want s/1 s/2 (s/4 still held behind s/3)", got)
		}
	})
}
