package redisstate_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/breaker/redisstate"
)

// Two instances of a service share one breaker: when one trips, the other
// fails fast too. It needs a Redis server, so it is compiled but not run by
// go test (no Output comment); TestTwoInstancesSeeEachOthersTripsAndRecovery
// runs the same scenario against the Redis named by SADPATH_REDIS_ADDR.
func Example() {
	addr := os.Getenv("SADPATH_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	name := fmt.Sprintf("example-%d", time.Now().UnixNano())
	newInstance := func(id string) *redisstate.Shared {
		s, err := redisstate.New(redisstate.Config{
			Client:     rdb,
			InstanceID: id,
			Prefix:     "sadpath-example:breaker:",
			Breaker:    breaker.Config{Name: name, MinCalls: 3, DisableMetrics: true},
		})
		if err != nil {
			panic(err)
		}
		return s
	}
	a, b := newInstance("a"), newInstance("b")
	defer a.Close()
	defer b.Close()

	down := fmt.Errorf("connection refused")
	for range 3 {
		_ = a.Breaker().Execute(context.Background(), func(context.Context) error { return down })
	}
	// b follows a's trip from its message, or, if b's subscription is not
	// up yet, from the shared state at its next merge (SyncInterval).
	for deadline := time.Now().Add(5 * time.Second); b.Breaker().State() != breaker.StateOpen && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("instance b:", b.Breaker().State()) // instance b: open
}
