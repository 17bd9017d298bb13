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
