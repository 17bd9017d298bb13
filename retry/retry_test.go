package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// failing returns fn failing with errs in turn, then succeeding with 42,
// and the count of calls.
func failing(errs ...error) (func(context.Context) (int, error), *atomic.Int32) {
	var n atomic.Int32
	return func(context.Context) (int, error) {
		i := int(n.Add(1)) - 1
		if i < len(errs) {
			return -i, errs[i]
		}
		return 42, nil
	}, &n
}

func constPolicy(t testing.TB, clk retry.Clock, cfg retry.Config) *retry.Policy {
	cfg.Clock = clk
	if cfg.InitialDelay == 0 {
		cfg.InitialDelay = 100 * time.Millisecond
		cfg.Strategy = retry.Constant
	}
	return mustPolicy(t, cfg)
}

func TestFirstTrySuccess(t *testing.T) {
	clk := retrytest.NewClock()
	fn, calls := failing()
	v, err := retry.Do(context.Background(), constPolicy(t, clk, retry.Config{}), fn)
	if v != 42 || err != nil || calls.Load() != 1 || len(clk.Sleeps()) != 0 {
		t.Errorf("Do = %v, %v after %d calls, %d sleeps; want 42, nil, 1, 0", v, err, calls.Load(), len(clk.Sleeps()))
	}
}

func TestTransientThenSuccess(t *testing.T) {
	clk := retrytest.NewClock()
	fn, calls := failing(unavailable(), contract.New(contract.KindTimeout, "dep", "slow"))
	v, err := retry.Do(context.Background(), constPolicy(t, clk, retry.Config{}), fn)
	if v != 42 || err != nil {
		t.Fatalf("Do = %v, %v; want 42, nil", v, err)
	}
	if calls.Load() != 3 {
		t.Errorf("calls = %d, want 3", calls.Load())
	}
	if got := clk.Sleeps(); len(got) != 2 || got[0] != 100*time.Millisecond || got[1] != 100*time.Millisecond {
		t.Errorf("sleeps = %v, want [100ms 100ms]", got)
	}
}

