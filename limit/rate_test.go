package limit

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit/limittest"
	"github.com/sadpath/sadpath/logctx"
	"golang.org/x/time/rate"
)

func TestNewLimiterRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg   LimiterConfig
		field string
	}{
		{LimiterConfig{}, "LimiterConfig.Rate"},
		{LimiterConfig{Rate: -1}, "LimiterConfig.Rate"},
		{LimiterConfig{Rate: rate.Limit(math.NaN())}, "LimiterConfig.Rate"},
		{LimiterConfig{Rate: 1, Burst: -1}, "LimiterConfig.Burst"},
		{LimiterConfig{Rate: 1, Mode: 7}, "LimiterConfig.Mode"},
		{LimiterConfig{Rate: 1, Mode: Wait, MaxWait: -1}, "LimiterConfig.MaxWait"},
		{LimiterConfig{Rate: 1, MaxWait: time.Second}, "LimiterConfig.MaxWait"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			l, err := NewLimiter(tt.cfg)
			if l != nil {
				t.Fatalf("got a limiter for %+v", tt.cfg)
			}
			wantInvalid(t, err, tt.field)
		})
	}
}

func TestLimiterDefaults(t *testing.T) {
	for _, tc := range []struct {
		rate  rate.Limit
		burst int
	}{{0.1, 1}, {1, 1}, {5.5, 6}, {100, 100}, {rate.Inf, math.MaxInt32}} {
		l, err := NewLimiter(LimiterConfig{Rate: tc.rate})
		if err != nil {
			t.Fatal(err)
		}
		if l.core.burst != tc.burst || l.core.mode != Reject || l.core.maxWait != DefaultRateMaxWait || l.core.name != "ratelimit" {
			t.Errorf("rate %v: core = %+v, want burst %d and defaults", tc.rate, l.core, tc.burst)
		}
	}
}

func TestLimiterRejectCarriesRetryAfterAndConsumesNothing(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, err := NewLimiter(LimiterConfig{Name: "api", Rate: 10, Burst: 2, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if err := l.Take(ctx); err != nil {
			t.Fatalf("take %d within burst: %v", i, err)
		}
	}
	// Many refusals: each must cancel its reservation.
	for range 100 {
		err := l.Take(ctx)
		e := wantErr(t, err, contract.KindRateLimited, CodeRateLimited)
		if e.RetryAfter != 100*time.Millisecond {
			t.Fatalf("RetryAfter = %v, want 100ms (1 token at 10/s)", e.RetryAfter)
		}
		if e.Op != "api" || !errors.Is(err, contract.ErrRateLimited) || !contract.Retryable(err) {
			t.Fatalf("err = %v: want op api, ErrRateLimited, retryable", err)
		}
	}
	clk.Advance(60 * time.Millisecond)
	e := wantErr(t, l.Take(ctx), contract.KindRateLimited, CodeRateLimited)
	if e.RetryAfter != 40*time.Millisecond {
		t.Fatalf("RetryAfter = %v after 60ms, want 40ms", e.RetryAfter)
	}
	clk.Advance(40 * time.Millisecond)
	// Had any refusal kept its reservation, this token would already be spent.
	if err := l.Take(ctx); err != nil {
		t.Fatalf("take when the token is due: %v", err)
	}
	wantErr(t, l.Take(ctx), contract.KindRateLimited, CodeRateLimited)
}

func TestLimiterRefillsToBurstOnly(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 1, Burst: 3, Clock: clk})
	clk.Advance(time.Hour)
	ok := 0
	for range 10 {
		if l.Take(context.Background()) == nil {
			ok++
		}
	}
	if ok != 3 {
		t.Fatalf("%d takes passed after a quiet hour, want burst 3", ok)
	}
}

