package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/sadpath/sadpath/breaker"
)

// The baseline: gobreaker/v2 Execute with comparable settings (rolling
// window of 10 buckets, failure-rate ReadyToTrip).
func BenchmarkGobreakerExecute(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
		Name: "bench", MaxRequests: 3, Interval: time.Minute, BucketPeriod: 6 * time.Second, Timeout: 30 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			n := c.TotalSuccesses + c.TotalFailures
			return n >= 20 && float64(c.TotalFailures) >= 0.5*float64(n)
		},
	})
	fn := func() (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cb.Execute(fn); err != nil {
			b.Fatal(err)
		}
	}
}

func benchBreaker(b *testing.B, cfg breaker.Config) *breaker.Breaker {
	cfg.Name = "bench"
	br, err := breaker.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return br
}

func BenchmarkDoClosed(b *testing.B) {
	br := benchBreaker(b, breaker.Config{DisableMetrics: true})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := breaker.Do(ctx, br, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// With metrics on through otel's global (no-op until an SDK is installed)
// provider: the default.
func BenchmarkDoClosedGlobalMeter(b *testing.B) {
	br := benchBreaker(b, breaker.Config{})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := breaker.Do(ctx, br, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDoClosedSlowCallDetection(b *testing.B) {
	br := benchBreaker(b, breaker.Config{DisableMetrics: true, SlowCallThreshold: time.Second})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := breaker.Do(ctx, br, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDoOpenRejection(b *testing.B) {
	br := benchBreaker(b, breaker.Config{DisableMetrics: true, OpenTimeout: time.Hour})
	ctx := context.Background()
	br.Trip(ctx, time.Hour, "bench")
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := breaker.Do(ctx, br, fn); !errors.Is(err, breaker.ErrOpen) {
			b.Fatal(err)
		}
	}
}

func BenchmarkDoOpenRejectionGlobalMeter(b *testing.B) {
	br := benchBreaker(b, breaker.Config{OpenTimeout: time.Hour})
	ctx := context.Background()
	br.Trip(ctx, time.Hour, "bench")
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := breaker.Do(ctx, br, fn); !errors.Is(err, breaker.ErrOpen) {
			b.Fatal(err)
		}
	}
}

func BenchmarkDoClosedParallel(b *testing.B) {
	br := benchBreaker(b, breaker.Config{DisableMetrics: true})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := breaker.Do(ctx, br, fn); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