func TestDoVoid(t *testing.T) {
	clk := retrytest.NewClock()
	n := 0
	err := retry.DoVoid(context.Background(), constPolicy(t, clk, retry.Config{}), func(context.Context) error {
		n++
		if n < 2 {
			return unavailable()
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Errorf("DoVoid = %v after %d calls; want nil after 2", err, n)
	}
}

// TestStopReasons covers every way Do gives up, with the final error's
// attempts, elapsed time, reason, cause and unwrapping.
func TestStopReasons(t *testing.T) {
	permanent := contract.New(contract.KindInvalid, "dep", "bad amount")
	overloaded := contract.New(contract.KindOverloaded, "dep", "shedding")
	tests := []struct {
		name     string
		cfg      retry.Config
		errs     []error
		deadline time.Duration // 0: none
		cancelAt int           // cancel ctx in the n-th sleep; 0: never
		reason   retry.StopReason
		attempts int
		elapsed  time.Duration
		cause    error
	}{
		{name: "attempts", cfg: retry.Config{MaxAttempts: 3},
			errs: []error{unavailable(), unavailable(), unavailable()}, reason: retry.StopAttempts, attempts: 3, elapsed: 200 * time.Millisecond, cause: contract.ErrUnavailable},
		{name: "elapsed", cfg: retry.Config{MaxAttempts: 10, MaxElapsedTime: 250 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
			errs: repeat(unavailable(), 10), reason: retry.StopElapsed, attempts: 3, elapsed: 200 * time.Millisecond, cause: contract.ErrUnavailable},
		{name: "deadline", cfg: retry.Config{MaxAttempts: 10}, deadline: 250 * time.Millisecond,
			errs: repeat(unavailable(), 10), reason: retry.StopDeadline, attempts: 3, elapsed: 200 * time.Millisecond, cause: context.DeadlineExceeded},
		{name: "permanent", cfg: retry.Config{}, errs: []error{permanent}, reason: retry.StopPermanent, attempts: 1, cause: contract.ErrInvalid},
		{name: "permanent after transient", cfg: retry.Config{}, errs: []error{unavailable(), permanent}, reason: retry.StopPermanent, attempts: 2, elapsed: 100 * time.Millisecond, cause: contract.ErrInvalid},
		{name: "backoff.Permanent", cfg: retry.Config{}, errs: []error{backoff.Permanent(unavailable())}, reason: retry.StopPermanent, attempts: 1, cause: contract.ErrUnavailable},
		{name: "unknown error", cfg: retry.Config{}, errs: []error{errors.New("boom")}, reason: retry.StopPermanent, attempts: 1},
		{name: "overloaded", cfg: retry.Config{}, errs: []error{unavailable(), overloaded}, reason: retry.StopOverloaded, attempts: 2, elapsed: 100 * time.Millisecond, cause: contract.ErrOverloaded},
		{name: "context canceled while waiting", cfg: retry.Config{MaxAttempts: 10}, cancelAt: 2,
			errs: repeat(unavailable(), 10), reason: retry.StopContext, attempts: 2, elapsed: 200 * time.Millisecond, cause: context.Canceled},
		{name: "context canceled during attempt", cfg: retry.Config{MaxAttempts: 10}, cancelAt: -2,
			errs: repeat(unavailable(), 10), reason: retry.StopContext, attempts: 2, elapsed: 100 * time.Millisecond, cause: context.Canceled},
		{name: "budget", cfg: retry.Config{MaxAttempts: 10, Budget: emptyBudget{}},
			errs: repeat(unavailable(), 10), reason: retry.StopBudget, attempts: 1, cause: contract.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := retrytest.NewClock()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.deadline > 0 {
				var c2 context.CancelFunc
				ctx, c2 = context.WithDeadline(ctx, clk.Now().Add(tt.deadline))
				defer c2()
			}
			sleeps := 0
			if tt.cancelAt > 0 {
				clk.OnSleep(func(time.Duration) {
					if sleeps++; sleeps == tt.cancelAt {
						cancel()
					}
				})
			}
			var calls int
			fn := func(context.Context) (int, error) {
				calls++
				if tt.cancelAt < 0 && calls == -tt.cancelAt {
					cancel()
				}
				return -calls, tt.errs[calls-1]
			}
			v, err := retry.Do(ctx, constPolicy(t, clk, tt.cfg), fn)
			var re *retry.Error
			if !errors.As(err, &re) {
				t.Fatalf("Do error %v (%T) is not a *retry.Error", err, err)
			}
			if v != -calls {
				t.Errorf("value = %d, want the last attempt's %d", v, -calls)
			}
			if re.Reason != tt.reason || !errors.Is(err, tt.reason) {
				t.Errorf("reason = %v, want %v", re.Reason, tt.reason)
			}
			if re.Attempts != tt.attempts || calls != tt.attempts {
				t.Errorf("attempts = %d (fn called %d times), want %d", re.Attempts, calls, tt.attempts)
			}
			if re.Elapsed != tt.elapsed {
				t.Errorf("elapsed = %v, want %v", re.Elapsed, tt.elapsed)
			}
			if re.Cause != tt.errs[calls-1] || errors.Unwrap(err) != tt.errs[calls-1] {
				t.Errorf("cause = %v, want the last failure %v", re.Cause, tt.errs[calls-1])
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.cause)
			}
			for _, other := range []retry.StopReason{retry.StopAttempts, retry.StopElapsed, retry.StopDeadline, retry.StopBudget, retry.StopPermanent, retry.StopOverloaded, retry.StopContext} {
				if other != tt.reason && errors.Is(err, other) {
					t.Errorf("errors.Is(err, %v) = true; reason is %v", other, tt.reason)
				}
			}
			if tt.deadline > 0 {
				dl, _ := ctx.Deadline()
				if end := clk.Now(); end.After(dl) {
					t.Errorf("slept until %v, past the deadline %v", end, dl)
				}
			}
		})
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

type emptyBudget struct{}

func (emptyBudget) Call()       {}
func (emptyBudget) Success()    {}
func (emptyBudget) Failure()    {}
func (emptyBudget) Retry() bool { return false }

func TestContextDoneBeforeFirstAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	_, err := retry.Do(ctx, nil, func(context.Context) (int, error) { calls++; return 0, nil })
	var re *retry.Error
	if !errors.As(err, &re) || re.Attempts != 0 || re.Reason != retry.StopContext || !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("Do on a canceled ctx = %v (calls %d); want StopContext, 0 attempts, context.Canceled", err, calls)
	}
}

func TestErrorMessage(t *testing.T) {
	clk := retrytest.NewClock()
	p := constPolicy(t, clk, retry.Config{Name: "payments-gateway"})
	_, err := retry.Do(context.Background(), p, func(context.Context) (int, error) { return 0, unavailable() })
	want := "retry: payments-gateway: gave up after 3 attempts in 200ms (attempts exhausted): dep.call: unavailable: down"
	if err == nil || err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
	if k := contract.KindOf(err); k != contract.KindUnavailable {
		t.Errorf("contract.KindOf = %v, want unavailable", k)
	}
}

// TestErrorTimeout: the *Error reports a timeout when a deadline ended the
// retries or the last failure was one, so that http.Client's *url.Error,
// os.IsTimeout and the net.Error idiom see it through the Transport.
func TestErrorTimeout(t *testing.T) {
	netTimeout := &net.OpError{Op: "read", Net: "tcp", Err: &timeoutError{}}
	expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()
	canceled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for _, tt := range []struct {
		name   string
		ctx    context.Context
		fail   error
		reason retry.StopReason
		want   bool
	}{
		{"attempts that timed out", context.Background(), context.DeadlineExceeded, retry.StopAttempts, true},
		{"a timeout kind", context.Background(), contract.New(contract.KindTimeout, "dep", "504"), retry.StopAttempts, true},
		{"a net.Error timeout", context.Background(), netTimeout, retry.StopAttempts, true},
		{"a cause reporting Timeout", context.Background(), timeoutCause{contract.New(contract.KindUnavailable, "dep", "down")}, retry.StopAttempts, true},
		{"unavailable", context.Background(), unavailable(), retry.StopAttempts, false},
		{"permanent", context.Background(), errors.New("bad url"), retry.StopPermanent, false},
		{"deadline before the first attempt", expired, unavailable(), retry.StopContext, true},
		{"canceled before the first attempt", canceled, unavailable(), retry.StopContext, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := constPolicy(t, retrytest.NewClock(), retry.Config{})
			_, err := retry.Do(tt.ctx, p, func(context.Context) (int, error) { return 0, tt.fail })
			var re *retry.Error
			if !errors.As(err, &re) || re.Reason != tt.reason || re.Timeout() != tt.want {
				t.Fatalf("err %v: Timeout() = %v, want %v (reason %v)", err, re != nil && re.Timeout(), tt.want, tt.reason)
			}
			if ue := (&url.Error{Op: "Get", URL: "http://dep.test/", Err: err}); ue.Timeout() != tt.want {
				t.Errorf("*url.Error.Timeout() = %v, want %v", ue.Timeout(), tt.want)
			}
		})
	}
	t.Run("context deadline too close", func(t *testing.T) {
		clk := retrytest.NewClock()
		p := constPolicy(t, clk, retry.Config{AttemptTimeout: time.Second})
		ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(time.Second))
		defer cancel()
		_, err := retry.Do(ctx, p, func(context.Context) (int, error) { return 0, unavailable() })
		var re *retry.Error
		if !errors.As(err, &re) || re.Reason != retry.StopDeadline || !re.Timeout() {
			t.Fatalf("err %v: want StopDeadline, a timeout", err)
		}
	})
}

// timeoutError is a net.Error that timed out.
type timeoutError struct{}

