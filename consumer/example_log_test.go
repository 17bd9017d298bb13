package consumer_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// Every decision other than a plain apply is one log line with the
// decision, its reason and the event's coordinates — never its data.
func Example_logging() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // deterministic output
			}
			return a
		},
	}))
	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	guard, _ := ordering.New(ordering.Config{Logger: log})
	c, _ := consumer.New(consumer.Config{
		Name: "ledger", Store: store, Guard: guard, Logger: log,
		Handler: func(context.Context, *contract.Event) error { return nil },
	})
	enc := func(id string, seq uint64) []byte {
		b, _ := json.Marshal(contract.Event{ID: id, Source: "/ledger", SpecVersion: "1.0", Type: "posted.v1",
			Subject: "acct_1", Sequence: seq, Data: json.RawMessage(`{"iban":"secret"}`)})
		return b
	}
	ctx := context.Background()
	c.Handle(ctx, consumer.Delivery{Data: enc("a", 1)})
	c.Handle(ctx, consumer.Delivery{Data: enc("a", 1)}) // redelivery
	c.Handle(ctx, consumer.Delivery{Data: enc("b", 1)}) // same sequence, another id
	c.Handle(ctx, consumer.Delivery{Data: []byte(`{"id":1}`)})
	// Output:
	// level=INFO msg="duplicate event dropped" decision="duplicate event dropped" reason="(source, id) already processed" event_type=posted.v1 event_source=/ledger sequence=1
	// level=INFO msg="duplicate event dropped" decision="duplicate event dropped" reason="sequence 1 already applied" subject=acct_1 sequence=1 last_sequence=1
	// level=ERROR msg="event dead-lettered" decision="event dead-lettered" reason="malformed event" attempt=1 error=event.malformed
}
