package redisstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/breaker/redisstate"
	"github.com/sadpath/sadpath/internal/testenv"
)

func benchClient(b *testing.B) (*redis.Client, *roundTrips) {
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(b)})
	rt := &roundTrips{}
	c.AddHook(rt)
	b.Cleanup(func() { c.Close() })
	return c, rt
}

// The closed path of a Shared breaker: a local breaker call plus the OnCall
// counter; Redis is touched only by the background merge.
func BenchmarkSharedClosed(b *testing.B) {
	c, rt := benchClient(b)
	s, err := redisstate.New(redisstate.Config{Client: c, Prefix: testPrefix, SyncInterval: 100 * time.Millisecond,
		Breaker: breaker.Config{Name: "bench-" + time.Now().Format("150405.000000"), MinCalls: 1 << 30, DisableMetrics: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	before := rt.n.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := breaker.Do(ctx, s.Breaker(), fn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rt.n.Load()-before)/float64(b.N), "redis-rt/op")
}

// gobreaker's DistributedCircuitBreaker on the same Redis: four round trips
// per call under a lock.
func BenchmarkGobreakerDistributedClosed(b *testing.B) {
	c, rt := benchClient(b)
	store, err := redisstate.NewGobreakerStore(c, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	dcb, err := gobreaker.NewDistributedCircuitBreaker[int](store,
		gobreaker.Settings{Name: testPrefix + "bench-" + time.Now().Format("150405.000000")})
	if err != nil {
		b.Fatal(err)
	}
	fn := func() (int, error) { return 1, nil }
	before := rt.n.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dcb.Execute(fn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rt.n.Load()-before)/float64(b.N), "redis-rt/op")
}