func (*timeoutError) Error() string   { return "i/o timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

// timeoutCause reports Timeout() itself, whatever the kind it wraps.
type timeoutCause struct{ error }

func (c timeoutCause) Unwrap() error { return c.error }
func (timeoutCause) Timeout() bool   { return true }

func TestRetryAfter(t *testing.T) {
	ctx := context.Background()
	t.Run("honoured", func(t *testing.T) {
		clk := retrytest.NewClock()
		p := constPolicy(t, clk, retry.Config{InitialDelay: 10 * time.Millisecond})
		fn, _ := failing(contract.New(contract.KindRateLimited, "dep", "slow down").WithRetryAfter(3 * time.Second))
		if _, err := retry.Do(ctx, p, fn); err != nil {
			t.Fatal(err)
		}
		if got := clk.Sleeps(); len(got) != 1 || got[0] != 3*time.Second {
			t.Errorf("sleeps = %v, want [3s]", got)
		}
	})
	t.Run("shorter than backoff", func(t *testing.T) {
		clk := retrytest.NewClock()
		p := constPolicy(t, clk, retry.Config{InitialDelay: 2 * time.Second, Strategy: retry.Constant})
		fn, _ := failing(contract.New(contract.KindRateLimited, "dep", "").WithRetryAfter(time.Millisecond))
		if _, err := retry.Do(ctx, p, fn); err != nil {
			t.Fatal(err)
		}
		if got := clk.Sleeps(); len(got) != 1 || got[0] != 2*time.Second {
			t.Errorf("sleeps = %v, want [2s]: Retry-After is a minimum", got)
		}
	})
	t.Run("hostile is capped by MaxDelay", func(t *testing.T) {
		clk := retrytest.NewClock()
		p := constPolicy(t, clk, retry.Config{MaxDelay: 5 * time.Second, InitialDelay: 10 * time.Millisecond})
		fn, _ := failing(contract.New(contract.KindUnavailable, "dep", "").WithRetryAfter(484289 * time.Hour))
		if _, err := retry.Do(ctx, p, fn); err != nil {
			t.Fatal(err)
		}
		if got := clk.Sleeps(); len(got) != 1 || got[0] != 5*time.Second {
			t.Errorf("sleeps = %v, want [5s]", got)
		}
	})
	t.Run("past the deadline gives up without sleeping", func(t *testing.T) {
		clk := retrytest.NewClock()
		p := constPolicy(t, clk, retry.Config{MaxDelay: 20 * time.Second, InitialDelay: 10 * time.Millisecond})
		dctx, cancel := context.WithDeadline(ctx, clk.Now().Add(2*time.Second))
		defer cancel()
		fn, calls := failing(contract.New(contract.KindUnavailable, "dep", "").WithRetryAfter(10 * time.Second))
		_, err := retry.Do(dctx, p, fn)
		if !errors.Is(err, retry.StopDeadline) || !errors.Is(err, context.DeadlineExceeded) || calls.Load() != 1 || len(clk.Sleeps()) != 0 {
			t.Errorf("err = %v after %d calls, %v sleeps; want StopDeadline at once", err, calls.Load(), clk.Sleeps())
		}
	})
	t.Run("longer than MaxElapsedTime does not disable retries", func(t *testing.T) {
		// backoff/v4 silently stops retrying here. MaxDelay is never above
		// MaxElapsedTime, so the hint is capped and the retry happens.
		clk := retrytest.NewClock()
		p := constPolicy(t, clk, retry.Config{MaxElapsedTime: time.Second, InitialDelay: 10 * time.Millisecond})
		fn, calls := failing(contract.New(contract.KindUnavailable, "dep", "").WithRetryAfter(time.Minute))
		v, err := retry.Do(ctx, p, fn)
		if v != 42 || err != nil || calls.Load() != 2 {
			t.Errorf("Do = %v, %v after %d calls; want a retry", v, err, calls.Load())
		}
		if got := clk.Sleeps(); len(got) != 1 || got[0] != time.Second {
			t.Errorf("sleeps = %v, want [1s]", got)
		}
	})
	t.Run("longer than MaxElapsedTime survives a slow OnRetry", func(t *testing.T) {
		// MaxDelay defaults to MaxElapsedTime (50ms), so the capped hint
		// fills the whole time bound; the hook's 10ms then left 40ms. The
		// time bounds were checked again after the hook, and the retry the
		// hook had just been told about was dropped with StopElapsed. The
		// capped hint is now cut to what is left: the retry starts 50ms
		// after the failure, as announced.
		clk := retrytest.NewClock()
		sink := &logSink{}
		var announced []time.Duration
		p := mustPolicy(t, retry.Config{MaxElapsedTime: 50 * time.Millisecond, Clock: clk, Logger: sink.logger(),
			OnRetry: func(_ int, d time.Duration, _ error) {
				announced = append(announced, d)
				clk.Advance(10 * time.Millisecond)
			}})
		var starts []time.Time
		fn := func(context.Context) (int, error) {
			if starts = append(starts, clk.Now()); len(starts) == 1 {
				return 0, contract.New(contract.KindUnavailable, "dep", "").WithRetryAfter(120 * time.Second)
			}
			return 42, nil
		}
		v, err := retry.Do(ctx, p, fn)
		if v != 42 || err != nil || len(starts) != 2 {
			t.Fatalf("Do = %v, %v after %d calls; want the retry", v, err, len(starts))
		}
		if len(announced) != 1 || announced[0] != 50*time.Millisecond {
			t.Errorf("OnRetry delays = %v, want [50ms]", announced)
		}
		if got := clk.Sleeps(); len(got) != 1 || got[0] != 40*time.Millisecond {
			t.Errorf("sleeps = %v, want [40ms]: the 50ms less the hook's 10ms", got)
		}
		if d := starts[1].Sub(starts[0]); d != 50*time.Millisecond {
			t.Errorf("retry started %v after the failure, want 50ms", d)
		}
		if recs := sink.records(t); len(recs) != 1 || recs[0]["msg"] != "retrying" || recs[0]["delay"] != float64(40*time.Millisecond) {
			t.Errorf("records = %v; want one retry logged with the 40ms it waits", recs)
		}
	})
	t.Run("a capped hint cut after a slow OnRetry still honours the deadline", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			hook    time.Duration
			elapsed time.Duration // MaxElapsedTime; MaxDelay is 1s
			want    error         // nil: the retry is made
		}{
			// The 1s wait, cut to .9s, ends at 1s: .3s left, a full
			// AttemptTimeout.
			{"fits", 100 * time.Millisecond, time.Second, nil},
			// The 1s wait is cut to .8s after the 1.2s hook: it would end
			// at 2s, after the 1.5s deadline. Give up without sleeping.
			{"past the deadline", 1200 * time.Millisecond, 2 * time.Second, retry.StopDeadline},
		} {
			t.Run(tt.name, func(t *testing.T) {
				clk := retrytest.NewClock()
				p := mustPolicy(t, retry.Config{MaxElapsedTime: tt.elapsed, MaxDelay: time.Second,
					AttemptTimeout: 300 * time.Millisecond, Clock: clk,
					OnRetry: func(int, time.Duration, error) { clk.Advance(tt.hook) }})
				dl := clk.Now().Add(1300 * time.Millisecond)
				if tt.want != nil {
					dl = clk.Now().Add(1500 * time.Millisecond)
				}
				dctx, cancel := context.WithDeadline(ctx, dl)
				defer cancel()
				var lefts []time.Duration
				fn := func(actx context.Context) (int, error) {
					lefts = append(lefts, dl.Sub(clk.Now()))
					if len(lefts) == 1 {
						return 0, contract.New(contract.KindUnavailable, "dep", "").WithRetryAfter(time.Minute)
					}
					return 42, nil
				}
				_, err := retry.Do(dctx, p, fn)
				if tt.want == nil {
					if err != nil || len(lefts) != 2 || lefts[1] < 300*time.Millisecond {
						t.Fatalf("err = %v after %d calls (left at each: %v); want the retry with 300ms left", err, len(lefts), lefts)
					}
					return
				}
				if !errors.Is(err, tt.want) || !errors.Is(err, context.DeadlineExceeded) || len(lefts) != 1 || len(clk.Sleeps()) != 0 {
					t.Fatalf("err = %v after %d calls, sleeps %v; want %v without sleeping", err, len(lefts), clk.Sleeps(), tt.want)
				}
			})
		}
	})
	t.Run("a backoff wait is not cut after a slow OnRetry", func(t *testing.T) {
		// Only a hint capped by MaxDelay is cut: the policy's own wait,
		// however close to MaxElapsedTime, is never shortened by the time
		// the hook took, and a retry it no longer fits is not made.
		clk := retrytest.NewClock()
		p := mustPolicy(t, retry.Config{Strategy: retry.Constant, InitialDelay: 50 * time.Millisecond,
			MaxElapsedTime: 50 * time.Millisecond, Clock: clk,
			OnRetry: func(int, time.Duration, error) { clk.Advance(10 * time.Millisecond) }})
		fn, calls := failing(unavailable())
		if _, err := retry.Do(ctx, p, fn); !errors.Is(err, retry.StopElapsed) || calls.Load() != 1 || len(clk.Sleeps()) != 0 {
			t.Errorf("err = %v after %d calls, sleeps %v; want StopElapsed after 1, no sleep", err, calls.Load(), clk.Sleeps())
		}
	})
}

