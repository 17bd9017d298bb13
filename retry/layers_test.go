package retry_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// alwaysFailing returns fn, which always fails with err, and its call count.
func alwaysFailing(err error) (func(context.Context) (int, error), *atomic.Int32) {
	var n atomic.Int32
	return func(context.Context) (int, error) {
		n.Add(1)
		return 0, err
	}, &n
}

// TestNestedDoRetriesAtOneLayer: a Do around a Do over a dependency that
// always fails makes the inner MaxAttempts calls, not MaxAttempts², and the
// caller still learns why the inner layer gave up.
func TestNestedDoRetriesAtOneLayer(t *testing.T) {
	clk := retrytest.NewClock()
	inner := constPolicy(t, clk, retry.Config{Name: "inner"})
	outer := constPolicy(t, clk, retry.Config{Name: "outer"})
	fn, calls := alwaysFailing(unavailable())
	_, err := retry.Do(context.Background(), outer, func(ctx context.Context) (int, error) {
		return retry.Do(ctx, inner, fn)
	})
	if got := calls.Load(); got != retry.DefaultMaxAttempts {
		t.Fatalf("%d calls, want %d (the inner layer's attempts only)", got, retry.DefaultMaxAttempts)
	}
	if !errors.Is(err, retry.StopAttempts) || !errors.Is(err, contract.ErrUnavailable) {
		t.Errorf("err = %v; want the inner give-up (attempts exhausted) and the dependency's error", err)
	}
	var re *retry.Error
	if !errors.As(err, &re) || re.Op != "outer" || re.Attempts != 1 || re.Reason != retry.StopPermanent {
		t.Errorf("outer error = %+v; want one outer attempt, the inner give-up final", re)
	}
	if n := len(clk.Sleeps()); n != retry.DefaultMaxAttempts-1 {
		t.Errorf("%d waits, want %d (the inner layer's)", n, retry.DefaultMaxAttempts-1)
	}
}

// TestNestedDoEveryGiveUpIsFinal: whatever made the inner layer give up
// after retrying, the outer layer does not retry it.
func TestNestedDoEveryGiveUpIsFinal(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cfg   retry.Config
		ctx   func(*retrytest.Clock) (context.Context, context.CancelFunc)
		want  retry.StopReason
		calls int32
	}{
		{name: "budget", cfg: retry.Config{Budget: emptyBudget{}}, want: retry.StopBudget, calls: 1},
		{name: "attempts", cfg: retry.Config{MaxAttempts: 4}, want: retry.StopAttempts, calls: 4},
		{name: "elapsed", cfg: retry.Config{MaxAttempts: 10, MaxElapsedTime: 250 * time.Millisecond}, want: retry.StopElapsed, calls: 3},
		{name: "deadline", cfg: retry.Config{MaxAttempts: 10, AttemptTimeout: time.Second}, want: retry.StopDeadline, calls: 1,
			ctx: func(clk *retrytest.Clock) (context.Context, context.CancelFunc) {
				return context.WithDeadline(context.Background(), clk.Now().Add(time.Second))
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := retrytest.NewClock()
			inner := constPolicy(t, clk, tt.cfg)
			outer := constPolicy(t, clk, retry.Config{MaxAttempts: 5})
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx(clk)
			}
			defer cancel()
			fn, calls := alwaysFailing(unavailable())
			_, err := retry.Do(ctx, outer, func(ctx context.Context) (int, error) {
				return retry.Do(ctx, inner, fn)
			})
			if calls.Load() != tt.calls || !errors.Is(err, tt.want) {
				t.Errorf("%d calls, err %v; want %d calls and %v", calls.Load(), err, tt.calls, tt.want)
			}
		})
	}
}

