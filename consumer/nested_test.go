package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// TestHandlerDoWithTheConsumersKeyFailsAtOnce: a Handler calling
// idempotency.Do with the store and the (scope, key) the consumer claimed
// for the event could only meet that claim in progress. It got ErrMismatch
// (a payload conflict that never was) or, with the fingerprint of the
// consumer's record, under Wait it waited for itself until its context
// ended (and the event, failing with the context, was retried forever). It
// now fails at once with ErrNestedCall, and the event is dead-lettered
// (the Handler is wrong). Once Handle returned the claim is over: a Do
// with the same key and a context kept from the Handler runs.
func TestHandlerDoWithTheConsumersKeyFailsAtOnce(t *testing.T) {
	store := memStore(t)
	ex, err := idempotency.New(idempotency.Config{Store: store, Duplicate: idempotency.Wait})
	if err != nil {
		t.Fatal(err)
	}
	for i, sameFingerprint := range []bool{false, true} {
		t.Run(fmt.Sprintf("sameFingerprint=%v", sameFingerprint), func(t *testing.T) {
			ev := event("order", uint64(i+1), `{}`)
			key := idempotency.Key{Scope: "consumer/orders", Key: ev.DedupKey()}
			fp := "another payload"
			var nestedErr error
			var kept context.Context
			q := &dlq{}
			c := mustConsumer(t, consumer.Config{Name: "orders", Store: store, DeadLetter: q.add, Handler: func(ctx context.Context, e *contract.Event) error {
				kept = ctx
				if sameFingerprint {
					rec, err := store.Get(ctx, key)
					if err != nil {
						return err
					}
					fp = rec.Fingerprint
				}
				_, nestedErr = idempotency.Do(ctx, ex, key, fp, func(context.Context) (int, error) {
					t.Error("the nested Do ran its function")
					return 0, nil
				})
				return nestedErr
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a regression fails rather than hangs
			defer cancel()
			r := c.Handle(ctx, consumer.Delivery{Data: encode(t, ev), Attempt: 1})
			if ctx.Err() != nil {
				t.Fatalf("the Handler's Do waited for its context to end: %v", nestedErr)
			}
			if !errors.Is(nestedErr, idempotency.ErrNestedCall) {
				t.Fatalf("Do with the consumer's key in the Handler: %v; want ErrNestedCall", nestedErr)
			}
			if r.Action != consumer.DeadLetter || !errors.Is(r.Err, idempotency.ErrNestedCall) || q.len() != 1 {
				t.Fatalf("Handle: %v (%v), %d dead letters; want the event dead-lettered with ErrNestedCall", r.Action, r.Err, q.len())
			}
			v, err := idempotency.Do(kept, ex, key, fp, func(context.Context) (int, error) { return 7, nil })
			if err != nil || v != 7 {
				t.Fatalf("Do with a context kept from a finished Handle: %v, %v; want it to run (7)", v, err)
			}
		})
	}
}

// TestHandlerHandlingItsOwnDeliveryFailsAtOnce: a Handler handing its
// Consumer its own delivery (the event id it is handling) met the claim
// Handle holds for it: the nested Handle answered "in progress elsewhere"
// and a Retry after the lease, a redelivery that would meet the same
// claim for as long as the Handler keeps doing it. It now fails at once,
// as a Do with the consumer's key does: dead-lettered with an error
// matching ErrNestedCall, without running the Handler or touching the
// claim, which the outer Handle completes as usual.
func TestHandlerHandlingItsOwnDeliveryFailsAtOnce(t *testing.T) {
	ev := event("order", 1, `{}`)
	data := encode(t, ev)
	var c *consumer.Consumer
	var nested consumer.Result
	calls := 0
	q := &dlq{}
	c = mustConsumer(t, consumer.Config{Name: "orders", Store: memStore(t), DeadLetter: q.add, Handler: func(ctx context.Context, e *contract.Event) error {
		calls++
		if calls == 1 {
			nested = c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 1})
		}
		return nil
	}})
	r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: 1})
	if nested.Action != consumer.DeadLetter || !errors.Is(nested.Err, idempotency.ErrNestedCall) || q.len() != 1 {
		t.Fatalf("nested Handle of the Handler's own delivery: %v %q (%v), %d dead letters; want it dead-lettered with ErrNestedCall",
			nested.Action, nested.Reason, nested.Err, q.len())
	}
	if calls != 1 {
		t.Fatalf("the Handler ran %d times; want once (the nested Handle must not run it)", calls)
	}
	if r.Action != consumer.Ack || r.Reason != "applied" {
		t.Fatalf("outer Handle: %v %q (%v); want Ack, applied", r.Action, r.Reason, r.Err)
	}
	if r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: 2}); r.Action != consumer.Ack || r.Reason != "duplicate: already processed" {
		t.Fatalf("redelivery after the outer Handle: %v %q (%v); want a duplicate (the nested call left the claim alone)", r.Action, r.Reason, r.Err)
	}
}