func TestAttemptTimeout(t *testing.T) {
	clk := retrytest.NewClock()
	p := constPolicy(t, clk, retry.Config{AttemptTimeout: 300 * time.Millisecond})
	var deadlines []time.Time
	var nows []time.Time
	fn := func(ctx context.Context) (int, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			t.Fatal("attempt context has no deadline")
		}
		deadlines = append(deadlines, dl)
		nows = append(nows, clk.Now())
		if len(deadlines) < 3 {
			return 0, context.DeadlineExceeded // the attempt timed out: transient
		}
		return 7, nil
	}
	v, err := retry.Do(context.Background(), p, fn)
	if v != 7 || err != nil {
		t.Fatalf("Do = %v, %v", v, err)
	}
	for i := range deadlines {
		if want := nows[i].Add(300 * time.Millisecond); !deadlines[i].Equal(want) {
			t.Errorf("attempt %d deadline %v, want start+300ms %v", i+1, deadlines[i], want)
		}
	}
}

func TestNoAttemptThatCannotFinish(t *testing.T) {
	// 1s left, 100ms wait, 300ms attempt timeout: attempts 1..3 fit (wait+timeout
	// ends before the deadline), the next does not: give up before sleeping.
	clk := retrytest.NewClock()
	p := constPolicy(t, clk, retry.Config{AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 100})
	ctx, cancel := context.WithDeadline(context.Background(), clk.Now().Add(time.Second))
	defer cancel()
	calls := 0
	_, err := retry.Do(ctx, p, func(context.Context) (int, error) {
		calls++
		clk.Advance(200 * time.Millisecond) // each attempt takes 200ms
		return 0, unavailable()
	})
	// t=0 a1 ends .2; wait to .3 (.3+.3 ≤ 1) a2 ends .5; wait to .6 (.6+.3 ≤ 1)
	// a3 ends .8; .9+.3 > 1: stop.
	if !errors.Is(err, retry.StopDeadline) || calls != 3 {
		t.Errorf("err = %v after %d calls; want StopDeadline after 3", err, calls)
	}
}

// TestSlowOnRetryCountsAgainstTimeBounds: the time bounds were checked
// before the OnRetry hook ran, so a slow hook could start the next attempt
// past MaxElapsedTime or with less than AttemptTimeout before the deadline.
// They are checked again after it (the context too), and the retry is then
// neither logged nor counted.
func TestSlowOnRetryCountsAgainstTimeBounds(t *testing.T) {
	tests := []struct {
		name   string
		cfg    retry.Config
		dl     time.Duration // context deadline from the start, 0 for none
		cancel bool          // the hook cancels the context
		want   retry.StopReason
	}{
		// Wait 100ms: .95+.1 > 1s elapsed.
		{"MaxElapsedTime", retry.Config{MaxElapsedTime: time.Second}, 0, false, retry.StopElapsed},
		// Wait 100ms: .95+.1+.3 > 1s left.
		{"deadline", retry.Config{AttemptTimeout: 300 * time.Millisecond}, time.Second, false, retry.StopDeadline},
		{"canceled", retry.Config{}, 0, true, retry.StopContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := retrytest.NewClock()
			sink := &logSink{}
			mp := newFakeMeterProvider()
			hooked := 0
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.dl > 0 {
				ctx, cancel = context.WithDeadline(ctx, clk.Now().Add(tt.dl))
				defer cancel()
			}
			tt.cfg.MaxAttempts = 5
			tt.cfg.Logger, tt.cfg.MeterProvider = sink.logger(), mp
			tt.cfg.OnRetry = func(int, time.Duration, error) {
				hooked++
				clk.Advance(950 * time.Millisecond)
				if tt.cancel {
					cancel()
				}
			}
			p := constPolicy(t, clk, tt.cfg)
			fn, calls := failing(repeat(unavailable(), 10)...)
			_, err := retry.Do(ctx, p, fn)
			var e *retry.Error
			if !errors.As(err, &e) || e.Reason != tt.want || calls.Load() != 1 || hooked != 1 {
				t.Fatalf("err = %v after %d attempts and %d hooks; want %v after 1 and 1", err, calls.Load(), hooked, tt.want)
			}
			if e.Elapsed != 950*time.Millisecond {
				t.Errorf("Elapsed = %v, want the hook's 950ms", e.Elapsed)
			}
			if len(clk.Sleeps()) != 0 {
				t.Errorf("slept %v after giving up", clk.Sleeps())
			}
			recs := sink.records(t)
			if len(recs) != 1 || recs[0]["msg"] != "gave up retrying" || recs[0][logctx.KeyReason] != tt.want.String() {
				t.Errorf("records = %v; want only the give-up", recs)
			}
			if mp.count("sadpath.retry.retries") != 0 || mp.count("sadpath.retry.give_ups") != 1 {
				t.Errorf("counters retries=%d give_ups=%d, want 0, 1", mp.count("sadpath.retry.retries"), mp.count("sadpath.retry.give_ups"))
			}
		})
	}
}

