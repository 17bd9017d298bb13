package breaker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

// Any configuration either is rejected with a KindInvalid error naming a
// field, or gives a breaker that works: no panic, no hang.
func FuzzNew(f *testing.F) {
	f.Add("n", int64(0), 0, 0, 0.0, int64(0), int64(0), int64(0), 0.0, 0)
	f.Add("", int64(-1), -1, -1, -1.0, int64(-1), int64(-1), int64(-1), -1.0, -1)
	f.Add("x", int64(time.Millisecond), 1000, 1, 1.0, int64(1), int64(1), int64(1), 1.0, 1<<20)
	f.Add("y", int64(1<<62), 1, 1<<31, 1e-300, int64(1<<62), int64(1<<62), int64(1<<63-1), 0.5, 7)
	f.Fuzz(func(t *testing.T, name string, window int64, buckets, minCalls int, ratio float64,
		slow, open, maxOpen int64, jitter float64, probes int) {
		b, err := breaker.New(breaker.Config{
			Name: name, Window: time.Duration(window), Buckets: buckets, MinCalls: minCalls,
			FailureRatio: ratio, SlowCallThreshold: time.Duration(slow), OpenTimeout: time.Duration(open),
			MaxOpenTimeout: time.Duration(maxOpen), Jitter: jitter, HalfOpenProbes: probes, DisableMetrics: true,
		})
		if err != nil {
			ce := contract.As(err)
			if !errors.Is(err, contract.ErrInvalid) || ce.Code != breaker.CodeConfigInvalid || len(ce.Fields) != 1 {
				t.Fatalf("bad config error %v", err)
			}
			return
		}
		ctx := context.Background()
		down := errors.New("down")
		for range 3 {
			_ = b.Execute(ctx, func(context.Context) error { return down })
			_ = b.Execute(ctx, func(context.Context) error { return nil })
		}
		b.Trip(ctx, 0, "fuzz")
		if st := b.State(); st != breaker.StateOpen && st != breaker.StateHalfOpen {
			t.Fatalf("after Trip: %v", st)
		}
		if err := b.Execute(ctx, func(context.Context) error { return nil }); err != nil && !errors.Is(err, contract.ErrUnavailable) {
			t.Fatalf("call after trip: %v", err)
		}
		b.ForceClosed(ctx, "")
		b.Reset(ctx)
	})
}
