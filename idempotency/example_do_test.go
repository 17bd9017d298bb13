package idempotency_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/sadpath/sadpath/idempotency"
)

// A payment charged once, however often the caller retries.
func ExampleDo() {
	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	ex, _ := idempotency.New(idempotency.Config{Store: store})
	ctx := context.Background()

	charge := func(ctx context.Context) (string, error) {
		fmt.Println("charging the card")
		return "ch_1001", nil
	}
	key := idempotency.Key{Scope: "merchant-42", Key: "order-1001"}
	fp := idempotency.Fingerprint([]byte("1250 EUR"))

	for range 2 {
		id, err := idempotency.Do(ctx, ex, key, fp, charge)
		fmt.Println(id, err)
	}
	// The same key with another amount is a client bug, not a retry.
	_, err := idempotency.Do(ctx, ex, key, idempotency.Fingerprint([]byte("9999 EUR")), charge)
	fmt.Println(errors.Is(err, idempotency.ErrMismatch))
	// Output:
	// charging the card
	// ch_1001 <nil>
	// ch_1001 <nil>
	// true
}
