package limit

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// Uncontended acquire + release of a bulkhead that always has room.
func BenchmarkBulkheadAcquireRelease(b *testing.B) {
	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 8})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := bh.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		bh.Release()
	}
}

func BenchmarkBulkheadDo(b *testing.B) {
	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 8})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Do(ctx, bh, fn); err != nil {
			b.Fatal(err)
		}
	}
}

// Parallel acquire + release with room for every goroutine: the cost of the
// shared counter under contention (run with -cpu 1,2).
func BenchmarkBulkheadParallel(b *testing.B) {
	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1 << 20})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bh.Acquire(ctx); err != nil {
				b.Error(err)
				return
			}
			bh.Release()
		}
	})
}

// Baselines for BenchmarkBulkheadParallel: a buffered-channel semaphore and
// a mutex-guarded counter, the two usual ways to write a bulkhead.
func BenchmarkBaselineChanSemaphoreParallel(b *testing.B) {
	sem := make(chan struct{}, 1<<20)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			select {
			case sem <- struct{}{}:
			default:
				b.Error("full")
				return
			}
			<-sem
		}
	})
}

func BenchmarkBaselineMutexCounterParallel(b *testing.B) {
	var mu sync.Mutex
	n := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			mu.Unlock()
			mu.Lock()
			n--
			mu.Unlock()
		}
	})
}

// Refusal of a full bulkhead (no waiting): the fail-fast path.
func BenchmarkBulkheadRejectParallel(b *testing.B) {
	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 1})
	_ = bh.Acquire(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bh.Acquire(ctx); err == nil {
				b.Error("acquired a full bulkhead")
				return
			}
		}
	})
}

// Contended with a queue: 4 slots, waiting allowed, every goroutine holds its
// slot briefly. Measures hand-off through the queue, not just the fast path.
func BenchmarkBulkheadContendedParallel(b *testing.B) {
	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 2, MaxWaiting: 1 << 16, MaxWait: 1 << 40})
	ctx := context.Background()
	var sink atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bh.Acquire(ctx); err != nil {
				b.Error(err)
				return
			}
			sink.Add(1)
			bh.Release()
		}
	})
}

// The allow path of a limiter that always has tokens (real clock).
func BenchmarkLimiterAllow(b *testing.B) {
	l, _ := NewLimiter(LimiterConfig{Rate: 1e12, Burst: 1 << 30})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Take(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// Baseline: x/time/rate's own Allow on the same settings.
func BenchmarkBaselineRateAllow(b *testing.B) {
	l := rate.NewLimiter(1e12, 1<<30)
	b.ReportAllocs()
	for b.Loop() {
		if !l.Allow() {
			b.Fatal("refused")
		}
	}
}

// The refusal path: reserve, read the delay, cancel, build the error.
func BenchmarkLimiterReject(b *testing.B) {
	l, _ := NewLimiter(LimiterConfig{Rate: 1e-9, Burst: 1})
	ctx := context.Background()
	_ = l.Take(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Take(ctx); err == nil {
			b.Fatal("allowed")
		}
	}
}

func BenchmarkLimiterAllowParallel(b *testing.B) {
	l, _ := NewLimiter(LimiterConfig{Rate: 1e12, Burst: 1 << 30})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Take(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Per-key allow path over 1000 live keys, spread over shards.
func BenchmarkKeyedLimiterAllowParallel(b *testing.B) {
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1e12, Burst: 1 << 30}})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(i)
	}
	ctx := context.Background()
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919)
		for pb.Next() {
			i++
			if err := k.Take(ctx, keys[i%uint64(len(keys))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// Control for the parallel benchmarks: per-goroutine work that shares
// nothing. If this does not get cheaper from -cpu 1 to -cpu 2, the machine
// has no second core to give, and no parallel figure here can show scaling.
func BenchmarkBaselineIndependentParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var x struct {
			v atomic.Int64
			_ [56]byte
		}
		for pb.Next() {
			x.v.Add(1)
			x.v.Add(-1)
		}
	})
}

// Memory per tracked key: every op is a new 16-byte key (the limiter holds
// up to 1<<20), so B/op is what one more key costs, map growth included.
func BenchmarkKeyedLimiterNewKey(b *testing.B) {
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1e12, Burst: 1 << 30}, MaxKeys: 1 << 20})
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(100000000+i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := k.Take(ctx, keys[i&(1<<20-1)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// Latency of refusals while the dependency is stuck: every slot is held (as
// by calls hung on a slow dependency) and 4 goroutines per proc keep
// calling. Reports the p50/p99/max of each refused call, measured around
// Do, as extra metrics.
func BenchmarkBulkheadRejectLatency(b *testing.B) {
	bh, _ := NewBulkhead(BulkheadConfig{MaxConcurrent: 8})
	for range 8 {
		_ = bh.Acquire(context.Background()) // the slow calls
	}
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 0, nil }
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			start := time.Now()
			_, err := Do(ctx, bh, fn)
			local = append(local, time.Since(start))
			if err == nil {
				b.Error("admitted past a full bulkhead")
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	}
}