// TestMaxElapsedTimeNearMaxDurationDoesNotOverflow: with MaxDelay and
// MaxElapsedTime at the largest Duration ("no time bound"), elapsed+wait
// wrapped negative once past it, so StopElapsed never fired and Do slept
// some 292 years per attempt until MaxAttempts.
func TestMaxElapsedTimeNearMaxDurationDoesNotOverflow(t *testing.T) {
	clk := retrytest.NewClock()
	p := mustPolicy(t, retry.Config{Strategy: retry.Exponential, InitialDelay: time.Hour, Multiplier: 10,
		MaxDelay: math.MaxInt64, MaxElapsedTime: math.MaxInt64, MaxAttempts: 100, Clock: clk})
	fn, calls := failing(repeat(unavailable(), 100)...)
	_, err := retry.Do(context.Background(), p, fn)
	if !errors.Is(err, retry.StopElapsed) {
		t.Fatalf("after %d attempts and %v slept: err = %v, want StopElapsed", calls.Load(), clk.Slept(), err)
	}
	// Waits of 1h, 10h, … 10^6h sum to 1111111h; the next, 10^7h, would
	// end after MaxElapsedTime (~2562047h).
	if calls.Load() != 8 || clk.Slept() != 1111111*time.Hour {
		t.Errorf("%d attempts, %v slept; want 8 and 1111111h", calls.Load(), clk.Slept())
	}
}

func TestClassifierOverride(t *testing.T) {
	clk := retrytest.NewClock()
	errTemp := errors.New("temporary glitch")
	p := constPolicy(t, clk, retry.Config{Classifier: func(err error) retry.Class {
		switch {
		case errors.Is(err, errTemp):
			return retry.Transient
		case errors.Is(err, contract.ErrRateLimited):
			return retry.Permanent
		}
		return retry.Unknown
	}})
	fn, calls := failing(errTemp, errTemp)
	if v, err := retry.Do(context.Background(), p, fn); v != 42 || err != nil || calls.Load() != 3 {
		t.Errorf("classified transient: %v, %v after %d calls", v, err, calls.Load())
	}
	fn, calls = failing(contract.New(contract.KindRateLimited, "dep", ""))
	if _, err := retry.Do(context.Background(), p, fn); !errors.Is(err, retry.StopPermanent) || calls.Load() != 1 {
		t.Errorf("classified permanent: %v after %d calls", err, calls.Load())
	}
	fn, calls = failing(unavailable())
	if _, err := retry.Do(context.Background(), p, fn); err != nil || calls.Load() != 2 {
		t.Errorf("unknown falls back to the default: %v after %d calls", err, calls.Load())
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want retry.Class
	}{
		{nil, retry.Unknown},
		{unavailable(), retry.Transient},
		{contract.New(contract.KindRateLimited, "", ""), retry.Transient},
		{contract.New(contract.KindTimeout, "", ""), retry.Transient},
		{context.DeadlineExceeded, retry.Transient},
		{context.Canceled, retry.Permanent},
		{contract.New(contract.KindInvalid, "", ""), retry.Permanent},
		{contract.New(contract.KindUnauthorized, "", ""), retry.Permanent},
		{contract.New(contract.KindConflict, "", ""), retry.Permanent},
		{contract.New(contract.KindInternal, "", "").WithRetryable(true), retry.Transient},
		{contract.New(contract.KindUnavailable, "", "").WithRetryable(false), retry.Permanent},
		{contract.New(contract.KindOverloaded, "", ""), retry.Overloaded},
		{fmt.Errorf("wrapped: %w", contract.New(contract.KindOverloaded, "", "")), retry.Overloaded},
		{backoff.Permanent(unavailable()), retry.Permanent},
		{errors.New("unknown"), retry.Permanent},
		// Another retry layer's give-up is final, whatever its cause.
		{&retry.Error{Reason: retry.StopAttempts, Cause: unavailable()}, retry.Permanent},
		{&retry.Error{Reason: retry.StopBudget, Cause: contract.New(contract.KindTimeout, "", "")}, retry.Permanent},
		{&url.Error{Op: "Get", URL: "http://dep.test/", Err: &retry.Error{Reason: retry.StopElapsed, Cause: unavailable()}}, retry.Permanent},
		{&retry.Error{Reason: retry.StopOverloaded, Cause: contract.New(contract.KindOverloaded, "", "")}, retry.Overloaded},
	} {
		if got := retry.Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestConcurrentCallsShareAPolicy runs many goroutines through one Policy
// and one budget under -race and counts every execution.
func TestConcurrentCallsShareAPolicy(t *testing.T) {
	clk := retrytest.NewClock()
	budget := &countingBudget{}
	p := constPolicy(t, clk, retry.Config{MaxAttempts: 5, Budget: budget, MaxElapsedTime: time.Hour})
	const goroutines, perG = 64, 50
	var executions, successes atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				n := 0
				v, err := retry.Do(context.Background(), p, func(context.Context) (int, error) {
					executions.Add(1)
					n++
					if n < 3 { // every call fails twice, then succeeds
						return 0, unavailable()
					}
					return g, nil
				})
				if err != nil || v != g {
					t.Errorf("goroutine %d: %v, %v", g, v, err)
					return
				}
				successes.Add(1)
			}
		}(g)
	}
	wg.Wait()
	if got, want := executions.Load(), int64(goroutines*perG*3); got != want {
		t.Errorf("executions = %d, want exactly %d", got, want)
	}
	if successes.Load() != goroutines*perG {
		t.Errorf("successes = %d", successes.Load())
	}
	calls := int64(goroutines * perG)
	if budget.calls.Load() != calls || budget.successes.Load() != calls || budget.failures.Load() != 2*calls || budget.retries.Load() != 2*calls {
		t.Errorf("budget saw calls=%d successes=%d failures=%d retries=%d; want %d, %d, %d, %d",
			budget.calls.Load(), budget.successes.Load(), budget.failures.Load(), budget.retries.Load(), calls, calls, 2*calls, 2*calls)
	}
}