// TestNestedDoContextEnded: the caller's context ending during the inner
// layer's wait ends both layers (StopContext), with no further attempt.
func TestNestedDoContextEnded(t *testing.T) {
	clk := retrytest.NewClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk.OnSleep(func(time.Duration) { cancel() })
	inner := constPolicy(t, clk, retry.Config{})
	outer := constPolicy(t, clk, retry.Config{})
	fn, calls := alwaysFailing(unavailable())
	_, err := retry.Do(ctx, outer, func(ctx context.Context) (int, error) {
		return retry.Do(ctx, inner, fn)
	})
	var re *retry.Error
	if calls.Load() != 1 || !errors.As(err, &re) || re.Reason != retry.StopContext || !errors.Is(err, context.Canceled) {
		t.Errorf("%d calls, err %v; want 1 call and the outer layer stopped by the context", calls.Load(), err)
	}
}

// TestNestedDoClassifierOverrides: a Classifier may still choose to retry
// an inner layer's give-up.
func TestNestedDoClassifierOverrides(t *testing.T) {
	clk := retrytest.NewClock()
	inner := constPolicy(t, clk, retry.Config{})
	outer := constPolicy(t, clk, retry.Config{Classifier: func(err error) retry.Class {
		if errors.Is(err, retry.StopAttempts) {
			return retry.Transient
		}
		return retry.Unknown
	}})
	fn, calls := alwaysFailing(unavailable())
	_, err := retry.Do(context.Background(), outer, func(ctx context.Context) (int, error) {
		return retry.Do(ctx, inner, fn)
	})
	var re *retry.Error
	if calls.Load() != 9 || !errors.As(err, &re) || re.Reason != retry.StopAttempts || re.Attempts != 3 {
		t.Errorf("%d calls, err %v; want 9 calls, the outer layer retrying as told", calls.Load(), err)
	}
}

// TestDoOverTransportWithEmptyBudget: a Do around an http.Client whose
// Transport's budget refuses retries does not retry the Transport's
// give-up, which reaches it wrapped in a *url.Error: the dependency sees
// one attempt, as the budget decided.
func TestDoOverTransportWithEmptyBudget(t *testing.T) {
	clk := retrytest.NewClock()
	var sent atomic.Int32
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		sent.Add(1)
		return nil, syscall.ECONNREFUSED
	})
	tr := newTransport(t, base, clk, retry.TransportConfig{}, retry.Config{Budget: emptyBudget{}})
	client := &http.Client{Transport: tr}
	outer := constPolicy(t, clk, retry.Config{})
	_, err := retry.Do(context.Background(), outer, func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://dep.test/", nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	})
	var ue *url.Error
	if sent.Load() != 1 || !errors.Is(err, retry.StopBudget) || !errors.As(err, &ue) {
		t.Errorf("%d requests sent, err %v; want 1 and the Transport's budget give-up through *url.Error", sent.Load(), err)
	}
}

// TestTransportOverTransport: a Transport whose base is another Transport
// sends the inner Transport's attempts only.
func TestTransportOverTransport(t *testing.T) {
	clk := retrytest.NewClock()
	var sent atomic.Int32
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		sent.Add(1)
		return nil, syscall.ECONNREFUSED
	})
	inner := newTransport(t, base, clk, retry.TransportConfig{}, retry.Config{})
	outer := newTransport(t, inner, clk, retry.TransportConfig{}, retry.Config{})
	req, _ := http.NewRequest(http.MethodGet, "http://dep.test/", nil)
	resp, err := (&http.Client{Transport: outer}).Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	if sent.Load() != retry.DefaultMaxAttempts || !errors.Is(err, retry.StopAttempts) {
		t.Errorf("%d requests sent, err %v; want %d and attempts exhausted", sent.Load(), err, retry.DefaultMaxAttempts)
	}
}

