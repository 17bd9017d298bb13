package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var errDown = contract.New(contract.KindUnavailable, "dep", "down")

type harness struct {
	t     *testing.T
	b     *breaker.Breaker
	clock *fakeClock
	mu    sync.Mutex
	trans []breaker.Transition
	ctxs  []context.Context
}

func newHarness(t *testing.T, cfg breaker.Config) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock()}
	if cfg.Name == "" {
		cfg.Name = "dep"
	}
	if cfg.Window == 0 {
		cfg.Window = time.Hour // no bucket rolls during a unit test
	}
	if cfg.MinCalls == 0 {
		cfg.MinCalls = 4
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = 10 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = func() float64 { return 0 }
	}
	cfg.Clock = h.clock
	cfg.DisableMetrics = true
	cfg.OnStateChange = func(ctx context.Context, tr breaker.Transition) {
		h.mu.Lock()
		h.trans = append(h.trans, tr)
		h.ctxs = append(h.ctxs, ctx)
		h.mu.Unlock()
	}
	b, err := breaker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	return h
}

func (h *harness) call(err error) error {
	return h.b.Execute(context.Background(), func(context.Context) error { return err })
}

func (h *harness) path() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s []string
	for _, t := range h.trans {
		s = append(s, t.From.String()+">"+t.To.String())
	}
	return strings.Join(s, " ")
}

func (h *harness) wantState(want breaker.State) {
	h.t.Helper()
	if got := h.b.State(); got != want {
		h.t.Fatalf("state = %v, want %v (transitions %s)", got, want, h.path())
	}
}

func TestTripsOnFailureRateAfterMinCalls(t *testing.T) {
	h := newHarness(t, breaker.Config{MinCalls: 10, FailureRatio: 0.5})
	// 4 failures alone are below MinCalls: stays closed.
	for range 4 {
		if err := h.call(errDown); !errors.Is(err, errDown) {
			t.Fatalf("call returned %v, want the function's error", err)
		}
	}
	h.wantState(breaker.StateClosed)
	// 5 successes: 4/9 calls failed, still below MinCalls.
	for range 5 {
		_ = h.call(nil)
	}
	h.wantState(breaker.StateClosed)
	// 10th counted call: 4/10 = 0.4 < 0.5 → closed.
	_ = h.call(nil)
	h.wantState(breaker.StateClosed)
	// 5/11 = 0.45 closed; 6/12 = 0.5 → open.
	_ = h.call(errDown)
	h.wantState(breaker.StateClosed)
	_ = h.call(errDown)
	h.wantState(breaker.StateOpen)
	if got := h.path(); got != "closed>open" {
		t.Fatalf("transitions %q", got)
	}
	tr := h.trans[0]
	if tr.Counts.Failures != 6 || tr.Counts.Successes != 6 || tr.OpenFor != 10*time.Second {
		t.Fatalf("transition = %+v", tr)
	}
	if !strings.Contains(tr.Reason, "failure rate 0.50 over 12 calls") {
		t.Fatalf("reason %q", tr.Reason)
	}
}

func TestOpenRejectsWithContractError(t *testing.T) {
	h := newHarness(t, breaker.Config{Name: "payments-gateway"})
	for range 4 {
		_ = h.call(errDown)
	}
	h.clock.Advance(3 * time.Second)
	ran := false
	_, err := breaker.Do(context.Background(), h.b, func(context.Context) (int, error) { ran = true; return 1, nil })
	if ran {
		t.Fatal("function ran while the breaker was open")
	}
	if !errors.Is(err, contract.ErrUnavailable) || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("err = %v, want unavailable + ErrOpen", err)
	}
	ce := contract.As(err)
	if ce.Op != "payments-gateway" || ce.Code != breaker.CodeOpen || ce.RetryAfter != 7*time.Second {
		t.Fatalf("error = %+v", ce)
	}
	if ra, ok := contract.RetryAfter(err); !ok || ra != 7*time.Second {
		t.Fatalf("RetryAfter = %v %v", ra, ok)
	}
	if !contract.Retryable(err) {
		t.Fatal("open error should be retryable (after RetryAfter)")
	}
	if got := h.b.RetryAfter(); got != 7*time.Second {
		t.Fatalf("Breaker.RetryAfter = %v", got)
	}
}

func TestHalfOpenProbesCloseOrReopen(t *testing.T) {
	h := newHarness(t, breaker.Config{HalfOpenProbes: 2})
	for range 4 {
		_ = h.call(errDown)
	}
	h.clock.Advance(10 * time.Second)
	h.wantState(breaker.StateHalfOpen)
	// A failed probe reopens.
	if err := h.call(errDown); !errors.Is(err, errDown) {
		t.Fatalf("probe returned %v", err)
	}
	h.wantState(breaker.StateOpen)
	if got := h.path(); got != "closed>open open>half_open half_open>open" {
		t.Fatalf("transitions %q", got)
	}
	h.clock.Advance(time.Minute)
	// Two successful probes close it.
	_ = h.call(nil)
	h.wantState(breaker.StateHalfOpen)
	_ = h.call(nil)
	h.wantState(breaker.StateClosed)
	if got := h.path(); got != "closed>open open>half_open half_open>open open>half_open half_open>closed" {
		t.Fatalf("transitions %q", got)
	}
}

func TestHalfOpenLimitsProbes(t *testing.T) {
	h := newHarness(t, breaker.Config{HalfOpenProbes: 2})
	for range 4 {
		_ = h.call(errDown)
	}
	h.clock.Advance(10 * time.Second)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.b.Execute(context.Background(), func(context.Context) error {
				started <- struct{}{}
				<-release
				return nil
			})
		}()
	}
	<-started
	<-started
	err := h.call(nil)
	if !errors.Is(err, breaker.ErrTooManyProbes) || !errors.Is(err, contract.ErrUnavailable) {
		t.Fatalf("third call during probes: %v", err)
	}
	if ce := contract.As(err); ce.Code != breaker.CodeTooManyProbes || ce.RetryAfter <= 0 {
		t.Fatalf("error %+v", ce)
	}
	close(release)
	wg.Wait()
	h.wantState(breaker.StateClosed)
}

