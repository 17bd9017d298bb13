package consumer_test

import (
	"context"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// TestHeldEventsSharingASequenceEachGetTheirOwnFate: two different events
// (other ids, other data) claim the same (subject, sequence) — a producer
// bug — and both wait in the hold behind a gap. The Guard keeps one entry
// per sequence and applies the first. The second's delivery must be told
// the truth about itself: not applied (its handler never ran) but a
// duplicate of an applied sequence, as it is when it arrives after the
// first was applied; and when the first fails for good, the second is not
// dead-lettered for the first's error, and its dead letter never pairs its
// raw delivery with the first event.
func TestHeldEventsSharingASequenceEachGetTheirOwnFate(t *testing.T) {
	for _, failFirst := range []bool{false, true} {
		ctx := context.Background()
		ran := map[string]int{}
		var dead []string
		c := mustConsumer(t, consumer.Config{
			Store: memStore(t),
			Guard: mustGuard(t, ordering.Config{Gap: ordering.GapHold}),
			DeadLetter: func(_ context.Context, d consumer.Delivery, e *contract.Event, _ error) {
				dead = append(dead, e.ID)
			},
			Handler: func(_ context.Context, e *contract.Event) error {
				ran[e.ID]++
				if failFirst && e.ID == "first" {
					return contract.New(contract.KindInvalid, "ledger", "rejected")
				}
				return nil
			},
		})
		first, second := event("a", 2, `{"v":1}`), event("a", 2, `{"v":2}`)
		first.ID, second.ID = "first", "second"
		got := map[string]consumer.Result{}
		for _, e := range []contract.Event{first, second} {
			id := e.ID
			d := consumer.Delivery{Data: encode(t, e), Settle: func(r consumer.Result) { got[id] = r }}
			if r := c.Handle(ctx, d); r.Action != consumer.Hold {
				t.Fatalf("%s: %+v, want hold", id, r)
			}
		}
		if r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("a", 1, `{}`))}); r.Action != consumer.Ack {
			t.Fatalf("sequence 1: %+v", r)
		}
		r := got["second"]
		if ran["second"] != 0 || r.Event == nil || r.Event.ID != "second" {
			t.Fatalf("failFirst=%v: second's settlement %+v (its handler ran %d times): it must report the second event", failFirst, r, ran["second"])
		}
		if !failFirst && (r.Action != consumer.Ack || r.Decision != ordering.Duplicate) {
			t.Fatalf("second's settlement %+v, want ack as a duplicate: its handler never ran", r)
		}
		if failFirst && (r.Action != consumer.Retry || len(dead) != 1 || dead[0] != "first") {
			t.Fatalf("first failed for good: second settled %+v, dead letters %v; want second retried, first alone dead-lettered", r, dead)
		}
	}
}