func TestLimiterInfNeverLimits(t *testing.T) {
	l, _ := NewLimiter(LimiterConfig{Rate: rate.Inf})
	for range 10000 {
		if err := l.Take(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLimiterWaitModeWaitsForToken(t *testing.T) {
	clk := limittest.NewClock(epoch)
	var logs logBuffer
	l, _ := NewLimiter(LimiterConfig{Name: "gw", Rate: 10, Burst: 1, Mode: Wait, MaxWait: time.Second, Clock: clk, Logger: logs.logger()})
	ctx := context.Background()
	if err := l.Take(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Take(ctx) }()
	clk.BlockUntilTimers(1)
	clk.Advance(99 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("returned %v before the token was due", err)
	default:
	}
	clk.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	// The waited-for token was spent: the next call needs another 100ms.
	go func() { done <- l.Take(ctx) }()
	clk.BlockUntilTimers(1)
	clk.Advance(100 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs := logs.records(t)
	if len(recs) != 2 || recs[0][logctx.KeyDecision] != "ratelimit.waited" || recs[0]["waited"] != float64(100*time.Millisecond) || recs[0][logctx.KeyDependency] != "gw" {
		t.Fatalf("records = %v, want two ratelimit.waited of 100ms", recs)
	}
}

func TestLimiterWaitModeRejectsLongWaitAtOnce(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 1, Burst: 1, Mode: Wait, MaxWait: 100 * time.Millisecond, Clock: clk})
	ctx := context.Background()
	_ = l.Take(ctx)
	e := wantErr(t, l.Take(ctx), contract.KindRateLimited, CodeRateLimited)
	if e.RetryAfter != time.Second {
		t.Fatalf("RetryAfter = %v, want 1s", e.RetryAfter)
	}
	if clk.Created() != 0 {
		t.Fatalf("%d timers created: a hopeless wait must not start", clk.Created())
	}
	clk.Advance(time.Second)
	if err := l.Take(ctx); err != nil {
		t.Fatalf("refusal kept its reservation: %v", err)
	}
}

// Concurrent refusals leave the bucket as they found it: with one call
// waiting for the next token (the bucket owing one), many goroutines
// refused at once must not push it deeper into debt.
func TestLimiterWaitModeConcurrentRefusalsConsumeNothing(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 1, Burst: 1, Mode: Wait, MaxWait: time.Second, Clock: clk})
	ctx := context.Background()
	if err := l.Take(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Take(ctx) }()
	clk.BlockUntilTimers(1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := l.Take(ctx); !errors.Is(err, contract.ErrRateLimited) {
					t.Errorf("Take: %v, want refused", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := l.bucket.lim.TokensAt(clk.Now()); got != -1 {
		t.Fatalf("bucket holds %v tokens after the refusals, want -1 (the waiter's token only)", got)
	}
	clk.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLimiterWaitModeRespectsContextDeadline(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 1, Burst: 1, Mode: Wait, MaxWait: time.Hour, Clock: clk})
	_ = l.Take(context.Background())
	// The token is 1s away; the deadline (wall clock) is 500ms away.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(500*time.Millisecond))
	defer cancel()
	e := wantErr(t, l.Take(ctx), contract.KindRateLimited, CodeRateLimited)
	if e.RetryAfter != time.Second || clk.Created() != 0 {
		t.Fatalf("RetryAfter %v, timers %d: want 1s and no wait past the deadline", e.RetryAfter, clk.Created())
	}
}

func TestLimiterWaitModeCancelReturnsToken(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 10, Burst: 1, Mode: Wait, Clock: clk})
	_ = l.Take(context.Background())
	ctx := newManualCtx()
	done := make(chan error, 1)
	go func() { done <- l.Take(ctx) }()
	clk.BlockUntilTimers(1)
	ctx.end(context.Canceled)
	err := <-done
	wantErr(t, err, contract.KindCanceled, "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want errors.Is context.Canceled", err)
	}
	clk.Advance(100 * time.Millisecond)
	// The cancelled wait gave its token back: exactly one passes now.
	if err := l.Take(context.Background()); err != nil {
		t.Fatalf("token not returned by the cancelled wait: %v", err)
	}
}

func TestLimiterWaitModeDoneContext(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 10, Burst: 1, Mode: Wait, Clock: clk})
	_ = l.Take(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantErr(t, l.Take(ctx), contract.KindCanceled, "")
	clk.Advance(100 * time.Millisecond)
	if err := l.Take(context.Background()); err != nil {
		t.Fatalf("token not returned: %v", err)
	}
}

func TestLimiterLogsRejection(t *testing.T) {
	var logs logBuffer
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Name: "api", Rate: 2, Burst: 1, Clock: clk, Logger: logs.logger()})
	ctx := logctx.WithOperation(logctx.WithCorrelationID(context.Background(), "corr-9"), "refunds.create")
	_ = l.Take(ctx)
	_ = l.Take(ctx)
	recs := logs.records(t)
	if len(recs) != 1 {
		t.Fatalf("records = %v, want one", recs)
	}
	r := recs[0]
	if r[logctx.KeyDecision] != "ratelimit.rejected" || r["level"] != "INFO" || r[logctx.KeyDependency] != "api" ||
		r[logctx.KeyCorrelationID] != "corr-9" || r[logctx.KeyOperation] != "refunds.create" ||
		r["retry_after"] != float64(500*time.Millisecond) || r["burst"] != float64(1) {
		t.Fatalf("record = %v", r)
	}
}

// TestLimiterExactlyBurstUnderConcurrency: at a frozen instant, however
// many goroutines race, exactly Burst calls pass.
func TestLimiterExactlyBurstUnderConcurrency(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, _ := NewLimiter(LimiterConfig{Rate: 1, Burst: 37, Clock: clk})
	var passed, refused atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := l.Take(context.Background()); err == nil {
					passed.Add(1)
				} else if errors.Is(err, contract.ErrRateLimited) {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 37 || refused.Load() != 32*50-37 {
		t.Fatalf("passed %d refused %d, want 37 and %d", passed.Load(), refused.Load(), 32*50-37)
	}
}

func TestModeString(t *testing.T) {
	if Reject.String() != "reject" || Wait.String() != "wait" || Mode(9).String() != "mode(9)" {
		t.Fatal(Reject.String(), Wait.String(), Mode(9).String())
	}
}

// An absurd-but-valid rate (one call per ~3 million years) still gives a
// finite, capped hint that the problem writer can round without overflow.
func TestLimiterRetryAfterIsCapped(t *testing.T) {
	clk := limittest.NewClock(epoch)
	l, err := NewLimiter(LimiterConfig{Rate: 1e-14, Burst: 1, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Take(context.Background())
	e := wantErr(t, l.Take(context.Background()), contract.KindRateLimited, CodeRateLimited)
	if e.RetryAfter != maxRetryAfter {
		t.Fatalf("RetryAfter = %v, want the cap %v", e.RetryAfter, maxRetryAfter)
	}
}
