package consumer_test

import (
	"context"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// BenchmarkHandle measures one in-order delivery through decode, in-memory
// dedup, the Guard and a no-op handler.
func BenchmarkHandle(b *testing.B) {
	c := mustConsumer(b, consumer.Config{
		Store:   memStore(b),
		Guard:   mustGuard(b, ordering.Config{}),
		Handler: func(context.Context, *contract.Event) error { return nil },
	})
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = encode(b, event("acct", uint64(i+1), `{"amount":1}`))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := c.Handle(context.Background(), consumer.Delivery{Data: msgs[i], Attempt: 1}); r.Action != consumer.Ack {
			b.Fatal(r)
		}
	}
}

// BenchmarkHandleBare is the same delivery with decode and handler only.
func BenchmarkHandleBare(b *testing.B) {
	c := mustConsumer(b, consumer.Config{Handler: func(context.Context, *contract.Event) error { return nil }})
	msgs := make([][]byte, b.N)
	for i := range msgs {
		msgs[i] = encode(b, event("acct", uint64(i+1), `{"amount":1}`))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := c.Handle(context.Background(), consumer.Delivery{Data: msgs[i], Attempt: 1}); r.Action != consumer.Ack {
			b.Fatal(r)
		}
	}
}
