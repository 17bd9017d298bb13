package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/limit/limittest"
)

// A client-side rate limiter inside a breaker (a dependency's quota kept
// by the caller) refuses calls because the callers send too many, whatever
// the dependency's health. Its refusals used to count as failures of the
// dependency (rate limited is a Failure), so a burst over the quota
// tripped the breaker and turned away, for a whole open delay, the calls
// the limiter would have let through to a healthy dependency. They are
// ignored now; the dependency's own 429 still counts, and so does a full
// bulkhead, whose slots stay taken while the dependency is slow (see the
// README on placing it).
func TestLocalRateLimitRefusalsDoNotTrip(t *testing.T) {
	ctx := context.Background()
	l, err := limit.NewLimiter(limit.LimiterConfig{Rate: rate.Every(time.Hour), Burst: 1, Clock: limittest.NewClock(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := breaker.New(breaker.Config{Name: "quota", Clock: newClock(), MinCalls: 2, FailureRatio: 0.5, Window: time.Hour, DisableMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		_, err := breaker.Do(ctx, b, func(ctx context.Context) (int, error) {
			if err := l.Take(ctx); err != nil {
				return 0, err
			}
			return 1, nil // the dependency answers well
		})
		if i > 0 && !errors.Is(err, contract.ErrRateLimited) {
			t.Fatalf("call %d: %v, want the limiter's refusal", i, err)
		}
	}
	if s := b.State(); s != breaker.StateClosed {
		t.Fatalf("state %v after local refusals alone, want closed", s)
	}
	if c := b.Counts(); c.Failures != 0 || c.Ignored != 9 {
		t.Errorf("counts %+v, want 9 ignored, no failure", c)
	}

	for _, tt := range []struct {
		name string
		err  error
		want breaker.Outcome
	}{
		{"local rate limit", refusal(t, func() error { _ = l.Take(ctx); return l.Take(ctx) }), breaker.Ignore},
		{"dependency's 429", contract.New(contract.KindRateLimited, "dep", "slow down").WithCode(limit.CodeRateLimited), breaker.Failure},
		{"full bulkhead", refusal(t, func() error {
			bh, _ := limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1})
			_ = bh.Acquire(ctx)
			return bh.Acquire(ctx)
		}), breaker.Failure},
	} {
		if got := breaker.Classify(tt.err); got != tt.want {
			t.Errorf("%s: Classify = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func refusal(t *testing.T, f func() error) error {
	t.Helper()
	err := f()
	if !errors.Is(err, contract.ErrRefusedLocally) {
		t.Fatalf("%v, want a local refusal", err)
	}
	return err
}