// TestDoOverTransportGivingUpOnAStatus: the Transport gives up on a status
// with the last response, not an error; an outer Do that makes the error
// it builds from that response final, as the Transport's doc says, sends
// the Transport's attempts only.
func TestDoOverTransportGivingUpOnAStatus(t *testing.T) {
	clk := retrytest.NewClock()
	base := &scripted{steps: []step{{status: http.StatusServiceUnavailable}}}
	tr := newTransport(t, base, clk, retry.TransportConfig{}, retry.Config{})
	client := &http.Client{Transport: tr}
	outer := constPolicy(t, clk, retry.Config{})
	_, err := retry.Do(context.Background(), outer, func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://dep.test/", nil)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			return 0, contract.ErrorFromStatus(resp.StatusCode, resp.Header).WithRetryable(false)
		}
		return resp.StatusCode, nil
	})
	base.mu.Lock()
	sent := len(base.seen)
	base.mu.Unlock()
	if sent != retry.DefaultMaxAttempts || !errors.Is(err, contract.ErrUnavailable) || !errors.Is(err, retry.StopPermanent) {
		t.Errorf("%d requests sent, err %v; want %d and the 503 final", sent, err, retry.DefaultMaxAttempts)
	}
}

// TestNestedDoOuterAttemptTimeoutStillRetries: an outer Do's
// AttemptTimeout that ends a hung inner attempt is the outer layer's own
// timeout, not the inner layer giving up after retrying: the inner layer's
// StopContext give-up is retried by the outer layer, as any timed-out
// attempt is.
func TestNestedDoOuterAttemptTimeoutStillRetries(t *testing.T) {
	clk := retrytest.NewClock()
	inner := constPolicy(t, clk, retry.Config{Name: "inner"})
	outer := constPolicy(t, clk, retry.Config{Name: "outer", AttemptTimeout: 10 * time.Millisecond})
	var calls atomic.Int32
	fn := func(ctx context.Context) (int, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done() // the dependency hangs until the outer attempt times out
			return 0, ctx.Err()
		}
		return 7, nil
	}
	v, err := retry.Do(context.Background(), outer, func(ctx context.Context) (int, error) {
		return retry.Do(ctx, inner, fn)
	})
	if v != 7 || err != nil || calls.Load() != 2 {
		t.Fatalf("Do = %v, %v after %d calls; want 7 at the second outer attempt", v, err, calls.Load())
	}
}

// TestNestedDoOverloadedCountedOnce: an inner layer that stops as
// Overloaded logs and counts its give-up; the outer layer returns it at once
// without logging or counting a second give-up for the same failure.
func TestNestedDoOverloadedCountedOnce(t *testing.T) {
	for _, innerFails := range []int{0, 2} { // overloaded at once, or after two retried failures
		clk := retrytest.NewClock()
		var sink logSink
		mp := newFakeMeterProvider()
		cfg := retry.Config{Logger: sink.logger(), MeterProvider: mp}
		cfg.Name = "inner"
		inner := constPolicy(t, clk, cfg)
		cfg.Name = "outer"
		outer := constPolicy(t, clk, cfg)
		var calls atomic.Int32
		_, err := retry.Do(context.Background(), outer, func(ctx context.Context) (int, error) {
			return retry.Do(ctx, inner, func(context.Context) (int, error) {
				if int(calls.Add(1)) <= innerFails {
					return 0, unavailable()
				}
				return 0, contract.New(contract.KindOverloaded, "dep.call", "shedding")
			})
		})
		if got := int(calls.Load()); got != innerFails+1 {
			t.Fatalf("inner fails %d: %d calls, want %d", innerFails, got, innerFails+1)
		}
		var re *retry.Error
		if !errors.As(err, &re) || re.Op != "outer" || re.Attempts != 1 || re.Reason != retry.StopOverloaded {
			t.Fatalf("inner fails %d: err %v; want the outer layer stopped as overloaded after one attempt", innerFails, err)
		}
		if n := mp.count("sadpath.retry.give_ups"); n != 1 {
			t.Errorf("inner fails %d: %d give-ups counted, want 1 (the inner layer's)", innerFails, n)
		}
		var gaveUp []any
		for _, r := range sink.records(t) {
			if r["msg"] == "gave up retrying" {
				gaveUp = append(gaveUp, r[logctx.KeyDependency])
			}
		}
		if len(gaveUp) != 1 || gaveUp[0] != "inner" {
			t.Errorf("inner fails %d: give-up lines from %v, want one, from the inner layer", innerFails, gaveUp)
		}
	}
}

