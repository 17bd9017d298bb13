package consumer_test

import (
	"context"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// FuzzHandle feeds arbitrary bytes to a Consumer: it never panics or
// hangs, undecodable input is dead-lettered and never retried, and the
// handler only ever sees valid, ordered events.
func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `[]`, `null`, `"x"`, `{"id":`, "\xff\xfe",
		`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":1}`,
		`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":"2"}`,
		`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":18446744073709551615}`,
		`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":-1}`,
		`{"id":"1","source":"/s","specversion":"0.3","type":"t"}`,
		`{"id":"1","id":"2","source":"/s","specversion":"1.0","type":"t"}`,
		`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":1,"data":{"a":[1,2,{"b":null}]}}`,
		`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":1} trailing`,
		`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":1,"Ext":"x"}`,
	} {
		f.Add([]byte(seed), 1)
	}
	f.Fuzz(func(t *testing.T, data []byte, attempt int) {
		g, err := ordering.New(ordering.Config{Gap: ordering.GapHold})
		if err != nil {
			t.Fatal(err)
		}
		c, err := consumer.New(consumer.Config{
			Guard:         g,
			Store:         memStore(t),
			MaxEventBytes: 4096,
			Handler: func(_ context.Context, e *contract.Event) error {
				if e.Subject == "" || e.Sequence == 0 || e.Validate() != nil {
					t.Fatalf("handler got an invalid event %+v", e)
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: attempt, Settle: func(consumer.Result) {}})
		switch r.Action {
		case consumer.Ack, consumer.Hold:
			if r.Event == nil {
				t.Fatalf("%v without an event", r.Action)
			}
		case consumer.Retry:
			t.Fatalf("retry for a single delivery: %+v", r)
		case consumer.DeadLetter:
			if r.Err == nil || contract.Retryable(r.Err) && r.Event == nil {
				t.Fatalf("dead-letter without a permanent error: %+v", r)
			}
		default:
			t.Fatalf("unknown action %+v", r)
		}
	})
}
