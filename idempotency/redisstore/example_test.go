package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/redisstore"
)

// Wiring a Store on a Redis client and running one operation at most once.
// It needs a Redis server, so it has no checked output.
func Example() {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer rdb.Close()
	store, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: "example:idem:"})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	key := idempotency.Key{Scope: "customer-42", Key: "order-7"}
	c, err := store.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: "sha256:…", Lease: 30 * time.Second, Retention: 24 * time.Hour})
	if err != nil {
		return // a retryable contract error: Redis is unavailable
	}
	switch c.Status {
	case idempotency.Claimed:
		// ... do the work once ...
		_ = store.Complete(ctx, key, c.Token, idempotency.Result{StatusCode: 201, Body: []byte(`{"id":"ord_7"}`)})
	case idempotency.Completed:
		fmt.Printf("replay: %s\n", c.Result.Body)
	}
}

// A bad configuration is refused with an error naming the field.
func ExampleNew_invalid() {
	_, err := redisstore.New(redisstore.Config{})
	fmt.Println(err)
	fmt.Println(errors.Is(err, contract.ErrInvalid))
	// Output:
	// redisstore.New: invalid (config.invalid): Config.Client: must not be nil
	// true
}
