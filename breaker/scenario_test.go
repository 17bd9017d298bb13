package breaker_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/limit"
)

// The slow-dependency scenario, time compressed (100ms stands for
// "slow for thirty seconds"): a dependency behind a bulkhead of 4 turns slow;
// the breaker must trip, reject fast, keep in-flight calls bounded, and close
// again within one open timeout plus a probe after the dependency recovers.
// Timings are logged, not asserted (the machine is shared); the bounds that
// are semantics — in flight <= bulkhead size, the breaker closes — are.
func TestSlowDependencyScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time scenario")
	}
	const (
		slots       = 4
		slowLatency = 100 * time.Millisecond
		openTimeout = 150 * time.Millisecond
	)
	var slow atomic.Bool
	var inFlight, maxInFlight atomic.Int64
	dep := func(ctx context.Context) (int, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		d := time.Millisecond
		if slow.Load() {
			d = slowLatency
		}
		select {
		case <-time.After(d):
			return 1, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	bh, err := limit.NewBulkhead(limit.BulkheadConfig{Name: "inventory-db", MaxConcurrent: slots, MaxWaiting: 8, MaxWait: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	since := func() time.Duration { return time.Since(start).Round(time.Millisecond) }
	br, err := breaker.New(breaker.Config{
		Name: "inventory-db", Window: 500 * time.Millisecond, Buckets: 5, MinCalls: 8, FailureRatio: 0.5,
		SlowCallThreshold: 20 * time.Millisecond, OpenTimeout: openTimeout, MaxOpenTimeout: openTimeout,
		HalfOpenProbes: 2, DisableMetrics: true,
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			t.Logf("%6v  %s -> %s (%s)", since(), tr.From, tr.To, tr.Reason)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		rejected []time.Duration
		measure  atomic.Bool
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				_, err := breaker.Do(context.Background(), br, func(ctx context.Context) (int, error) {
					return limit.Do(ctx, bh, dep)
				})
				if errors.Is(err, breaker.ErrOpen) || errors.Is(err, breaker.ErrTooManyProbes) {
					if measure.Load() {
						d := time.Since(t0)
						mu.Lock()
						rejected = append(rejected, d)
						mu.Unlock()
					}
					time.Sleep(200 * time.Microsecond) // a caller doing other work
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) time.Duration {
		t.Helper()
		t0 := time.Now()
		for !cond() {
			if time.Since(t0) > 10*time.Second {
				close(stop)
				wg.Wait()
				t.Fatalf("never %s", what)
			}
			time.Sleep(time.Millisecond)
		}
		return time.Since(t0)
	}
	time.Sleep(100 * time.Millisecond)
	t.Logf("%6v  dependency turns slow (%v per call)", since(), slowLatency)
	slow.Store(true)
	tripIn := waitFor("tripped", func() bool { return br.State() == breaker.StateOpen })
	t.Logf("%6v  tripped %v after the dependency turned slow", since(), tripIn.Round(time.Millisecond))
	measure.Store(true)
	time.Sleep(300 * time.Millisecond)
	measure.Store(false)
	t.Logf("%6v  dependency recovers", since())
	slow.Store(false)
	closeIn := waitFor("closed again", func() bool { return br.State() == breaker.StateClosed })
	t.Logf("%6v  closed %v after recovery (bound: open timeout %v + one slow probe %v)", since(),
		closeIn.Round(time.Millisecond), openTimeout, slowLatency)
	close(stop)
	wg.Wait()

	if m := maxInFlight.Load(); m > slots {
		t.Fatalf("%d calls in flight, bulkhead is %d", m, slots)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejected) == 0 {
		t.Fatal("no rejected calls measured while open")
	}
	slices.Sort(rejected)
	p50, p99 := rejected[len(rejected)/2], rejected[len(rejected)*99/100]
	t.Logf("rejected calls while open: %d, p50 %v, p99 %v, max %v; max in flight %d (bulkhead %d)",
		len(rejected), p50, p99, rejected[len(rejected)-1], maxInFlight.Load(), slots)
}
