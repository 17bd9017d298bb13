package idempotency_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// A broker delivers the same event three times; the first attempt fails.
// The failure does not mark the event seen, so the redelivery processes it,
// and the third delivery is recognised as a duplicate.
func ExampleDedup() {
	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	dedup, _ := idempotency.NewDedup(idempotency.Config{Store: store})
	ev := contract.Event{ID: "evt_77", Source: "/psp/webhooks", SpecVersion: "1.0", Type: "payment.captured.v1"}

	attempt := 0
	handle := func(ctx context.Context, ev contract.Event) error {
		attempt++
		if attempt == 1 {
			return errors.New("database unavailable")
		}
		fmt.Println("booking", ev.ID)
		return nil
	}
	for range 3 {
		dup, err := dedup.HandleEvent(context.Background(), ev, handle)
		fmt.Println("duplicate:", dup, "error:", err)
	}
	// Output:
	// duplicate: false error: database unavailable
	// booking evt_77
	// duplicate: false error: <nil>
	// duplicate: true error: <nil>
}
