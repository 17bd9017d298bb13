package storetest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// A FakeClock drives an in-process store through lease expiry without
// sleeping, as storetest.Run does with the Clock a store's constructor
// returns: a lease of 30 s runs out when the clock is advanced past it, and
// the key can be claimed again, with a higher fencing token.
func ExampleFakeClock() {
	clk := storetest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clk})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	req := idempotency.ClaimRequest{
		Key:         idempotency.Key{Scope: "tenant-1", Key: "order-42"},
		Fingerprint: "fp",
		Lease:       30 * time.Second,
		Retention:   24 * time.Hour,
	}
	first, _ := store.Claim(ctx, req)
	again, _ := store.Claim(ctx, req)
	clk.Advance(31 * time.Second) // the first owner crashed: its lease runs out
	after, _ := store.Claim(ctx, req)
	fmt.Println(first.Status == idempotency.Claimed, again.Status == idempotency.InProgress)
	fmt.Println(after.Status == idempotency.Claimed, after.Token > first.Token)
	// Output:
	// true true
	// true true
}
