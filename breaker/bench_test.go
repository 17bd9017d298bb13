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

// BenchmarkClosedPaired runs gobreaker's Execute and Do in alternating
// blocks of 1000 calls in the same loop, so that both see the same machine
// load, and reports each one's ns per call and their ratio.
func BenchmarkClosedPaired(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
		Name: "bench", MaxRequests: 3, Interval: time.Minute, BucketPeriod: 6 * time.Second, Timeout: 30 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			n := c.TotalSuccesses + c.TotalFailures
			return n >= 20 && float64(c.TotalFailures) >= 0.5*float64(n)
		},
	})
	br := benchBreaker(b, breaker.Config{DisableMetrics: true})
	ctx := context.Background()
	gfn := func() (int, error) { return 1, nil }
	fn := func(context.Context) (int, error) { return 1, nil }
	const block = 1000
	var tg, to time.Duration
	ming, mino := time.Duration(1<<62), time.Duration(1<<62) // fastest block: least disturbed by other load
	var n int
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		for range block {
			_, _ = cb.Execute(gfn)
		}
		t1 := time.Now()
		for range block {
			_, _ = breaker.Do(ctx, br, fn)
		}
		t2 := time.Now()
		tg += t1.Sub(t0)
		to += t2.Sub(t1)
		ming, mino = min(ming, t1.Sub(t0)), min(mino, t2.Sub(t1))
		n += block
	}
	b.ReportMetric(float64(tg.Nanoseconds())/float64(n), "gobreaker-ns/call")
	b.ReportMetric(float64(to.Nanoseconds())/float64(n), "breaker-ns/call")
	b.ReportMetric(float64(to)/float64(tg), "ratio")
	b.ReportMetric(float64(mino)/float64(ming), "ratio-fastest-blocks")
	b.ReportMetric(float64(ming.Nanoseconds())/block, "gobreaker-fastest-ns/call")
	b.ReportMetric(float64(mino.Nanoseconds())/block, "breaker-fastest-ns/call")
}

// BenchmarkFastestBlocks reports, for each path, the ns per call of its
// fastest block of 1000 calls: on a shared machine the least disturbed
// measurement. Arms run interleaved in the same loop.
func BenchmarkFastestBlocks(b *testing.B) {
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	withMeter := benchBreaker(b, breaker.Config{})
	slow := benchBreaker(b, breaker.Config{DisableMetrics: true, SlowCallThreshold: time.Second})
	open := benchBreaker(b, breaker.Config{DisableMetrics: true, OpenTimeout: time.Hour})
	open.Trip(ctx, time.Hour, "bench")
	openMeter := benchBreaker(b, breaker.Config{OpenTimeout: time.Hour})
	openMeter.Trip(ctx, time.Hour, "bench")
	arms := []struct {
		name string
		br   *breaker.Breaker
	}{{"closed-global-meter", withMeter}, {"closed-slow-detection", slow}, {"open-rejection", open}, {"open-rejection-global-meter", openMeter}}
	const block = 1000
	fastest := make([]time.Duration, len(arms))
	for i := range fastest {
		fastest[i] = 1 << 62
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, a := range arms {
			t0 := time.Now()
			for range block {
				_, _ = breaker.Do(ctx, a.br, fn)
			}
			fastest[i] = min(fastest[i], time.Since(t0))
		}
	}
	for i, a := range arms {
		b.ReportMetric(float64(fastest[i].Nanoseconds())/block, a.name+"-ns/call")
	}
}