// TestDoAroundOpenBreaker: retry around a breaker (the documented wiring:
// a retry.Transport over a breaker.Transport, or Do around breaker.Do).
// An open breaker's rejection says exactly when it lets a call through
// again. A retry before then meets the same rejection: Do used to cap the
// hint at MaxDelay and sleep into it (twice under the defaults: 20 s of a
// fail-fast breaker's 30 s), then give up anyway. It now gives up at once
// when the hint is longer than MaxDelay, and waits for the probe when it
// is not.
func TestDoAroundOpenBreaker(t *testing.T) {
	ctx := context.Background()
	newBreaker := func(t *testing.T, clk *retrytest.Clock, openFor time.Duration) *breaker.Breaker {
		t.Helper()
		b, err := breaker.New(breaker.Config{Name: "dep", Clock: clk, DisableMetrics: true})
		if err != nil {
			t.Fatal(err)
		}
		b.Trip(ctx, openFor, "test")
		return b
	}
	t.Run("open longer than MaxDelay: no wait, no retry", func(t *testing.T) {
		clk := retrytest.NewClock()
		b := newBreaker(t, clk, 30*time.Second)
		sink := &logSink{}
		p := constPolicy(t, clk, retry.Config{MaxDelay: time.Second, Logger: sink.logger()})
		fn, calls := failing()
		_, err := retry.Do(ctx, p, func(ctx context.Context) (int, error) { return breaker.Do(ctx, b, fn) })
		if recs := sink.records(t); len(recs) != 0 {
			t.Errorf("logged %v; want nothing: the breaker logged its opening, not each call it turns away", recs)
		}
		if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, retry.StopRetryAfter) {
			t.Errorf("err = %v; want the breaker's rejection, StopRetryAfter", err)
		}
		if got := clk.Sleeps(); len(got) != 0 || calls.Load() != 0 {
			t.Errorf("sleeps = %v, %d calls; want none: every retry before the probe is rejected", got, calls.Load())
		}
		var re *retry.Error
		if !errors.As(err, &re) || re.Attempts != 1 {
			t.Errorf("err = %+v; want one attempt", re)
		}
	})
	t.Run("open within MaxDelay: waits for the probe", func(t *testing.T) {
		clk := retrytest.NewClock()
		b := newBreaker(t, clk, 3*time.Second)
		p := constPolicy(t, clk, retry.Config{MaxDelay: 5 * time.Second})
		fn, calls := failing()
		v, err := retry.Do(ctx, p, func(ctx context.Context) (int, error) { return breaker.Do(ctx, b, fn) })
		if v != 42 || err != nil || calls.Load() != 1 {
			t.Errorf("Do = %v, %v after %d calls; want the probe to succeed", v, err, calls.Load())
		}
		if got := clk.Sleeps(); len(got) != 1 || got[0] != 3*time.Second {
			t.Errorf("sleeps = %v, want [3s]: the time until the probe", got)
		}
	})
	t.Run("through the Transports", func(t *testing.T) {
		clk := retrytest.NewClock()
		reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{Clock: clk, DisableMetrics: true}})
		if err != nil {
			t.Fatal(err)
		}
		reg.Get("dep.example").Trip(ctx, 30*time.Second, "test")
		var sent atomic.Int32
		base := roundTripFunc(func(*http.Request) (*http.Response, error) { sent.Add(1); return nil, errors.New("unreachable") })
		bt, err := breaker.NewTransport(breaker.TransportConfig{Registry: reg, Next: base})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := retry.NewTransport(retry.TransportConfig{Base: bt, Policy: constPolicy(t, clk, retry.Config{})})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://dep.example/x", nil)
		_, err = (&http.Client{Transport: rt}).Do(req)
		if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, retry.StopRetryAfter) || sent.Load() != 0 || len(clk.Sleeps()) != 0 {
			t.Errorf("err = %v, %d sent, sleeps %v; want the rejection at once", err, sent.Load(), clk.Sleeps())
		}
	})
}
