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
