package redisstore

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
)

// benchStore returns a Store on a client whose commands are counted, with
// the scripts already loaded on the server.
func benchStore(b *testing.B) (*Store, *countingHook) {
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(b), PoolSize: 32})
	b.Cleanup(func() { _ = c.Close() })
	s := newStore(b, c, testPrefix(b))
	ctx := context.Background()
	warm := idempotency.ClaimRequest{Key: idempotency.Key{Key: "warm"}, Lease: time.Minute, Retention: time.Hour}
	wc, err := s.Claim(ctx, warm)
	if err != nil {
		b.Fatal(err)
	}
	_ = s.Complete(ctx, warm.Key, wc.Token, idempotency.Result{})
	_, _ = s.Get(ctx, warm.Key)
	h := &countingHook{}
	c.AddHook(h)
	return s, h
}

// parallel16 makes RunParallel use 16 goroutines whatever GOMAXPROCS is.
func parallel16(b *testing.B) {
	b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
}

var benchResult = idempotency.Result{StatusCode: 201, Body: []byte(`{"id":"pay_0123456789","status":"accepted"}`)}

// BenchmarkFreshKey: claim a new key and complete it (the first request of
// every operation), 16 concurrent callers.
func BenchmarkFreshKey(b *testing.B) {
	s, h := benchStore(b)
	var seq atomic.Int64
	parallel16(b)
	b.ReportAllocs()
	h.n.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			k := idempotency.Key{Scope: "bench", Key: strconv.FormatInt(seq.Add(1), 10)}
			c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
			if err != nil || c.Status != idempotency.Claimed {
				b.Fatal(c, err)
			}
			if err := s.Complete(ctx, k, c.Token, benchResult); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(h.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkReplay: a duplicate of a completed key gets the stored result,
// 16 concurrent callers.
func BenchmarkReplay(b *testing.B) {
	s, h := benchStore(b)
	ctx := context.Background()
	const keys = 256
	for i := range keys {
		k := idempotency.Key{Scope: "bench", Key: strconv.Itoa(i)}
		c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(ctx, k, c.Token, benchResult); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	parallel16(b)
	b.ReportAllocs()
	h.n.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := idempotency.Key{Scope: "bench", Key: strconv.FormatInt(seq.Add(1)%keys, 10)}
			c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
			if err != nil || c.Status != idempotency.Completed {
				b.Fatal(c, err)
			}
		}
	})
	b.ReportMetric(float64(h.n.Load())/float64(b.N), "roundtrips/op")
}

func BenchmarkEncodeResult(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeResult(benchResult)
	}
}