// TestConcurrentCallsEachGetTheirOwnCurve: backoff/v4's ExponentialBackOff
// is not safe for concurrent use and carries the curve's position, so a
// Policy must not share one between calls. Many goroutines retry through
// one Exponential Policy (run under -race): every call's n-th wait must be
// exactly InitialDelay·2^(n-1), whatever the other calls are doing.
func TestConcurrentCallsEachGetTheirOwnCurve(t *testing.T) {
	const goroutines, perG, attempts = 64, 50, 6
	var hooks, wrong atomic.Int64
	p := mustPolicy(t, retry.Config{Strategy: retry.Exponential, InitialDelay: time.Millisecond, MaxDelay: time.Second,
		MaxAttempts: attempts, MaxElapsedTime: time.Hour, Clock: retrytest.NewClock(), DisableTelemetry: true,
		OnRetry: func(attempt int, delay time.Duration, _ error) {
			hooks.Add(1)
			if delay != time.Millisecond<<(attempt-1) {
				wrong.Add(1)
			}
		}})
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				_, err := retry.Do(context.Background(), p, func(context.Context) (int, error) { return 0, unavailable() })
				if !errors.Is(err, retry.StopAttempts) {
					t.Errorf("err = %v, want StopAttempts", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if want := int64(goroutines * perG * (attempts - 1)); hooks.Load() != want || wrong.Load() != 0 {
		t.Errorf("%d retries, %d of them off their call's curve; want %d, none", hooks.Load(), wrong.Load(), want)
	}
}

// countingBudget allows everything and counts what Do tells it.
type countingBudget struct{ calls, successes, failures, retries atomic.Int64 }

func (b *countingBudget) Call()       { b.calls.Add(1) }
func (b *countingBudget) Success()    { b.successes.Add(1) }
func (b *countingBudget) Failure()    { b.failures.Add(1) }
func (b *countingBudget) Retry() bool { b.retries.Add(1); return true }

func TestLogsAndTelemetry(t *testing.T) {
	clk := retrytest.NewClock()
	sink := &logSink{}
	mp := newFakeMeterProvider()
	var hooked []int
	p := constPolicy(t, clk, retry.Config{
		Name: "ledger", Logger: sink.logger(), MeterProvider: mp, MaxAttempts: 3,
		OnRetry: func(attempt int, delay time.Duration, err error) { hooked = append(hooked, attempt) },
	})
	span := &recordingSpan{}
	ctx := logctx.WithCorrelationID(context.Background(), "corr-1")
	ctx = logctx.WithOperation(ctx, "ledger.post")
	ctx = trace.ContextWithSpan(ctx, span)
	_, err := retry.Do(ctx, p, func(context.Context) (int, error) { return 0, unavailable() })
	if !errors.Is(err, retry.StopAttempts) {
		t.Fatalf("err = %v", err)
	}
	recs := sink.records(t)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 2 retries + 1 give-up: %v", len(recs), recs)
	}
	for i, r := range recs[:2] {
		if r["msg"] != "retrying" || r[logctx.KeyDecision] != "retrying" || r[logctx.KeyReason] != "unavailable" ||
			r["attempt"] != float64(i+1) || r[logctx.KeyDependency] != "ledger" || r["delay"] != float64(100*time.Millisecond) ||
			r[logctx.KeyCorrelationID] != "corr-1" || r[logctx.KeyOperation] != "ledger.post" {
			t.Errorf("record %d = %v", i, r)
		}
	}
	if r := recs[2]; r["msg"] != "gave up retrying" || r["level"] != "WARN" || r[logctx.KeyReason] != "attempts exhausted" ||
		r["attempts"] != float64(3) || r[logctx.KeyCorrelationID] != "corr-1" {
		t.Errorf("give-up record = %v", r)
	}
	if len(hooked) != 2 || hooked[0] != 1 || hooked[1] != 2 {
		t.Errorf("OnRetry attempts = %v, want [1 2]", hooked)
	}
	if mp.count("sadpath.retry.retries") != 2 || mp.count("sadpath.retry.give_ups") != 1 {
		t.Errorf("counters retries=%d give_ups=%d, want 2, 1", mp.count("sadpath.retry.retries"), mp.count("sadpath.retry.give_ups"))
	}
	if len(span.events) != 3 || span.events[0] != "retry" || span.events[2] != "retry.give_up" {
		t.Errorf("span events = %v", span.events)
	}

	// Off costs nothing: no records, counters or events.
	sink2, mp2, span2 := &logSink{}, newFakeMeterProvider(), &recordingSpan{}
	p2 := constPolicy(t, clk, retry.Config{MeterProvider: mp2, DisableTelemetry: true})
	_, _ = retry.Do(trace.ContextWithSpan(context.Background(), span2), p2, func(context.Context) (int, error) { return 0, unavailable() })
	if len(sink2.records(t)) != 0 || mp2.count("sadpath.retry.retries") != 0 || len(span2.events) != 0 {
		t.Errorf("telemetry off still recorded: %d events", len(span2.events))
	}
}

// TestLogsNeverShowURLSecrets: an http.Client failure is a *url.Error
// whose text holds the request's URL, query (an api_key), fragment and
// user name included. Do logged err.Error() verbatim in its "retrying" and
// "gave up retrying" records. Every record now shows such a URL as
// scheme://host/path and keeps the rest of the message.
func TestLogsNeverShowURLSecrets(t *testing.T) {
	const secretURL = "https://alice:hunter2@psp.test:8443/v1/charges?api_key=sk_live_abc#tok_frag"
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	client := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, refused })}
	viaClient := func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, secretURL, nil)
		resp, err := client.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		return 0, err
	}
	joined := func(context.Context) (int, error) {
		return 0, contract.Wrap(contract.KindUnavailable, "psp.charge", errors.Join(
			&url.Error{Op: "Post", URL: secretURL, Err: refused},
			fmt.Errorf("fallback: %w", &url.Error{Op: "Get", URL: "http://bob@backup.test/x?k=sk_live_abc", Err: refused})))
	}
	for _, tt := range []struct {
		name    string
		cfg     retry.Config
		fn      func(context.Context) (int, error)
		records int
		want    string // in every record's error text
	}{
		{"http.Client", retry.Config{MaxAttempts: 2}, viaClient, 2,
			`Get "https://psp.test:8443/v1/charges": dial tcp: connection refused`},
		{"wrapped and joined", retry.Config{MaxAttempts: 2}, joined, 2,
			`Post "https://psp.test:8443/v1/charges": dial tcp: connection refused` + "\n" + `fallback: Get "http://backup.test/x": dial tcp: connection refused`},
		{"quoted with escapes", retry.Config{MaxAttempts: 2}, func(context.Context) (int, error) {
			return 0, &url.Error{Op: "Get", URL: "//bob:pw@psp.test/a\tb?api_key=sk_live_abc", Err: refused}
		}, 2, `Get "//psp.test/a\tb": dial tcp: connection refused`},
		{"budget exhausted", retry.Config{Budget: emptyBudget{}}, viaClient, 1,
			`Get "https://psp.test:8443/v1/charges": dial tcp: connection refused`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sink := &logSink{}
			tt.cfg.Logger = sink.logger()
			if _, err := retry.Do(context.Background(), constPolicy(t, retrytest.NewClock(), tt.cfg), tt.fn); err == nil {
				t.Fatal("Do succeeded")
			}
			recs := sink.records(t)
			if len(recs) != tt.records {
				t.Fatalf("%d records, want %d: %v", len(recs), tt.records, recs)
			}
			for _, r := range recs {
				if msg, _ := r["error"].(string); !strings.Contains(msg, tt.want) {
					t.Errorf("%q record: error %q, want it to contain %q", r["msg"], msg, tt.want)
				}
			}
			sink.mu.Lock()
			out := sink.buf.String()
			sink.mu.Unlock()
			for _, secret := range []string{"alice", "hunter2", "sk_live_abc", "tok_frag", "bob"} {
				if strings.Contains(out, secret) {
					t.Errorf("log output contains %q:\n%s", secret, out)
				}
			}
		})
	}
}

