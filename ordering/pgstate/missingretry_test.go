package pgstate_test

import (
	"context"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// TestMissingRedeliveryTableAppliesNothing: a service upgraded without
// running Migrate again has no table of redeliveries (4a71cd2). Under
// GapHold with TimeoutSkip, AdvanceRedelivery found out only after the
// handler had run, when the update that also deletes obsolete
// redeliveries failed: the consumer took the State's KindInternal for
// the handler's permanent failure and dead-lettered every event at its
// first delivery, its effect run (and its writes through Tx rolled back).
// The missing table is now found with the row lock, before the handler
// runs, as a missing table of sequences is: the consumer retries the
// event, bounded by MaxAttempts, and the handler never runs.
func TestMissingRedeliveryTableAppliesNothing(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	st, name := table(t, p)
	if _, err := p.Exec(ctx, "DROP TABLE "+name+"_retry"); err != nil {
		t.Fatal(err)
	}
	g, err := ordering.New(ordering.Config{State: st, Gap: ordering.GapHold, OnTimeout: ordering.TimeoutSkip, HoldTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var applied, dead int
	c, err := consumer.New(consumer.Config{
		Guard:       g,
		MaxAttempts: 3,
		Handler: func(context.Context, *contract.Event) error {
			applied++
			return nil
		},
		DeadLetter: func(context.Context, consumer.Delivery, *contract.Event, error) { dead++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"specversion":"1.0","id":"e1","source":"/t","type":"t","subject":"acct","sequence":1}`)
	r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 1})
	if r.Action != consumer.Retry || applied != 0 || dead != 0 {
		t.Fatalf("Handle = %s (%s: %v), handler ran %d times, %d dead-lettered; want a retry, the handler not run", r.Action, r.Reason, r.Err, applied, dead)
	}
	if r.Decision != 0 {
		t.Errorf("decision %s, want none (the State failed before deciding)", r.Decision)
	}
	// Migrate adds the table: the redelivery is applied.
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 2}); r.Action != consumer.Ack || applied != 1 {
		t.Fatalf("after Migrate: Handle = %s (%v), applied %d; want ack, applied once", r.Action, r.Err, applied)
	}
}
