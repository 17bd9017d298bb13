package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

// A run on the simulated broker: 200 events over 4 payments, a third of
// them delivered twice, shuffled, with three malformed messages and 10 %
// of the handler calls failing transiently. Every event is applied once,
// in order; the malformed ones are dead-lettered.
func ExampleRunMemory() {
	r, err := RunMemory(context.Background(), Options{
		Events: 200, Subjects: 4, DupRate: 0.3, FailRate: 0.1, Seed: 1,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("messages:", r.Produced.Deliveries, "duplicates:", r.Produced.Duplicates)
	fmt.Println("applied:", r.Counts.Applied, "dead-lettered:", r.Counts.DeadLettered)
	fmt.Println("dead letters:", len(r.DeadLetters))
	fmt.Println("payment pay_0001 at version", r.Payments["pay_0001"].Version)
	fmt.Println("projection equals in-order application:", r.OK())
	// Output:
	// messages: 275 duplicates: 72
	// applied: 200 dead-lettered: 3
	// dead letters: 3
	// payment pay_0001 at version 50
	// projection equals in-order application: true
}

// The verdict compares a projection with the in-order application of the
// same events; applying the broker's deliveries as they come fails it.
func ExampleProjection_Verify() {
	w, err := Produce(40, 2, 0.5, 0, 3)
	if err != nil {
		panic(err)
	}
	want, err := InOrder(w.Events)
	if err != nil {
		panic(err)
	}
	bare := NewProjection()
	for _, it := range w.Items {
		if it.Event != nil {
			_ = bare.Apply(it.Event) // no deduplication, no ordering
		}
	}
	fmt.Println("in order:", len(want.Verify(want)), "problems")
	fmt.Println("as delivered:", len(bare.Verify(want)) > 0)
	// Output:
	// in order: 0 problems
	// as delivered: true
}

// The wiring of the README, compiled (it needs a NATS server, so it is not
// run): the consumer with deduplication and ordering behind a JetStream
// pull consumer.
func Example_wiring() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	h, _ := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(os.Stderr, nil)})
	logger := slog.New(h)
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	j, _ := js.New(nc)
	projection := NewProjection()

	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{}) // or redisstore / pgstore
	guard, _ := ordering.New(ordering.Config{
		Gap: ordering.GapHold, OnTimeout: ordering.TimeoutReject, // hold gaps; never skip a late event
		HoldTimeout: 30 * time.Second, Logger: logger,
	})
	c, _ := consumer.New(consumer.Config{
		Name: "payment-projection", Store: store, Guard: guard, Logger: logger,
		Handler: func(ctx context.Context, ev *contract.Event) error {
			return projection.Apply(ev) // return a *contract.Error: transient kinds are retried
		},
		DeadLetter: func(ctx context.Context, d consumer.Delivery, ev *contract.Event, err error) {
			logger.ErrorContext(ctx, "parked", "error", err) // somewhere a human looks
		},
		MaxAttempts: 50, // gap rejections count as attempts
	})
	pull, _ := j.CreateOrUpdateConsumer(ctx, "PAYMENTS", js.ConsumerConfig{Durable: "payment-projection", AckPolicy: js.AckExplicitPolicy,
		MaxAckPending: 4096}) // held messages count against it: more than MaxHeld (1024) + Batch
	a, _ := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, Logger: logger})
	_ = a.Run(ctx) // until ctx is done
}
