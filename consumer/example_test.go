package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// A consumer with deduplication and ordering: a redelivery is acknowledged
// without running the handler, an event ahead of its turn is retried later,
// and a malformed one is dead-lettered instead of retried forever.
func Example() {
	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	guard, _ := ordering.New(ordering.Config{})
	balance := 0
	c, err := consumer.New(consumer.Config{
		Name:  "ledger",
		Store: store,
		Guard: guard,
		Handler: func(ctx context.Context, e *contract.Event) error {
			var p struct{ Amount int }
			if err := json.Unmarshal(e.Data, &p); err != nil {
				return contract.Wrap(contract.KindInvalid, "ledger.apply", err)
			}
			balance += p.Amount
			return nil
		},
		DeadLetter: func(ctx context.Context, d consumer.Delivery, e *contract.Event, err error) {
			fmt.Println("dead letter:", contract.As(err).CodeOrKind())
		},
	})
	if err != nil {
		panic(err)
	}
	msg := func(seq uint64, amount int) []byte {
		b, _ := json.Marshal(contract.Event{
			ID: fmt.Sprint("evt-", seq), Source: "/ledger", SpecVersion: "1.0", Type: "com.example.posted.v1",
			Subject: "acct_1", Sequence: seq, Data: json.RawMessage(fmt.Sprintf(`{"amount":%d}`, amount)),
		})
		return b
	}
	for _, d := range [][]byte{msg(1, 100), msg(1, 100), msg(3, 5), msg(2, -30), msg(3, 5), []byte(`{"id":`)} {
		r := c.Handle(context.Background(), consumer.Delivery{Data: d, Attempt: 1})
		fmt.Printf("%s (%s)\n", r.Action, r.Reason)
	}
	fmt.Println("balance", balance)
	// Output:
	// ack (applied)
	// ack (duplicate: already processed)
	// retry (gap: missing earlier events)
	// ack (applied)
	// ack (applied)
	// dead letter: event.malformed
	// dead_letter (malformed event)
	// balance 75
}
