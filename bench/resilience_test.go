package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/avast/retry-go/v4"
	"github.com/cenkalti/backoff/v4"
	"github.com/failsafe-go/failsafe-go"
	fsbulkhead "github.com/failsafe-go/failsafe-go/bulkhead"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	fsrl "github.com/failsafe-go/failsafe-go/ratelimiter"
	fsretry "github.com/failsafe-go/failsafe-go/retrypolicy"
	fstimeout "github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit"
	sretry "github.com/sadpath/sadpath/retry"
)

// Names of the implementations (the sub-benchmark names read by benchtable).
const (
	sadpath = "sadpath"
	direct  = "direct" // baseline: the bare call, no library
)

var (
	errBoom = contract.New(contract.KindUnavailable, "dep", "down")
	sink    error
)

func ok(context.Context) error { return nil }

// noSleep is a retry clock whose waits return at once: the retry rows
// measure the library's bookkeeping, not time.Sleep.
type noSleep struct{}

func (noSleep) Now() time.Time                                   { return time.Now() }
func (noSleep) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// instantTimer is a backoff.Timer that fires at once.
type instantTimer struct{ c chan time.Time }

func (t *instantTimer) Start(time.Duration) { t.c <- time.Time{} }
func (t *instantTimer) Stop()               {}
func (t *instantTimer) C() <-chan time.Time { return t.c }
func newInstantTimer() *instantTimer        { return &instantTimer{c: make(chan time.Time, 1)} }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func BenchmarkBreakerClosed(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		br := must(breaker.New(breaker.Config{Name: "dep"}))
		b.ReportAllocs()
		for b.Loop() {
			sink = br.Execute(ctx, ok)
		}
	})
	b.Run("gobreaker", func(b *testing.B) {
		// The same behaviour as sadpath's defaults: a 60 s rolling window of
		// 10 buckets and a failure-rate trip (≥ 20 calls, ≥ 50 % failed).
		// gobreaker's own defaults (counts never age, trip after 6
		// consecutive failures) skip the bucket rotation and cost ~10 ns less.
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name: "dep", MaxRequests: 3, Interval: time.Minute, BucketPeriod: 6 * time.Second, Timeout: 30 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				n := c.TotalSuccesses + c.TotalFailures
				return n >= 20 && float64(c.TotalFailures) >= 0.5*float64(n)
			},
		})
		b.ReportAllocs()
		for b.Loop() {
			_, sink = cb.Execute(func() (struct{}, error) { return struct{}{}, ok(ctx) })
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		cb := fscb.NewWithDefaults[any]()
		ex := failsafe.With[any](cb)
		b.ReportAllocs()
		for b.Loop() {
			sink = ex.Run(func() error { return ok(ctx) })
		}
	})
	b.Run(direct, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = ok(ctx)
		}
	})
}

func BenchmarkBreakerOpen(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		br := must(breaker.New(breaker.Config{Name: "dep", OpenTimeout: time.Hour, DisableMetrics: true}))
		br.ForceOpen(ctx, "benchmark")
		b.ReportAllocs()
		for b.Loop() {
			sink = br.Execute(ctx, ok)
		}
		if !errors.Is(sink, contract.ErrUnavailable) {
			b.Fatalf("open breaker returned %v", sink)
		}
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Name: "dep", Timeout: time.Hour,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }})
		_, _ = cb.Execute(func() (struct{}, error) { return struct{}{}, errBoom })
		b.ReportAllocs()
		for b.Loop() {
			_, sink = cb.Execute(func() (struct{}, error) { return struct{}{}, ok(ctx) })
		}
		if !errors.Is(sink, gobreaker.ErrOpenState) {
			b.Fatalf("open breaker returned %v", sink)
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		cb := fscb.NewBuilder[any]().WithDelay(time.Hour).Build()
		cb.Open()
		ex := failsafe.With[any](cb)
		b.ReportAllocs()
		for b.Loop() {
			sink = ex.Run(func() error { return ok(ctx) })
		}
		if !errors.Is(sink, fscb.ErrOpen) {
			b.Fatalf("open breaker returned %v", sink)
		}
	})
}

func BenchmarkRetryFirstTry(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		p := must(sretry.New(sretry.Config{Clock: noSleep{}}))
		b.ReportAllocs()
		for b.Loop() {
			sink = sretry.DoVoid(ctx, p, ok)
		}
	})
	b.Run("backoff", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			// An ExponentialBackOff is not safe for concurrent use: one per call.
			sink = backoff.Retry(func() error { return ok(ctx) }, backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(), 2), ctx))
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[any](fsretry.NewBuilder[any]().WithMaxAttempts(3).Build())
		b.ReportAllocs()
		for b.Loop() {
			sink = ex.Run(func() error { return ok(ctx) })
		}
	})
	b.Run("retrygo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = retry.Do(func() error { return ok(ctx) }, retry.Attempts(3), retry.Context(ctx))
		}
	})
	b.Run(direct, func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ctx.Err() == nil {
				sink = ok(ctx)
			}
		}
	})
}

// flaky fails twice, then succeeds: a 3-attempt call.
type flaky struct{ n int }

func (f *flaky) call(context.Context) error {
	f.n++
	if f.n%3 != 0 {
		return errBoom
	}
	return nil
}