// A call turned away because the half-open probes are taken is told to come
// back once the probes can have ended, not after a whole OpenTimeout: the
// probes may close the breaker in milliseconds. With SlowCallThreshold set,
// that is the threshold (a healthy probe ends within it; a longer one is a
// failure that reopens the breaker, whose rejections then carry the open
// delay); without, one second (the unit of an HTTP Retry-After). Never more
// than OpenTimeout, never zero, and the same however long the probes run.
func TestTooManyProbesRetryAfterIsTheProbesWait(t *testing.T) {
	for _, tt := range []struct {
		name      string
		open      time.Duration
		slow      time.Duration
		want      time.Duration
		wantAfter time.Duration // after the probes ran for 20s on the fake clock
	}{
		{"no slow threshold: one second", 30 * time.Second, 0, time.Second, time.Second},
		{"slow threshold", 30 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		{"slow threshold past OpenTimeout", 30 * time.Second, time.Minute, 30 * time.Second, 30 * time.Second},
		{"OpenTimeout under a second", 200 * time.Millisecond, 0, 200 * time.Millisecond, 200 * time.Millisecond},
		{"tiny slow threshold", 30 * time.Second, time.Nanosecond, time.Millisecond, time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, breaker.Config{OpenTimeout: tt.open, SlowCallThreshold: tt.slow, HalfOpenProbes: 1})
			h.b.Trip(context.Background(), 0, "test")
			h.clock.Advance(tt.open)
			release := make(chan struct{})
			started := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = h.b.Execute(context.Background(), func(context.Context) error {
					close(started)
					<-release
					return nil
				})
			}()
			<-started
			check := func(want time.Duration) {
				t.Helper()
				err := h.call(nil)
				if !errors.Is(err, breaker.ErrTooManyProbes) {
					t.Fatalf("call while the probe runs: %v", err)
				}
				if ra, ok := contract.RetryAfter(err); !ok || ra != want {
					t.Fatalf("RetryAfter = %v, %v; want %v", ra, ok, want)
				}
			}
			check(tt.want)
			h.clock.Advance(20 * time.Second)
			check(tt.wantAfter)
			close(release)
			<-done
		})
	}
}

func TestClassification(t *testing.T) {
	caller := []error{
		contract.New(contract.KindInvalid, "op", "bad"),
		contract.New(contract.KindNotFound, "op", "no"),
		contract.New(contract.KindConflict, "op", "dup"),
		contract.New(contract.KindUnauthorized, "op", "who"),
		contract.New(contract.KindForbidden, "op", "no"),
		contract.New(contract.KindPreconditionFailed, "op", "if-match"),
		contract.New(contract.KindTooLarge, "op", "big"),
		context.Canceled,
		fmt.Errorf("wrapped: %w", context.Canceled),
	}
	for _, err := range caller {
		if got := breaker.Classify(err); got != breaker.Ignore {
			t.Errorf("Classify(%v) = %v, want ignored", err, got)
		}
	}
	failures := []error{
		context.DeadlineExceeded,
		contract.New(contract.KindTimeout, "op", "slow"),
		contract.New(contract.KindUnavailable, "op", "down"),
		contract.New(contract.KindInternal, "op", "bug"),
		contract.New(contract.KindRateLimited, "op", "429"),
		contract.New(contract.KindOverloaded, "op", "shed"),
		errors.New("connection reset"),
	}
	for _, err := range failures {
		if got := breaker.Classify(err); got != breaker.Failure {
			t.Errorf("Classify(%v) = %v, want failure", err, got)
		}
	}
	if breaker.Classify(nil) != breaker.Success {
		t.Error("Classify(nil) != success")
	}

	// Caller errors never trip the breaker, however many.
	h := newHarness(t, breaker.Config{})
	for range 100 {
		for _, err := range caller {
			_ = h.call(err)
		}
	}
	h.wantState(breaker.StateClosed)
	if c := h.b.Counts(); c.Ignored != uint32(100*len(caller)) || c.Failures != 0 {
		t.Fatalf("counts %+v", c)
	}
}

func TestSlowCallsCountAsFailures(t *testing.T) {
	h := newHarness(t, breaker.Config{SlowCallThreshold: time.Second, MinCalls: 4, FailureRatio: 1})
	slowOK := func(context.Context) (string, error) {
		h.clock.Advance(2 * time.Second)
		return "ok", nil
	}
	for i := range 4 {
		v, err := breaker.Do(context.Background(), h.b, slowOK)
		if v != "ok" || err != nil {
			t.Fatalf("slow call %d returned %q, %v: its result must be kept", i, v, err)
		}
	}
	h.wantState(breaker.StateOpen)
	// A slow call counts as slow whatever it returned, a caller's error
	// included: the latency is the dependency's. A database that hangs
	// until the callers' clients give up (context.Canceled, ignored when
	// quick) trips the breaker.
	for _, callerErr := range []error{context.Canceled, contract.New(contract.KindInvalid, "op", "bad")} {
		var outcomes []breaker.Outcome
		h2 := newHarness(t, breaker.Config{SlowCallThreshold: time.Second,
			OnCall: func(_ context.Context, o breaker.Outcome) { outcomes = append(outcomes, o) }})
		for range 10 {
			err := h2.b.Execute(context.Background(), func(context.Context) error {
				h2.clock.Advance(5 * time.Second) // hung until the caller went away
				return callerErr
			})
			if err != callerErr && !errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("slow call returned %v, want its own error or, once open, a rejection", err)
			}
		}
		h2.wantState(breaker.StateOpen)
		if fmt.Sprint(outcomes) != "[slow slow slow slow]" {
			t.Fatalf("%v: OnCall saw %v, want 4 slow calls", callerErr, outcomes)
		}
	}
	// A quick caller error stays ignored with slow-call detection on.
	h4 := newHarness(t, breaker.Config{SlowCallThreshold: time.Second})
	for range 10 {
		_ = h4.b.Execute(context.Background(), func(context.Context) error {
			h4.clock.Advance(time.Second)
			return context.Canceled
		})
	}
	h4.wantState(breaker.StateClosed)
	// Calls at the threshold are not slow.
	h3 := newHarness(t, breaker.Config{SlowCallThreshold: time.Second})
	for range 10 {
		_ = h3.b.Execute(context.Background(), func(context.Context) error { h3.clock.Advance(time.Second); return nil })
	}
	h3.wantState(breaker.StateClosed)
}

func TestOpenDelayGrowsWithJitterAndResets(t *testing.T) {
	r := 0.5
	h := newHarness(t, breaker.Config{OpenTimeout: 10 * time.Second, MaxOpenTimeout: 60 * time.Second, Jitter: 0.2,
		HalfOpenProbes: 1, Rand: func() float64 { return r }})
	for range 4 {
		_ = h.call(errDown)
	}
	want := []time.Duration{10 * time.Second, 18 * time.Second, 36 * time.Second, 54 * time.Second, 54 * time.Second}
	for i, w := range want {
		tr := h.trans[len(h.trans)-1]
		if tr.To != breaker.StateOpen || tr.OpenFor != w {
			t.Fatalf("trip %d: %+v, want open for %v", i+1, tr, w)
		}
		h.clock.Advance(w - time.Millisecond)
		h.wantState(breaker.StateOpen)
		h.clock.Advance(time.Millisecond)
		_ = h.call(errDown) // failed probe: next trip
	}
	// A close resets the growth.
	h.clock.Advance(time.Hour)
	_ = h.call(nil)
	h.wantState(breaker.StateClosed)
	for range 4 {
		_ = h.call(errDown)
	}
	if tr := h.trans[len(h.trans)-1]; tr.OpenFor != 10*time.Second {
		t.Fatalf("after close, first trip open for %v", tr.OpenFor)
	}
}

