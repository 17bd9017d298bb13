package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/limit/limittest"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// A call that package limit refused (a local rate limiter out of tokens, a
// full bulkhead) never reached the dependency either: like a circuit
// breaker's rejection it adds none of the load a Budget guards against and
// says nothing of the dependency's health. It used to cost the TokenBucket
// a token per attempt like a failure of the dependency, so a burst of calls
// over a client-side rate limit (the dependency's quota) emptied the
// bucket with local refusals alone, and the next real failure of a healthy
// dependency was not retried; a RatioBudget counted each as a call, and
// allowed more retries of the dependency for them.
func TestLimitRejectionsCostNoBudget(t *testing.T) {
	ctx := context.Background()
	guards := map[string]func(t *testing.T) func(context.Context) (int, error){
		"rate limiter": func(t *testing.T) func(context.Context) (int, error) {
			// One call an hour: every call after the first is refused,
			// with a hint past MaxDelay.
			l, err := limit.NewLimiter(limit.LimiterConfig{Rate: rate.Every(time.Hour), Burst: 1, Clock: limittest.NewClock(time.Unix(0, 0))})
			if err != nil {
				t.Fatal(err)
			}
			_ = l.Take(ctx)
			return func(ctx context.Context) (int, error) {
				if err := l.Take(ctx); err != nil {
					return 0, err
				}
				return 0, unavailable()
			}
		},
		"bulkhead": func(t *testing.T) func(context.Context) (int, error) {
			b, err := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Acquire(ctx); err != nil { // held for the whole test
				t.Fatal(err)
			}
			return func(ctx context.Context) (int, error) {
				return limit.Do(ctx, b, func(context.Context) (int, error) { return 0, unavailable() })
			}
		},
	}
	for name, guard := range guards {
		t.Run(name+"/token bucket", func(t *testing.T) {
			clk := retrytest.NewClock()
			bucket, _ := retry.NewTokenBucket(retry.TokenBucketConfig{})
			p := constPolicy(t, clk, retry.Config{MaxDelay: time.Second, Budget: bucket})
			call := guard(t)
			for range 20 {
				_, err := retry.Do(ctx, p, call)
				if !errors.Is(err, contract.ErrRefusedLocally) {
					t.Fatalf("%v, want the local refusal", err)
				}
			}
			if got := bucket.Tokens(); got != 10 {
				t.Errorf("bucket at %v tokens after local refusals alone, want 10 (full)", got)
			}
			// A transient failure of the dependency is retried, as before.
			n := 0
			v, err := retry.Do(ctx, p, func(context.Context) (int, error) {
				if n++; n == 1 {
					return 0, unavailable()
				}
				return 42, nil
			})
			if v != 42 || err != nil {
				t.Fatalf("%v, %v after %d attempts; want the transient failure retried", v, err, n)
			}
		})
		t.Run(name+"/ratio", func(t *testing.T) {
			clk := retrytest.NewClock()
			budget, err := retry.NewRatioBudget(retry.RatioBudgetConfig{Ratio: 0.1, MinRetries: 1, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			// MaxAttempts 1: the refusals are not retried, so they could
			// only add to the budget's count of calls.
			p := constPolicy(t, clk, retry.Config{MaxAttempts: 1, Budget: budget})
			call := guard(t)
			for range 200 {
				if _, err := retry.Do(ctx, p, call); !errors.Is(err, contract.ErrRefusedLocally) {
					t.Fatalf("%v, want the local refusal", err)
				}
			}
			// One call reaching a failing dependency: the minimum allows
			// one retry, the ratio of one call none more.
			p = constPolicy(t, clk, retry.Config{MaxAttempts: 10, Budget: budget})
			n := 0
			_, err = retry.Do(ctx, p, func(context.Context) (int, error) {
				n++
				return 0, unavailable()
			})
			var re *retry.Error
			if !errors.As(err, &re) || re.Reason != retry.StopBudget || n != 2 {
				t.Fatalf("after 200 local refusals: %d attempts, %v; want 2 attempts, then the budget empty", n, err)
			}
		})
	}
}

// limitClock is one fake clock for a limit.Limiter and a retry.Policy: a
// retry's sleep moves the limiter's time too.
type limitClock struct{ *limittest.Clock }

func (c limitClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// TestDoAroundLocalRateLimiter: a rate limiter of this process that
// refuses a call says exactly when its bucket holds a token again, as an
// open breaker says when it probes; any retry sooner is refused again. Do
// used to cap such a hint at MaxDelay and sleep into a certain refusal
// (MaxAttempts-1 times); it now gives up at once with StopRetryAfter when
// the hint is longer than MaxDelay, and waits for the token when it is not.
// A dependency's own 429 with the same long hint is still retried after
// MaxDelay: its hint is advice.
func TestDoAroundLocalRateLimiter(t *testing.T) {
	ctx := context.Background()
	newLimited := func(t *testing.T, every time.Duration) (limitClock, func(context.Context) (int, error), *int) {
		t.Helper()
		clk := limitClock{limittest.NewClock(time.Unix(0, 0))}
		l, err := limit.NewLimiter(limit.LimiterConfig{Rate: rate.Every(every), Burst: 1, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Take(ctx); err != nil { // the token is spent
			t.Fatal(err)
		}
		calls := 0
		return clk, func(ctx context.Context) (int, error) {
			if err := l.Take(ctx); err != nil {
				return 0, err
			}
			calls++
			return 42, nil
		}, &calls
	}
	t.Run("next token past MaxDelay: no wait, no retry", func(t *testing.T) {
		clk, fn, calls := newLimited(t, time.Hour)
		start := clk.Now()
		_, err := retry.Do(ctx, constPolicy(t, clk, retry.Config{MaxDelay: time.Second, MaxAttempts: 5}), fn)
		var re *retry.Error
		if !errors.As(err, &re) || re.Reason != retry.StopRetryAfter || re.Attempts != 1 || !errors.Is(err, contract.ErrRefusedLocally) {
			t.Fatalf("Do = %v; want StopRetryAfter after 1 attempt, unwrapping to the local refusal", err)
		}
		if slept := clk.Now().Sub(start); slept != 0 || *calls != 0 {
			t.Errorf("slept %v, %d calls made; want no sleep and no call", slept, *calls)
		}
	})
	t.Run("next token within MaxDelay: waited for", func(t *testing.T) {
		clk, fn, calls := newLimited(t, 3*time.Second)
		start := clk.Now()
		v, err := retry.Do(ctx, constPolicy(t, clk, retry.Config{MaxDelay: 5 * time.Second}), fn)
		if v != 42 || err != nil || *calls != 1 {
			t.Fatalf("Do = %v, %v after %d calls; want the retry to get the token", v, err, *calls)
		}
		if slept := clk.Now().Sub(start); slept != 3*time.Second {
			t.Errorf("slept %v, want 3s: the time until the token", slept)
		}
	})
	t.Run("the dependency's own 429: capped and retried", func(t *testing.T) {
		clk := retrytest.NewClock()
		fn, calls := failing(&contract.Error{Kind: contract.KindRateLimited, Op: "dep", RetryAfter: time.Hour})
		v, err := retry.Do(ctx, constPolicy(t, clk, retry.Config{MaxDelay: time.Second}), fn)
		if v != 42 || err != nil || calls.Load() != 2 {
			t.Fatalf("Do = %v, %v after %d calls; want one retry after MaxDelay", v, err, calls.Load())
		}
		if got := clk.Sleeps(); len(got) != 1 || got[0] != time.Second {
			t.Errorf("sleeps = %v, want [1s]", got)
		}
	})
}
