package pgstate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
	"github.com/sadpath/sadpath/ordering/pgstate"
)

// TestSubjectTooLongForIndexRefused: a subject whose row does not fit the
// table's primary-key index (PostgreSQL: SQLSTATE 54000, over about 2.7 kB
// after compression) can never be recorded, however often it is
// redelivered: it is the event's fault, not the database's. Advance refuses
// it with an error matching ordering.ErrInvalidEvent, which a consumer
// dead-letters at its first attempt, rather than a KindInternal failure a
// consumer retries until MaxAttempts (a store outage's treatment).
func TestSubjectTooLongForIndexRefused(t *testing.T) {
	ctx := context.Background()
	p := pool(t)
	_, name := table(t, p)
	st, err := pgstate.New(pgstate.Config{DB: p, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4000)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	subject := hex.EncodeToString(b) // incompressible: 8000 bytes in the index
	err = st.Advance(ctx, subject, func(context.Context, uint64) (uint64, error) { return 1, nil })
	if !errors.Is(err, ordering.ErrInvalidEvent) || contract.Retryable(err) {
		t.Fatalf("Advance: %v; want an error matching ordering.ErrInvalidEvent, not retryable", err)
	}
	if got := mustLast(t, st, subject); got != 0 {
		t.Fatalf("Last = %d, want 0", got)
	}
	// A short subject is still recorded.
	if err := st.Advance(ctx, "acct", func(context.Context, uint64) (uint64, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}

	g, err := ordering.New(ordering.Config{State: st})
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	var dead []string
	c, err := consumer.New(consumer.Config{
		Guard:       g,
		MaxAttempts: 10,
		Handler: func(context.Context, *contract.Event) error {
			ran++
			return nil
		},
		DeadLetter: func(_ context.Context, _ consumer.Delivery, e *contract.Event, _ error) {
			dead = append(dead, fmt.Sprint(e.Sequence))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(fmt.Sprintf(`{"specversion":"1.0","id":"e1","source":"/t","type":"t","subject":%q,"sequence":1}`, subject))
	r := c.Handle(ctx, consumer.Delivery{Data: data, Attempt: 1})
	if r.Action != consumer.DeadLetter || !errors.Is(r.Err, ordering.ErrInvalidEvent) || len(dead) != 1 {
		t.Fatalf("Handle: %s (%s: %v), dead letters %v; want dead-lettered at the first attempt", r.Action, r.Reason, r.Err, dead)
	}
	if ran != 0 {
		t.Fatalf("the Handler ran %d times; the subject's row fails before it", ran)
	}
}
