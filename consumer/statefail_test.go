package consumer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// failingState is an ordering.State that fails every call before deciding
// anything, as ordering/pgstate does with its table missing or a subject
// too long for its index.
type failingState struct{ err error }

func (s failingState) Last(context.Context, string) (uint64, error) { return 0, s.err }

func (s failingState) Advance(context.Context, string, func(context.Context, uint64) (uint64, error)) error {
	return s.err
}

// TestOrderingStateFailureIsNotAHandlerFailure: when the Guard's State
// fails before the Handler runs, the event is retried whatever the error's
// class (see TestStoreAndStateFailuresRetriedWhateverTheirClass), under a
// reason that names the State, not the Handler, and its dedup claim is
// released.
func TestOrderingStateFailureIsNotAHandlerFailure(t *testing.T) {
	permanent := &contract.Error{Kind: contract.KindInternal, Code: "ordering.state_internal", Op: "pgstate.advance",
		Cause: errors.New(`relation "sadpath_ordering" does not exist`)}
	transient := &contract.Error{Kind: contract.KindUnavailable, Code: "ordering.state_unavailable", Op: "pgstate.advance"}
	for _, tc := range []struct {
		name   string
		err    error
		action consumer.Action
		reason string
	}{
		{"permanent", permanent, consumer.Retry, "ordering state failed"},
		{"transient", transient, consumer.Retry, "ordering state failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q dlq
			ran := 0
			store := memStore(t)
			c := mustConsumer(t, consumer.Config{
				Guard:      mustGuard(t, ordering.Config{State: failingState{err: tc.err}}),
				Store:      store,
				DeadLetter: q.add,
				Handler:    func(context.Context, *contract.Event) error { ran++; return nil },
			})
			r := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("acct-a", 1, `{}`)), Attempt: 1})
			if r.Action != tc.action || r.Reason != tc.reason || !errors.Is(r.Err, tc.err) || r.Decision != 0 {
				t.Fatalf("%+v; want %v with reason %q and the state's error", r, tc.action, tc.reason)
			}
			// The dedup claim was released: the redelivery meets the State
			// again, not its own claim in progress.
			if r2 := c.Handle(context.Background(), consumer.Delivery{Data: encode(t, event("acct-a", 1, `{}`)), Attempt: 2}); r2.Reason != tc.reason {
				t.Fatalf("redelivery: %+v; want reason %q again", r2, tc.reason)
			}
			if ran != 0 {
				t.Fatalf("handler ran %d times", ran)
			}
			if want := map[bool]int{true: 2, false: 0}[tc.action == consumer.DeadLetter]; q.len() != want || (want > 0 && !errors.Is(q.errs[0], tc.err)) {
				t.Fatalf("dead letters %v, want %d with the state's error", q.errs, want)
			}
		})
	}
}
