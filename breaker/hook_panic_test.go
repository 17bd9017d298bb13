package breaker_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
)

// A hook that panics once loses none of the transitions queued after the
// one it was reporting: the next report delivers them, in order, and the
// reported transitions keep chaining.
func TestPanickingHookLosesNoTransition(t *testing.T) {
	ctx := context.Background()
	clk := &hookClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := &rec{}
	var armed atomic.Bool
	b, _ := breaker.New(breaker.Config{Name: "dep", DisableMetrics: true, Clock: clk,
		OpenTimeout: 10 * time.Second, Rand: func() float64 { return 0 },
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			r.mu.Lock()
			r.trans = append(r.trans, tr)
			r.mu.Unlock()
			if armed.CompareAndSwap(true, false) {
				panic("hook failed")
			}
		}})
	b.Trip(ctx, 10*time.Second, "operator")
	clk.Advance(time.Minute)
	armed.Store(true)
	func() {
		defer func() { recover() }()
		b.ForceOpen(ctx, "incident")
	}()
	b.Reset(ctx)
	t.Log(r.path())
	r.chains(t, b)
}

// A call that returned counts as its own outcome even when Config.OnCall
// then panics or leaves by runtime.Goexit: successes whose hook fails do not
// trip the breaker (gobreaker would count the hook's panic as a failure), a
// half-open probe whose hook exits frees its slot and closes the breaker,
// and the hook's panic reaches the caller unchanged.
func TestFailingOnCallKeepsTheCallsOutcome(t *testing.T) {
	var mode atomic.Int32 // 0: fine, 1: panic, 2: runtime.Goexit
	h := newHarness(t, breaker.Config{MinCalls: 2, HalfOpenProbes: 1,
		OnCall: func(context.Context, breaker.Outcome) {
			switch mode.Load() {
			case 1:
				panic("hook failed")
			case 2:
				runtime.Goexit()
			}
		}})
	callIn := func(err error) { // on a goroutine of its own, which the hook may end
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = h.call(err)
		}()
		<-done
	}
	mode.Store(1)
	for range 3 {
		var p any
		func() {
			defer func() { p = recover() }()
			_ = h.call(nil)
		}()
		if p != "hook failed" {
			t.Fatalf("caller recovered %v, want the hook's panic", p)
		}
	}
	h.wantState(breaker.StateClosed)
	if c := h.b.Counts(); c.Successes != 3 || c.Failures != 0 {
		t.Fatalf("counts %+v, want 3 successes, no failure", c)
	}

	mode.Store(0)
	for range 3 {
		_ = h.call(errDown)
	}
	h.wantState(breaker.StateOpen)
	h.clock.Advance(time.Minute)
	mode.Store(2)
	callIn(nil) // the probe succeeds, its hook exits
	mode.Store(0)
	h.wantState(breaker.StateClosed)
	if err := h.call(nil); err != nil {
		t.Fatalf("call after the probe: %v", err)
	}
}

// A call admitted as a half-open probe that never ran, because the hook
// reporting a transition queued before it panicked, is not counted: the
// breaker does not reopen on a probe that never reached the dependency.
func TestPanickingHookBeforeAProbeRanIsNotCounted(t *testing.T) {
	ctx := context.Background()
	clk := &hookClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var armed atomic.Bool
	ran := 0
	b, _ := breaker.New(breaker.Config{Name: "dep", DisableMetrics: true, Clock: clk, Window: time.Hour,
		MinCalls: 1, HalfOpenProbes: 1, OpenTimeout: 10 * time.Second, Rand: func() float64 { return 0 },
		OnStateChange: func(context.Context, breaker.Transition) {
			if armed.CompareAndSwap(true, false) {
				panic("hook failed")
			}
		}})
	panics := func(f func()) {
		t.Helper()
		defer func() {
			if r := recover(); r != "hook failed" {
				t.Fatalf("recovered %v, want the hook's panic", r)
			}
		}()
		armed.Store(true)
		f()
	}
	call := func() error {
		return b.Execute(ctx, func(context.Context) error { ran++; return nil })
	}
	_ = b.Execute(ctx, func(context.Context) error { return errDown }) // open for 10s
	clk.Advance(time.Minute)
	// Two transitions in one report (open > half_open > open): the hook
	// panics on the first, the second waits for the next report.
	panics(func() { b.Trip(ctx, 10*time.Second, "operator") })
	clk.Advance(time.Minute)
	panics(func() { _ = call() }) // the delay ends; reporting it panics first: nothing runs
	panics(func() { _ = call() }) // admitted as the probe; reporting open > half_open panics before it runs
	if ran != 0 {
		t.Fatalf("%d calls ran", ran)
	}
	if st := b.State(); st != breaker.StateHalfOpen {
		t.Fatalf("state %v after a probe that never ran, want half_open", st)
	}
	if err := call(); err != nil || ran != 1 {
		t.Fatalf("probe: %v (ran %d)", err, ran)
	}
	if st := b.State(); st != breaker.StateClosed {
		t.Fatalf("state %v after the probe succeeded", st)
	}
}