func TestBudgetExhaustedIsLogged(t *testing.T) {
	clk := retrytest.NewClock()
	sink := &logSink{}
	mp := newFakeMeterProvider()
	p := constPolicy(t, clk, retry.Config{Name: "ledger", Logger: sink.logger(), MeterProvider: mp, Budget: emptyBudget{}})
	orig := unavailable()
	_, err := retry.Do(context.Background(), p, func(context.Context) (int, error) { return 0, orig })
	if !errors.Is(err, retry.StopBudget) || !errors.Is(err, orig) {
		t.Fatalf("err = %v; want StopBudget wrapping the original error", err)
	}
	recs := sink.records(t)
	if len(recs) != 1 || recs[0]["msg"] != "retry budget exhausted" || recs[0][logctx.KeyReason] != "retry budget exhausted" {
		t.Errorf("records = %v", recs)
	}
	mp.mu.Lock()
	defer mp.mu.Unlock()
	if len(mp.attrs["sadpath.retry.give_ups"]) != 1 {
		t.Fatalf("give_ups recorded %d times", len(mp.attrs["sadpath.retry.give_ups"]))
	}
	if v, ok := mp.attrs["sadpath.retry.give_ups"][0].Value("sadpath.retry.stop_reason"); !ok || v.AsString() != "retry budget exhausted" {
		t.Errorf("stop_reason attribute = %v", v)
	}
}

// TestSpanEventsCarryTheDecision: the otel span events say what was
// decided, as the log records do: each "retry" event its attempt, delay and
// error kind, the "retry.give_up" event why it stopped (an empty budget
// included) and after how many attempts.
func TestSpanEventsCarryTheDecision(t *testing.T) {
	for _, tt := range []struct {
		name    string
		budget  retry.Budget
		retries int
		reason  string
	}{
		{"attempts exhausted", nil, 2, "attempts exhausted"},
		{"budget exhausted", emptyBudget{}, 0, "retry budget exhausted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			span := &recordingSpan{}
			p := constPolicy(t, retrytest.NewClock(), retry.Config{Name: "ledger", Budget: tt.budget, MeterProvider: newFakeMeterProvider()})
			_, err := retry.Do(trace.ContextWithSpan(context.Background(), span), p, func(context.Context) (int, error) { return 0, unavailable() })
			if err == nil {
				t.Fatal("Do succeeded")
			}
			span.mu.Lock()
			defer span.mu.Unlock()
			if len(span.events) != tt.retries+1 {
				t.Fatalf("span events %v, want %d retries and a give-up", span.events, tt.retries)
			}
			get := func(i int, key string) attribute.Value {
				for _, kv := range span.eattrs[i] {
					if string(kv.Key) == key {
						return kv.Value
					}
				}
				t.Errorf("event %d (%s) has no %s: %v", i, span.events[i], key, span.eattrs[i])
				return attribute.Value{}
			}
			for i := 0; i < tt.retries; i++ {
				if span.events[i] != "retry" || get(i, "sadpath.retry.attempt").AsInt64() != int64(i+1) ||
					get(i, "sadpath.retry.delay_ms").AsInt64() != 100 || get(i, "error.type").AsString() != "unavailable" ||
					get(i, "sadpath.retry.dependency").AsString() != "ledger" {
					t.Errorf("event %d = %s %v", i, span.events[i], span.eattrs[i])
				}
			}
			last := len(span.events) - 1
			if span.events[last] != "retry.give_up" || get(last, "sadpath.retry.stop_reason").AsString() != tt.reason ||
				get(last, "sadpath.retry.attempts").AsInt64() != int64(tt.retries+1) || get(last, "error.type").AsString() != "unavailable" {
				t.Errorf("give-up event = %s %v; want reason %q", span.events[last], span.eattrs[last], tt.reason)
			}
		})
	}
}