func TestForceOpenClosedReset(t *testing.T) {
	h := newHarness(t, breaker.Config{HalfOpenProbes: 1})
	ctx := context.Background()
	h.b.ForceOpen(ctx, "incident 42")
	h.wantState(breaker.StateForcedOpen)
	h.clock.Advance(24 * time.Hour) // no delay ends a forced open
	err := h.call(nil)
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("forced open let a call through: %v", err)
	}
	h.b.Reset(ctx)
	h.wantState(breaker.StateHalfOpen)
	_ = h.call(nil)
	h.wantState(breaker.StateClosed)

	h.b.ForceClosed(ctx, "")
	h.wantState(breaker.StateForcedClosed)
	for range 50 {
		if err := h.call(errDown); !errors.Is(err, errDown) {
			t.Fatalf("forced closed rejected: %v", err)
		}
	}
	h.wantState(breaker.StateForcedClosed)
	h.b.Reset(ctx)
	h.wantState(breaker.StateClosed)
	if c := h.b.Counts(); c.Failures != 0 {
		t.Fatalf("forced-closed calls were counted: %+v", c)
	}
	// ForceOpen is one transition: the underlying trip is not reported.
	if got := h.path(); got != "closed>forced_open forced_open>half_open half_open>closed closed>forced_closed forced_closed>closed" {
		t.Fatalf("transitions %q", got)
	}
	if h.trans[0].Reason != "incident 42" {
		t.Fatalf("reason %q", h.trans[0].Reason)
	}
}

// Reset after ForceOpen hands back a fresh breaker: the open delay restarts
// from OpenTimeout, whatever trips came before the force (ForceOpen's own
// trip included), so the first failed probe after Reset opens for
// OpenTimeout, not a doubled delay.
func TestResetRestartsTheOpenDelayGrowth(t *testing.T) {
	ctx := context.Background()
	t.Run("ForceOpen", func(t *testing.T) {
		h := newHarness(t, breaker.Config{OpenTimeout: 10 * time.Second, HalfOpenProbes: 1})
		h.b.ForceOpen(ctx, "incident")
		h.b.Reset(ctx)
		h.wantState(breaker.StateHalfOpen)
		_ = h.call(errDown) // the first probe fails
		h.wantState(breaker.StateOpen)
		if tr := h.trans[len(h.trans)-1]; tr.To != breaker.StateOpen || tr.OpenFor != 10*time.Second {
			t.Fatalf("first failed probe after Reset: %+v, want open for 10s (transitions %s)", tr, h.path())
		}
		if ra := h.b.RetryAfter(); ra != 10*time.Second {
			t.Fatalf("RetryAfter = %v, want 10s", ra)
		}
	})
	t.Run("ForceOpen after consecutive trips", func(t *testing.T) {
		h := newHarness(t, breaker.Config{OpenTimeout: 10 * time.Second, HalfOpenProbes: 1})
		for range 4 {
			_ = h.call(errDown)
		}
		h.clock.Advance(10 * time.Second)
		_ = h.call(errDown) // second trip: 20s
		h.wantState(breaker.StateOpen)
		h.b.ForceOpen(ctx, "incident")
		h.b.Reset(ctx)
		h.wantState(breaker.StateHalfOpen)
		_ = h.call(errDown)
		if tr := h.trans[len(h.trans)-1]; tr.To != breaker.StateOpen || tr.OpenFor != 10*time.Second {
			t.Fatalf("first failed probe after Reset: %+v, want open for 10s (transitions %s)", tr, h.path())
		}
	})
}

// Breaker.RetryAfter tells what a call would be told: zero while
// ForceClosed lets every call through, even over an open delay beneath the
// force; while forced open, the hint of its rejections (OpenTimeout), even
// once the underlying delay has passed (no probe goes through until Reset).
func TestRetryAfterWhileForced(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, breaker.Config{OpenTimeout: 10 * time.Second})
	h.b.Trip(ctx, time.Minute, "incident")
	h.b.ForceClosed(ctx, "")
	if err := h.call(nil); err != nil {
		t.Fatalf("forced closed rejected: %v", err)
	}
	if ra := h.b.RetryAfter(); ra != 0 {
		t.Fatalf("RetryAfter while forced closed = %v, want 0", ra)
	}
	h.b.Reset(ctx)
	if ra := h.b.RetryAfter(); ra != time.Minute {
		t.Fatalf("RetryAfter after Reset = %v, want the open delay", ra)
	}

	h2 := newHarness(t, breaker.Config{OpenTimeout: 10 * time.Second})
	h2.b.ForceOpen(ctx, "")
	for _, advance := range []time.Duration{0, time.Hour} {
		h2.clock.Advance(advance)
		err := h2.call(nil)
		want, _ := contract.RetryAfter(err)
		if ra := h2.b.RetryAfter(); ra != want || ra != 10*time.Second {
			t.Fatalf("after %v forced open: RetryAfter = %v, rejection's hint %v, want 10s", advance, ra, want)
		}
	}
}

func TestTripAndProbe(t *testing.T) {
	h := newHarness(t, breaker.Config{HalfOpenProbes: 1})
	ctx := context.Background()
	h.b.Trip(ctx, 5*time.Minute, "tripped by peer")
	h.wantState(breaker.StateOpen)
	if ra := h.b.RetryAfter(); ra != 5*time.Minute {
		t.Fatalf("RetryAfter %v", ra)
	}
	// Tripping again with a longer delay extends it; a shorter one does not shorten it.
	h.b.Trip(ctx, time.Minute, "again")
	if ra := h.b.RetryAfter(); ra != 5*time.Minute {
		t.Fatalf("RetryAfter after shorter trip %v", ra)
	}
	h.b.Probe(ctx)
	h.wantState(breaker.StateHalfOpen)
	_ = h.call(nil)
	h.wantState(breaker.StateClosed)
	if got := h.path(); got != "closed>open open>half_open half_open>closed" {
		t.Fatalf("transitions %q", got)
	}
	if h.trans[0].Reason != "tripped by peer" || h.trans[0].OpenFor != 5*time.Minute {
		t.Fatalf("trip transition %+v", h.trans[0])
	}
}

