package jetstream_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// The wiring of a JetStream consumer with deduplication and ordering. It
// needs a server, so it is compiled but not run.
func Example_wiring() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	j, _ := js.New(nc)
	pull, err := j.CreateOrUpdateConsumer(ctx, "LEDGER", js.ConsumerConfig{
		Durable: "projection", AckPolicy: js.AckExplicitPolicy,
		MaxAckPending: 4096, // held messages count against it: > MaxHeld (1024) + Batch (100)
	})
	if err != nil {
		panic(err)
	}
	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	guard, _ := ordering.New(ordering.Config{Gap: ordering.GapHold})
	c, _ := consumer.New(consumer.Config{
		Name: "projection", Store: store, Guard: guard,
		Handler: func(ctx context.Context, e *contract.Event) error { return nil /* apply e */ },
	})
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c})
	if err != nil {
		panic(err) // e.g. a MaxAckPending too small for the hold
	}
	_ = a.Run(ctx) // until interrupted
}

// New names the bad field of a configuration.
func ExampleNew() {
	_, err := jetstream.New(jetstream.Config{})
	fmt.Println(err)
	// Output:
	// consumer/jetstream: invalid (config.invalid): Config.Pull: required
}