// tieClock is a fake clock whose n-th Sleep sees the context end just as
// its wait does, and reports the wait as completed: the tie the Clock
// contract leaves open ("whichever comes first"), which the system clock's
// select resolves either way when the timer and the cancellation are both
// ready.
type tieClock struct {
	*retrytest.Clock
	n      int
	cancel context.CancelFunc
	sleeps int
}

func (c *tieClock) Sleep(ctx context.Context, d time.Duration) error {
	err := c.Clock.Sleep(ctx, d)
	if c.sleeps++; c.sleeps == c.n {
		c.cancel()
	}
	return err
}

// TestNoAttemptOnAContextThatEndedWithTheWait: when the caller's context
// ended as a wait did, Do started the next attempt anyway, on a context
// already done, an attempt that cannot finish: fn ran (a call not checking
// its context made it for a caller gone) and the attempt was counted. Do
// now checks the context after every wait and stops with StopContext.
func TestNoAttemptOnAContextThatEndedWithTheWait(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Second} {
		t.Run("AttemptTimeout "+timeout.String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clk := &tieClock{Clock: retrytest.NewClock(), n: 2, cancel: cancel}
			p := constPolicy(t, clk, retry.Config{MaxAttempts: 5, AttemptTimeout: timeout})
			var started []error // each attempt's context error when it started
			_, err := retry.Do(ctx, p, func(actx context.Context) (int, error) {
				started = append(started, actx.Err())
				return 0, unavailable()
			})
			var re *retry.Error
			if !errors.As(err, &re) || re.Reason != retry.StopContext || !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want StopContext", err)
			}
			if len(started) != 2 || re.Attempts != 2 {
				t.Errorf("%d attempts started (context errors %v), Attempts %d; want 2: none after the context ended", len(started), started, re.Attempts)
			}
			if !errors.Is(re.Cause, contract.ErrUnavailable) {
				t.Errorf("Cause = %v, want the last failure", re.Cause)
			}
		})
	}
}

// lateClock is a fake clock whose waits end late by over: a timer firing
// late on a loaded machine, or a host suspended during the wait.
type lateClock struct {
	*retrytest.Clock
	over time.Duration
}

func (c *lateClock) Sleep(ctx context.Context, d time.Duration) error {
	err := c.Clock.Sleep(ctx, d)
	c.Clock.Advance(c.over)
	return err
}

// TestNoAttemptThatCannotFinishAfterALateWait: a retry is granted only if
// the deadline leaves a full AttemptTimeout after the wait, but that was
// checked before the wait only. A wait that ended late started the attempt
// with less than AttemptTimeout left, an attempt the deadline would cut.
// The deadline is checked again when the wait ends.
func TestNoAttemptThatCannotFinishAfterALateWait(t *testing.T) {
	clk := &lateClock{Clock: retrytest.NewClock(), over: 700 * time.Millisecond}
	p := constPolicy(t, clk, retry.Config{AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 5})
	dl := clk.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	var lefts []time.Duration
	_, err := retry.Do(ctx, p, func(context.Context) (int, error) {
		lefts = append(lefts, dl.Sub(clk.Now()))
		return 0, unavailable()
	})
	// t=0 a1 fails; a 100ms wait leaves .9s >= .3s: granted. The wait ends
	// at .8s: .2s left, less than the 300ms an attempt may take.
	var re *retry.Error
	if !errors.As(err, &re) || re.Reason != retry.StopDeadline || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want StopDeadline", err)
	}
	if len(lefts) != 1 || re.Attempts != 1 {
		t.Errorf("attempts started with %v left (Attempts %d); want only the first", lefts, re.Attempts)
	}
	if re.Elapsed != 800*time.Millisecond || !errors.Is(re.Cause, contract.ErrUnavailable) {
		t.Errorf("Elapsed %v, Cause %v; want 800ms and the last failure", re.Elapsed, re.Cause)
	}
}

func TestRealClockCancelStopsWaitAtOnce(t *testing.T) {
	// The one test on the system clock: a 1h wait must end when ctx is
	// canceled, not when the timer fires.
	waiting := make(chan struct{})
	p := mustPolicy(t, retry.Config{
		Strategy: retry.Constant, InitialDelay: time.Hour, MaxElapsedTime: 2 * time.Hour, MaxDelay: time.Hour,
		OnRetry: func(int, time.Duration, error) { close(waiting) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := retry.Do(ctx, p, func(context.Context) (int, error) { return 0, unavailable() })
		done <- err
	}()
	<-waiting // Do is about to sleep for an hour
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, retry.StopContext) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v; want StopContext", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Do kept sleeping after the context was canceled")
	}
}

func TestSystemClockShortWait(t *testing.T) {
	// A 1ms real wait through the default clock, then success.
	p := mustPolicy(t, retry.Config{Strategy: retry.Constant, InitialDelay: time.Millisecond})
	n := 0
	v, err := retry.Do(context.Background(), p, func(context.Context) (int, error) {
		if n++; n == 1 {
			return 0, unavailable()
		}
		return n, nil
	})
	if v != 2 || err != nil {
		t.Errorf("Do = %v, %v", v, err)
	}
}

func TestNilPolicyAndContext(t *testing.T) {
	//lint:ignore SA1012 a nil context is tolerated on purpose
	v, err := retry.Do(nil, nil, func(ctx context.Context) (int, error) {
		if ctx == nil {
			t.Error("fn got a nil context")
		}
		return 1, nil
	})
	if v != 1 || err != nil {
		t.Errorf("Do(nil, nil, fn) = %v, %v", v, err)
	}
	var p *retry.Policy
	if d := p.BackOff().NextBackOff(); d < 0 || d > retry.DefaultInitialDelay {
		t.Errorf("nil policy first wait %v outside the default full-jitter range", d)
	}
	if got := mustPolicy(t, retry.Config{Name: "ledger"}).Name(); got != "ledger" {
		t.Errorf("Name() = %q", got)
	}
	for c, want := range map[retry.Class]string{retry.Unknown: "unknown", retry.Transient: "transient", retry.Permanent: "permanent", retry.Overloaded: "overloaded"} {
		if c.String() != want {
			t.Errorf("Class(%d).String() = %q, want %q", c, c.String(), want)
		}
	}
}