// ForceClosed lets calls through uncounted: Config.OnCall, through which
// breaker/redisstate shares counts, does not see them either; the metrics do.
func TestForceClosedCallsAreInMetricsOnly(t *testing.T) {
	rec := &recorder{sums: map[string]int64{}}
	var onCall []breaker.Outcome
	b, err := breaker.New(breaker.Config{Name: "pay", MeterProvider: rec, MinCalls: 3, Window: time.Hour,
		OnCall: func(_ context.Context, o breaker.Outcome) { onCall = append(onCall, o) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b.ForceClosed(ctx, "operator: failures expected during migration")
	for range 5 {
		_ = b.Execute(ctx, func(context.Context) error { return errDown })
	}
	if len(onCall) != 0 {
		t.Fatalf("OnCall saw forced-closed calls: %v", onCall)
	}
	if m := rec.collect(); m["sadpath.breaker.calls{breaker.name=pay,outcome=failure}"] != 5 {
		t.Fatalf("forced-closed calls missing from the metrics: %v", m)
	}
	b.Reset(ctx)
	_ = b.Execute(ctx, func(context.Context) error { return errDown })
	if len(onCall) != 1 || onCall[0] != breaker.Failure {
		t.Fatalf("OnCall after Reset: %v, want [failure]", onCall)
	}
}

// A call ForceClosed lets through is in the metrics with the outcome it
// has in every other state: slow past SlowCallThreshold whatever it
// returned (a success, a caller's cancellation), a failure when it panics
// or leaves by runtime.Goexit. The panic still reaches the caller
// unchanged, the goroutine still exits, and OnCall sees none of them.
// (Forced closed, a slow success counted as a success, and a call that
// panicked or exited was not counted at all.)
func TestForceClosedMetricsCountSlowAndPanickingCalls(t *testing.T) {
	rec := &recorder{sums: map[string]int64{}}
	clock := newClock()
	var onCall atomic.Int64
	b, err := breaker.New(breaker.Config{Name: "pay", MeterProvider: rec, Clock: clock, SlowCallThreshold: time.Second,
		Window: time.Hour, OnCall: func(context.Context, breaker.Outcome) { onCall.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b.ForceClosed(ctx, "migration")
	_ = b.Execute(ctx, func(context.Context) error { clock.Advance(5 * time.Second); return nil })
	_ = b.Execute(ctx, func(context.Context) error { clock.Advance(5 * time.Second); return context.Canceled })
	_ = b.Execute(ctx, func(context.Context) error { clock.Advance(time.Second); return nil }) // at the threshold: not slow
	// exit runs a call that panics with v, or leaves by runtime.Goexit
	// when v is nil, on a goroutine of its own.
	exit := func(v any) (recovered any, returned bool) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { recovered = recover() }()
			_ = b.Execute(ctx, func(context.Context) error {
				if v == nil {
					runtime.Goexit()
				}
				panic(v)
			})
			returned = true
		}()
		<-done
		return recovered, returned
	}
	if recovered, returned := exit("driver bug"); recovered != "driver bug" || returned {
		t.Errorf("panic: the caller recovered %v (Execute returned %v), want the original panic value", recovered, returned)
	}
	if recovered, returned := exit(nil); recovered != nil || returned {
		t.Errorf("goexit: Execute returned %v, saw a panic %v; want the goroutine to exit", returned, recovered)
	}
	m := rec.collect()
	for outcome, want := range map[string]int64{"slow": 2, "success": 1, "failure": 2, "ignored": 0} {
		if got := m["sadpath.breaker.calls{breaker.name=pay,outcome="+outcome+"}"]; got != want {
			t.Errorf("forced closed: %d calls counted %s, want %d (all: %v)", got, outcome, want, m)
		}
	}
	if n := onCall.Load(); n != 0 {
		t.Errorf("OnCall saw %d forced-closed calls, want none", n)
	}
	if c := b.Counts(); c.Requests != 0 {
		t.Errorf("the breaker counted forced-closed calls: %+v", c)
	}
}

// Trip takes any duration: one too long to add to the clock ("until further
// notice") opens the breaker for a year, the longest open delay.
func TestTripCapsOpenForAtAYear(t *testing.T) {
	const year = 365 * 24 * time.Hour
	h := newHarness(t, breaker.Config{})
	ctx := context.Background()
	h.clock.Advance(time.Hour) // the breaker has lived a while: now+MaxInt64 overflows
	h.b.Trip(ctx, time.Duration(math.MaxInt64), "maintenance")
	h.wantState(breaker.StateOpen)
	if ra := h.b.RetryAfter(); ra != year {
		t.Fatalf("RetryAfter = %v, want %v", ra, year)
	}
	if tr := h.trans[0]; tr.OpenFor != year {
		t.Fatalf("transition %+v, want open for %v", tr, year)
	}
	h.clock.Advance(year - time.Nanosecond)
	h.wantState(breaker.StateOpen)
	h.clock.Advance(time.Nanosecond)
	h.wantState(breaker.StateHalfOpen)

	// Extending an open breaker is capped alike.
	h2 := newHarness(t, breaker.Config{})
	h2.clock.Advance(time.Hour)
	h2.b.Trip(ctx, time.Minute, "incident")
	h2.b.Trip(ctx, time.Duration(math.MaxInt64), "maintenance")
	if ra := h2.b.RetryAfter(); ra != year {
		t.Fatalf("RetryAfter after extending = %v, want %v", ra, year)
	}
}

// Trip on a half-open breaker whose probe is in flight cannot trip gobreaker
// (the probe slots are taken): it opens by delay alone. The operator's delay
// must stand whatever the probe returns, and the reported transitions must
// follow State(). A probe still running when the Trip lands is ignored, and
// the breaker probes again after the delay; one that had completed (the
// Trip comes from OnCall, before gobreaker counts the result) counts.
func TestTripWhileProbeInFlight(t *testing.T) {
	const hold = time.Hour
	for _, tc := range []struct {
		name      string
		probe     error
		completed bool   // the probe had returned when the Trip landed
		afterHold string // transitions reported by a call after the delay
	}{
		{"running/succeeds", nil, false, "open>half_open half_open>closed"},
		{"running/fails", errDown, false, "open>half_open half_open>closed"},
		{"completed/succeeded", nil, true, "open>closed"},
		{"completed/failed", errDown, true, "open>half_open half_open>closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var b *breaker.Breaker
			trip := func() { b.Trip(ctx, hold, "operator: maintenance") }
			var onCall func()
			h := newHarness(t, breaker.Config{HalfOpenProbes: 1, MinCalls: 1,
				OnCall: func(context.Context, breaker.Outcome) {
					if onCall != nil {
						f := onCall
						onCall = nil
						f()
					}
				}})
			b = h.b
			_ = h.call(errDown) // trips for 10s
			h.clock.Advance(time.Minute)
			if tc.completed {
				onCall = trip
				_ = h.call(tc.probe)
			} else {
				started, release := make(chan struct{}), make(chan struct{})
				done := make(chan struct{})
				go func() {
					defer close(done)
					_ = b.Execute(ctx, func(context.Context) error { close(started); <-release; return tc.probe })
				}()
				<-started
				trip()
				close(release)
				<-done
			}
			h.wantState(breaker.StateOpen)
			if ra := b.RetryAfter(); ra != hold {
				t.Fatalf("RetryAfter = %v, want the Trip's %v (transitions %s)", ra, hold, h.path())
			}
			const before = "closed>open open>half_open half_open>open"
			if got := h.path(); got != before {
				t.Fatalf("transitions %q, want %q", got, before)
			}
			h.clock.Advance(hold - time.Nanosecond)
			h.wantState(breaker.StateOpen)
			h.clock.Advance(time.Nanosecond)
			if err := h.call(nil); err != nil {
				t.Fatalf("call after the delay: %v", err)
			}
			h.wantState(breaker.StateClosed)
			if got, want := h.path(), before+" "+tc.afterHold; got != want {
				t.Fatalf("transitions %q, want %q", got, want)
			}
		})
	}
}

// A half-open probe held off by a Trip is ignored however it ends: like one
// that returns an error, one that panics or leaves by runtime.Goexit
// neither extends the Trip's delay nor counts as a consecutive trip (which
// would double the next open delay). Its panic still reaches its caller
// unchanged, its goroutine still exits, and its probe slot is freed.
func TestTripIgnoresAHeldOffProbeThatPanicsOrExits(t *testing.T) {
	for _, exit := range []string{"error", "panic", "goexit"} {
		t.Run(exit, func(t *testing.T) {
			ctx := context.Background()
			// OpenTimeout 10s, no jitter: the first trip opens for 10s.
			h := newHarness(t, breaker.Config{HalfOpenProbes: 1, MinCalls: 1})
			_ = h.call(errDown)
			h.clock.Advance(time.Minute)
			started, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var recovered any
			returned := false
			go func() {
				defer close(done)
				defer func() { recovered = recover() }()
				_ = h.b.Execute(ctx, func(context.Context) error {
					close(started)
					<-release
					switch exit {
					case "panic":
						panic("driver bug")
					case "goexit":
						runtime.Goexit()
					}
					return errDown
				})
				returned = true
			}()
			<-started
			h.b.Trip(ctx, 5*time.Second, "peer tripped") // the probe is held off: open 5s
			close(release)
			<-done
			switch exit {
			case "panic":
				if recovered != "driver bug" {
					t.Fatalf("the probe's caller recovered %v, want the original panic value", recovered)
				}
			case "goexit":
				if returned || recovered != nil {
					t.Fatalf("goexit: Execute returned %v, saw a panic %v", returned, recovered)
				}
			}
			if ra := h.b.RetryAfter(); ra != 5*time.Second {
				t.Fatalf("the held-off probe changed the Trip's delay: RetryAfter %v, want 5s (transitions %s)", ra, h.path())
			}
			h.clock.Advance(5 * time.Second)
			h.wantState(breaker.StateHalfOpen)
			// The next probe runs (its slot was freed) and fails: the
			// second consecutive trip, 20s; a third would be 40s.
			if err := h.call(errDown); !errors.Is(err, errDown) {
				t.Fatalf("probe after the Trip: %v (transitions %s)", err, h.path())
			}
			h.wantState(breaker.StateOpen)
			const want = "closed>open open>half_open half_open>open open>half_open half_open>open"
			if got := h.path(); got != want {
				t.Fatalf("transitions %q, want %q", got, want)
			}
			if last := h.trans[len(h.trans)-1]; last.OpenFor != 20*time.Second {
				t.Fatalf("failed probe after the Trip opened for %v, want 20s (the second consecutive trip)", last.OpenFor)
			}
		})
	}
}

// A hook may call the breaker: the operator calls report their transitions
// after releasing their lock, so a hook that trips, probes, forces or resets
// the breaker while a transition is reported does not deadlock. Here every
// report but the last makes the next operator call, nested in the hook.
func TestHooksMayCallOperatorMethods(t *testing.T) {
	ctx := context.Background()

	// The plain case: escalate a trip from its own report.
	var once sync.Once
	var b *breaker.Breaker
	b, err := breaker.New(breaker.Config{Name: "dep", DisableMetrics: true,
		OnStateChange: func(ctx context.Context, tr breaker.Transition) {
			if tr.To == breaker.StateOpen {
				once.Do(func() { b.Trip(ctx, time.Hour, "escalate: isolate for an hour") })
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	withinSecond(t, "Trip whose hook calls Trip", func() { b.Trip(ctx, time.Minute, "operator") })
	if st, ra := b.State(), b.RetryAfter(); st != breaker.StateOpen || ra <= time.Minute {
		t.Fatalf("after the escalation: %v for %v, want open for about an hour", st, ra)
	}

	// Every operator call, each from the report of the one before.
	h := newHarness(t, breaker.Config{})
	next := map[string]func(){
		"closed>open":             func() { h.b.Probe(ctx) },
		"open>half_open":          func() { h.b.ForceOpen(ctx, "incident") },
		"half_open>forced_open":   func() { h.b.Reset(ctx) },
		"forced_open>half_open":   func() { h.b.ForceClosed(ctx, "migration") },
		"half_open>forced_closed": func() { h.b.Reset(ctx) },
		"forced_closed>half_open": func() { h.b.Trip(ctx, time.Minute, "again") },
		"half_open>open":          func() {},
	}
	var hookErr atomic.Value
	h2, err := breaker.New(breaker.Config{Name: "dep", DisableMetrics: true, Clock: h.clock,
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			step := tr.From.String() + ">" + tr.To.String()
			h.mu.Lock()
			h.trans = append(h.trans, tr)
			h.mu.Unlock()
			f, ok := next[step]
			if !ok {
				hookErr.Store("unexpected transition " + step)
				return
			}
			f()
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.b = h2
	withinSecond(t, "a chain of operator calls, each from a hook", func() { h.b.Trip(ctx, time.Minute, "operator") })
	if e := hookErr.Load(); e != nil {
		t.Fatalf("%v (transitions %s)", e, h.path())
	}
	const want = "closed>open open>half_open half_open>forced_open forced_open>half_open half_open>forced_closed forced_closed>half_open half_open>open"
	if got := h.path(); got != want {
		t.Fatalf("transitions %q, want %q", got, want)
	}
	h.wantState(breaker.StateOpen)
}

// withinSecond runs f and fails the test if it does not return within a
// second (a deadlock).
func withinSecond(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatalf("%s deadlocked", what)
	}
}

// Operator calls are serialised: two ForceOpen calls report one change to
// forced_open, even when the second comes while the first is reported, and
// whatever operator calls race, the reported transitions chain and none is
// from a state to itself.
func TestConcurrentOperatorCallsReportEachChangeOnce(t *testing.T) {
	ctx := context.Background()
	reporting, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	h := newHarness(t, breaker.Config{})
	b, err := breaker.New(breaker.Config{Name: "dep", DisableMetrics: true,
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			first.Do(func() { close(reporting); <-release }) // the first ForceOpen is being reported
			h.mu.Lock()
			h.trans = append(h.trans, tr)
			h.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.ForceOpen(ctx, "incident")
	}()
	<-reporting
	withinSecond(t, "a second ForceOpen while the first is reported", func() { b.ForceOpen(ctx, "incident") })
	close(release)
	<-done
	if got := h.path(); got != "closed>forced_open" {
		t.Fatalf("transitions %q, want one closed>forced_open", got)
	}

	h = newHarness(t, breaker.Config{})
	ops := []func(){
		func() { h.b.ForceOpen(ctx, "incident") },
		func() { h.b.ForceOpen(ctx, "incident") },
		func() { h.b.ForceClosed(ctx, "migration") },
		func() { h.b.Reset(ctx) },
		func() { h.b.Trip(ctx, time.Minute, "peer") },
		func() { h.b.Probe(ctx) },
	}
	for round := range 200 {
		h.clock.Advance(3 * time.Second) // open delays (10s and up) pass now and then
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 3 {
			op := ops[(round+i*(round%5+1))%len(ops)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				op()
			}()
		}
		close(start)
		wg.Wait()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := breaker.StateClosed
	for i, tr := range h.trans {
		if tr.From != prev || tr.From == tr.To {
			t.Fatalf("transition %d %v>%v after %v", i, tr.From, tr.To, prev)
		}
		prev = tr.To
	}
	if len(h.trans) == 0 || prev != h.b.State() {
		t.Fatalf("%d transitions, the last to %v; state %v", len(h.trans), prev, h.b.State())
	}
}

// An operator's force wins over Trip and Probe (which breaker/redisstate
// calls when peers trip or recover): while forced they do nothing, and no
// transition is reported while State() stays forced. After Reset they work
// again.
func TestProbeAndTripDoNothingWhileForced(t *testing.T) {
	ctx := context.Background()

	h := newHarness(t, breaker.Config{})
	h.b.ForceOpen(ctx, "incident")
	h.b.Probe(ctx) // a peer recovered
	h.b.Trip(ctx, time.Hour, "shared: tripped by instance b")
	h.wantState(breaker.StateForcedOpen)
	if got := h.path(); got != "closed>forced_open" {
		t.Fatalf("forced open: transitions %q", got)
	}
	h.b.Reset(ctx)
	h.wantState(breaker.StateHalfOpen)
	if ra := h.b.RetryAfter(); ra != 0 {
		t.Fatalf("the Trip while forced open left a delay of %v", ra)
	}

	h2 := newHarness(t, breaker.Config{})
	h2.b.ForceClosed(ctx, "migration")
	h2.b.Trip(ctx, time.Minute, "shared: tripped by instance b") // a peer tripped
	h2.b.Probe(ctx)
	h2.wantState(breaker.StateForcedClosed)
	if err := h2.call(nil); err != nil {
		t.Fatalf("forced closed rejected: %v", err)
	}
	h2.b.Reset(ctx)
	h2.wantState(breaker.StateClosed)
	h2.b.Trip(ctx, time.Minute, "shared: tripped by instance b")
	h2.wantState(breaker.StateOpen)
	h2.b.Probe(ctx)
	h2.wantState(breaker.StateHalfOpen)
	const want = "closed>forced_closed forced_closed>closed closed>open open>half_open"
	if got := h2.path(); got != want {
		t.Fatalf("transitions %q, want %q", got, want)
	}
}

// ForceOpen is reported as one transition from the state it leaves, forced
// closed included, so the reported transitions chain.
func TestForceOpenFromForcedClosedIsOneTransition(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, breaker.Config{})
	h.b.ForceClosed(ctx, "migration")
	h.b.ForceOpen(ctx, "incident")
	h.wantState(breaker.StateForcedOpen)
	h.b.Reset(ctx)
	h.wantState(breaker.StateHalfOpen)
	const want = "closed>forced_closed forced_closed>forced_open forced_open>half_open"
	if got := h.path(); got != want {
		t.Fatalf("transitions %q, want %q", got, want)
	}
	if r := h.trans[1].Reason; r != "incident" {
		t.Fatalf("reason %q", r)
	}
}

// State() says half-open as soon as the open delay has passed, before the
// end of the delay is reported (by the next call, usually). An operator call
// in between reports that end first, so the transitions still chain; Reset
// from forced closed hands back half-open, and the next call does not report
// the end of a delay that passed while forced.
func TestOperatorCallsAfterAnElapsedDelayKeepTheChain(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ops  func(h *harness)
		want string
	}{
		{"ForceClosed", func(h *harness) {
			h.clock.Advance(time.Minute)
			h.b.ForceClosed(ctx, "migration")
			h.b.Reset(ctx)
		}, "closed>open open>half_open half_open>forced_closed forced_closed>half_open half_open>closed"},
		{"ForceOpen", func(h *harness) {
			h.clock.Advance(time.Minute)
			h.b.ForceOpen(ctx, "incident")
			h.b.Reset(ctx)
		}, "closed>open open>half_open half_open>forced_open forced_open>half_open half_open>closed"},
		{"Reset", func(h *harness) {
			h.b.ForceClosed(ctx, "migration")
			h.clock.Advance(time.Minute)
			h.b.Reset(ctx)
		}, "closed>open open>forced_closed forced_closed>half_open half_open>closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, breaker.Config{HalfOpenProbes: 1})
			h.b.Trip(ctx, 10*time.Second, "operator")
			tc.ops(h)
			h.wantState(breaker.StateHalfOpen)
			if err := h.call(nil); err != nil {
				t.Fatalf("probe: %v", err)
			}
			h.wantState(breaker.StateClosed)
			if got := h.path(); got != tc.want {
				t.Fatalf("transitions %q, want %q", got, tc.want)
			}
		})
	}
}

// A call whose function leaves by runtime.Goexit (t.FailNow in a test
// helper, wrappers that call Goexit) counts as a failure, like a panic, and
// its goroutine still exits. A probe that does so frees its half-open slot:
// the breaker reopens instead of rejecting every call for good.
func TestGoexitInProbeFreesItsSlot(t *testing.T) {
	var onCall []breaker.Outcome
	var mu sync.Mutex
	h := newHarness(t, breaker.Config{HalfOpenProbes: 1, MinCalls: 1,
		OnCall: func(_ context.Context, o breaker.Outcome) { mu.Lock(); onCall = append(onCall, o); mu.Unlock() }})
	goexit := func() (exited, recovered bool) {
		done := make(chan struct{})
		exited = true
		go func() {
			defer close(done)
			defer func() { recovered = recover() != nil }()
			_ = h.b.Execute(context.Background(), func(context.Context) error { runtime.Goexit(); return nil })
			exited = false
		}()
		<-done
		return exited, recovered
	}
	if exited, recovered := goexit(); !exited || recovered { // closed: counts as a failure and trips
		t.Fatalf("closed: goroutine exited %v, saw a panic %v", exited, recovered)
	}
	h.wantState(breaker.StateOpen)
	h.clock.Advance(time.Minute)
	if exited, recovered := goexit(); !exited || recovered { // the probe
		t.Fatalf("probe: goroutine exited %v, saw a panic %v", exited, recovered)
	}
	h.wantState(breaker.StateOpen) // the probe failed: reopened, not stuck half-open
	h.clock.Advance(24 * time.Hour)
	if err := h.call(nil); err != nil {
		t.Fatalf("a day later the breaker is %v and rejects: %v (transitions %s)", h.b.State(), err, h.path())
	}
	h.wantState(breaker.StateClosed)
	const want = "closed>open open>half_open half_open>open open>half_open half_open>closed"
	if got := h.path(); got != want {
		t.Fatalf("transitions %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(onCall) != "[failure failure success]" {
		t.Fatalf("OnCall saw %v", onCall)
	}
}

// A call that started before a state change and ends after it belongs to the
// state before: gobreaker discards its result, and Config.OnCall (which
// breaker/redisstate shares) does not see it either; the metrics count it.
// Here calls in flight when the breaker trips fail (or panic) after the trip,
// and a probe held off by a Trip succeeds.
func TestCallsSpanningAStateChangeAreInMetricsOnly(t *testing.T) {
	rec := &recorder{sums: map[string]int64{}}
	clock := newClock()
	var mu sync.Mutex
	var onCall []breaker.Outcome
	b, err := breaker.New(breaker.Config{Name: "pay", MeterProvider: rec, Clock: clock, MinCalls: 2, FailureRatio: 1,
		HalfOpenProbes: 1, Window: time.Hour, OpenTimeout: 10 * time.Second,
		OnCall: func(_ context.Context, o breaker.Outcome) { mu.Lock(); onCall = append(onCall, o); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Two calls in flight, slow to end...
	started, release := make(chan struct{}, 2), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = b.Execute(ctx, func(context.Context) error { started <- struct{}{}; <-release; return errDown })
	}()
	go func() {
		defer wg.Done()
		defer func() { _ = recover() }()
		_ = b.Execute(ctx, func(context.Context) error { started <- struct{}{}; <-release; panic("boom") })
	}()
	<-started
	<-started
	// ...while two quick failures trip the breaker.
	for range 2 {
		_ = b.Execute(ctx, func(context.Context) error { return errDown })
	}
	if st := b.State(); st != breaker.StateOpen {
		t.Fatalf("state %v", st)
	}
	close(release)
	wg.Wait()

	// A probe in flight when a Trip lands.
	clock.Advance(time.Minute)
	probing, done := make(chan struct{}), make(chan struct{})
	release = make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Execute(ctx, func(context.Context) error { close(probing); <-release; return nil })
	}()
	<-probing
	b.Trip(ctx, time.Hour, "operator")
	close(release)
	<-done

	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(onCall) != "[failure failure]" {
		t.Fatalf("OnCall saw %v, want the two failures that tripped the breaker", onCall)
	}
	m := rec.collect()
	if f, s := m["sadpath.breaker.calls{breaker.name=pay,outcome=failure}"], m["sadpath.breaker.calls{breaker.name=pay,outcome=success}"]; f != 4 || s != 1 {
		t.Fatalf("metrics counted %d failures and %d successes, want 4 and 1: %v", f, s, m)
	}
	if ra := b.RetryAfter(); ra != time.Hour {
		t.Fatalf("RetryAfter %v, want the Trip's hour", ra)
	}
}

func TestPanicCountsAsFailureAndRepanics(t *testing.T) {
	h := newHarness(t, breaker.Config{MinCalls: 3, FailureRatio: 1})
	for i := range 3 {
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v, want the original panic value", r)
				}
			}()
			_ = h.b.Execute(context.Background(), func(context.Context) error { panic("boom") })
			t.Fatalf("call %d did not panic", i)
		}()
	}
	h.wantState(breaker.StateOpen)
	if got := h.path(); got != "closed>open" {
		t.Fatalf("transitions %q", got)
	}
	// The breaker still works: probes run and close it.
	h.clock.Advance(time.Minute)
	for range 3 {
		if err := h.call(nil); err != nil {
			t.Fatalf("probe: %v", err)
		}
	}
	h.wantState(breaker.StateClosed)
}

type ctxKey struct{}

func TestHooksGetTheCausingContextAndLogOnce(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	h := newHarness(t, breaker.Config{Logger: logger, MinCalls: 2, FailureRatio: 1, HalfOpenProbes: 1})
	for i := range 2 {
		ctx := context.WithValue(logctx.WithCorrelationID(context.Background(), fmt.Sprint("req-", i)), ctxKey{}, i)
		_ = h.b.Execute(ctx, func(context.Context) error { return errDown })
	}
	for range 5 {
		_ = h.call(nil) // rejected: no further logs
	}
	h.mu.Lock()
	if len(h.ctxs) != 1 || h.ctxs[0].Value(ctxKey{}) != 1 {
		t.Fatalf("hook contexts %v: want the second (tripping) call's", h.ctxs)
	}
	h.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want exactly one log line, got %d:\n%s", len(lines), buf.String())
	}
	for _, want := range []string{`"msg":"breaker opened: failing fast"`, `"decision":"breaker opened: failing fast"`,
		`"dependency":"dep"`, `"from":"closed"`, `"state":"open"`, `"failures":2`, `"level":"WARN"`, `"open_for":`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line lacks %s: %s", want, lines[0])
		}
	}
}

func TestConcurrentCallsKeepCountsExact(t *testing.T) {
	h := newHarness(t, breaker.Config{MinCalls: 1 << 20})
	var ran atomic.Int64
	var wg sync.WaitGroup
	const G, N = 16, 500
	for g := range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range N {
				var err error
				switch (g + i) % 3 {
				case 1:
					err = errDown
				case 2:
					err = contract.New(contract.KindInvalid, "op", "bad")
				}
				_ = h.b.Execute(context.Background(), func(context.Context) error { ran.Add(1); return err })
				_ = h.b.State()
			}
		}()
	}
	wg.Wait()
	c := h.b.Counts()
	if int64(c.Requests) != ran.Load() || ran.Load() != G*N || c.Successes+c.Failures+c.Ignored != G*N {
		t.Fatalf("counts %+v, ran %d", c, ran.Load())
	}
}

func TestConcurrentTripUnderLoad(t *testing.T) {
	h := newHarness(t, breaker.Config{MinCalls: 10, FailureRatio: 0.5, HalfOpenProbes: 2})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = h.call(errDown)
			}
		}()
	}
	for range 50 {
		h.clock.Advance(time.Minute)
		time.Sleep(100 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	// Every reported transition chains: each From is the previous To.
	path := h.path()
	h.mu.Lock()
	defer h.mu.Unlock()
	prev := breaker.StateClosed
	for i, tr := range h.trans {
		if tr.From != prev {
			t.Fatalf("transition %d %v>%v does not follow %v (%s)", i, tr.From, tr.To, prev, path)
		}
		prev = tr.To
	}
}

func TestRollingWindowForgetsOldFailures(t *testing.T) {
	// gobreaker counts the window on the system clock: a short real window.
	h := newHarness(t, breaker.Config{Window: 40 * time.Millisecond, Buckets: 2, MinCalls: 4, FailureRatio: 0.5})
	for range 3 {
		_ = h.call(errDown)
	}
	time.Sleep(100 * time.Millisecond)
	_ = h.call(errDown) // 1 failure in the window: below MinCalls
	h.wantState(breaker.StateClosed)
	if c := h.b.Counts(); c.Failures != 1 {
		t.Fatalf("counts after the window rolled: %+v", c)
	}
}

// Counts follows the rolling window: once the window has passed, the calls
// counted in it are gone even when no call came since.
func TestCountsForgetPassedWindow(t *testing.T) {
	// gobreaker counts the window on the system clock (Config.Clock does not
	// reach it), so the window is real. It is long enough that the calls
	// below are counted unless the test stalls for a whole second; the
	// forgetting is then checked once the window has surely passed, so a
	// stall there only makes the test slower.
	const window = time.Second
	h := newHarness(t, breaker.Config{Window: window, Buckets: 2, MinCalls: 100})
	for range 5 {
		_ = h.call(errDown)
	}
	if c := h.b.Counts(); c.Failures != 5 {
		t.Fatalf("counts %+v, want 5 failures", c)
	}
	// The buckets start at the breaker's creation, each Window/Buckets long
	// (rounded down): a call's bucket began at or before the call, and is
	// dropped Buckets periods after it began, so at most window after the
	// last call. Sleeping at least that long after the calls is enough.
	time.Sleep(window)
	if c := h.b.Counts(); c.Requests != 0 || c.Failures != 0 {
		t.Fatalf("counts %+v after the window passed, want zero", c)
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		cfg   breaker.Config
		field string
	}{
		{breaker.Config{}, "Config.Name"},
		{breaker.Config{Name: strings.Repeat("x", 300)}, "Config.Name"},
		{breaker.Config{Name: "pay\xffments"}, "Config.Name"},
		{breaker.Config{Name: "n", Window: -1}, "Config.Window"},
		{breaker.Config{Name: "n", Window: time.Millisecond, Buckets: 10}, "Config.Window"},
		{breaker.Config{Name: "n", Buckets: -1}, "Config.Buckets"},
		{breaker.Config{Name: "n", Buckets: 5000}, "Config.Buckets"},
		{breaker.Config{Name: "n", MinCalls: -1}, "Config.MinCalls"},
		{breaker.Config{Name: "n", FailureRatio: -0.1}, "Config.FailureRatio"},
		{breaker.Config{Name: "n", FailureRatio: 1.5}, "Config.FailureRatio"},
		{breaker.Config{Name: "n", SlowCallThreshold: -time.Second}, "Config.SlowCallThreshold"},
		{breaker.Config{Name: "n", OpenTimeout: -time.Second}, "Config.OpenTimeout"},
		{breaker.Config{Name: "n", MaxOpenTimeout: -time.Second}, "Config.MaxOpenTimeout"},
		{breaker.Config{Name: "n", OpenTimeout: time.Minute, MaxOpenTimeout: time.Second}, "Config.MaxOpenTimeout"},
		{breaker.Config{Name: "n", Jitter: 2}, "Config.Jitter"},
		{breaker.Config{Name: "n", HalfOpenProbes: -3}, "Config.HalfOpenProbes"},
	}
	for _, c := range cases {
		_, err := breaker.New(c.cfg)
		if !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("%+v: err = %v, want KindInvalid", c.cfg, err)
			continue
		}
		if !utf8.ValidString(err.Error()) {
			t.Errorf("error %q is not valid UTF-8", err)
		}
		ce := contract.As(err)
		if ce.Code != breaker.CodeConfigInvalid || !strings.HasPrefix(ce.Detail, c.field+":") ||
			!strings.HasPrefix(err.Error(), "breaker: invalid (config.invalid): "+c.field) {
			t.Errorf("error %q (detail %q), want it to name %s", err, ce.Detail, c.field)
		}
	}
	for _, c := range []breaker.Config{
		{Name: "n", Window: 1 << 62},
		{Name: "n", OpenTimeout: 1 << 62},
		{Name: "n", MaxOpenTimeout: 1 << 62},
	} {
		if _, err := breaker.New(c); !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("huge duration accepted: %+v", c)
		}
	}
	if _, err := breaker.New(breaker.Config{Name: "ok", OpenTimeout: 8760 * time.Hour, Window: 720 * time.Hour}); err != nil {
		t.Errorf("largest durations: %v", err)
	}
}

func TestNilContextAndClose(t *testing.T) {
	b, err := breaker.New(breaker.Config{Name: "nil-ctx", MinCalls: 1, FailureRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1012 a nil context must not panic
	err = b.Execute(nil, func(context.Context) error { return errDown }) //nolint:staticcheck
	if !errors.Is(err, errDown) || b.State() != breaker.StateOpen {
		t.Fatalf("nil ctx: %v %v", err, b.State())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