func BenchmarkRetryThreeAttempts(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		p := must(sretry.New(sretry.Config{Clock: noSleep{}, DisableTelemetry: true}))
		f := &flaky{}
		b.ReportAllocs()
		for b.Loop() {
			sink = sretry.DoVoid(ctx, p, f.call)
		}
	})
	b.Run("backoff", func(b *testing.B) {
		f := &flaky{}
		b.ReportAllocs()
		for b.Loop() {
			sink = backoff.RetryNotifyWithTimer(func() error { return f.call(ctx) },
				backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(), 2), ctx), nil, newInstantTimer())
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		// failsafe-go has no injectable sleeper: a zero delay skips the wait.
		ex := failsafe.With[any](fsretry.NewBuilder[any]().WithMaxAttempts(3).WithDelay(0).Build())
		f := &flaky{}
		b.ReportAllocs()
		for b.Loop() {
			sink = ex.Run(func() error { return f.call(ctx) })
		}
	})
	b.Run("retrygo", func(b *testing.B) {
		f := &flaky{}
		b.ReportAllocs()
		for b.Loop() {
			sink = retry.Do(func() error { return f.call(ctx) }, retry.Attempts(3), retry.Delay(0), retry.DelayType(retry.FixedDelay), retry.Context(ctx))
		}
	})
}

func BenchmarkBulkhead(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		bh := must(limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 64}))
		b.ReportAllocs()
		for b.Loop() {
			if err := bh.Acquire(ctx); err == nil {
				bh.Release()
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		bh := fsbulkhead.New[any](64)
		b.ReportAllocs()
		for b.Loop() {
			if bh.TryAcquirePermit() {
				bh.ReleasePermit()
			}
		}
	})
	b.Run("chansem", func(b *testing.B) {
		sem := make(chan struct{}, 64)
		b.ReportAllocs()
		for b.Loop() {
			select {
			case sem <- struct{}{}:
				<-sem
			default:
			}
		}
	})
}

func BenchmarkBulkheadParallel(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		bh := must(limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 1 << 20}))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := bh.Acquire(ctx); err == nil {
					bh.Release()
				}
			}
		})
	})
	b.Run("failsafe", func(b *testing.B) {
		bh := fsbulkhead.New[any](1 << 20)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if bh.TryAcquirePermit() {
					bh.ReleasePermit()
				}
			}
		})
	})
}

func BenchmarkRateLimiterAllow(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		l := must(limit.NewLimiter(limit.LimiterConfig{Rate: rate.Inf}))
		b.ReportAllocs()
		for b.Loop() {
			sink = l.Take(ctx)
		}
	})
	b.Run("xrate", func(b *testing.B) {
		l := rate.NewLimiter(rate.Inf, 1)
		b.ReportAllocs()
		for b.Loop() {
			if !l.Allow() {
				sink = errBoom
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		l := fsrl.NewBursty[any](1<<30, time.Second)
		b.ReportAllocs()
		for b.Loop() {
			if !l.TryAcquirePermit() {
				sink = errBoom
			}
		}
	})
}

func BenchmarkRateLimiterReject(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		l := must(limit.NewLimiter(limit.LimiterConfig{Rate: rate.Every(time.Hour), Burst: 1}))
		_ = l.Take(ctx)
		b.ReportAllocs()
		for b.Loop() {
			sink = l.Take(ctx)
		}
	})
	b.Run("xrate", func(b *testing.B) {
		l := rate.NewLimiter(rate.Every(time.Hour), 1)
		l.Allow()
		b.ReportAllocs()
		for b.Loop() {
			if !l.Allow() {
				sink = errBoom
			}
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		l := fsrl.NewBursty[any](1, time.Hour)
		l.TryAcquirePermit()
		b.ReportAllocs()
		for b.Loop() {
			if !l.TryAcquirePermit() {
				sink = errBoom
			}
		}
	})
}

// BenchmarkPipeline runs retry + breaker + bulkhead + timeout around a no-op.
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	b.Run(sadpath, func(b *testing.B) {
		p := must(sretry.New(sretry.Config{Clock: noSleep{}}))
		br := must(breaker.New(breaker.Config{Name: "dep"}))
		bh := must(limit.NewBulkhead(limit.BulkheadConfig{MaxConcurrent: 64}))
		call := func(ctx context.Context) error {
			return br.Execute(ctx, func(ctx context.Context) error {
				if err := bh.Acquire(ctx); err != nil {
					return err
				}
				defer bh.Release()
				ctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				return ok(ctx)
			})
		}
		b.ReportAllocs()
		for b.Loop() {
			sink = sretry.DoVoid(ctx, p, call)
		}
	})
	b.Run("failsafe", func(b *testing.B) {
		ex := failsafe.With[any](
			fsretry.NewBuilder[any]().WithMaxAttempts(3).Build(),
			fscb.NewWithDefaults[any](),
			fsbulkhead.New[any](64),
			fstimeout.New[any](time.Second),
		)
		b.ReportAllocs()
		for b.Loop() {
			sink = ex.RunWithExecution(func(e failsafe.Execution[any]) error { return ok(e.Context()) })
		}
	})
}
