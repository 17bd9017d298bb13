package ordering_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// With GapHold, an event ahead of the next expected one waits in a bounded
// buffer and is applied as soon as the missing events arrive; the
// SettleFunc tells the caller (typically to acknowledge the broker message).
func ExampleGuard_hold() {
	g, err := ordering.New(ordering.Config{Gap: ordering.GapHold, HoldTimeout: 30 * time.Second})
	if err != nil {
		panic(err)
	}
	apply := func(_ context.Context, e *contract.Event) error {
		fmt.Println("applied", e.Sequence)
		return nil
	}
	settle := func(_ context.Context, e *contract.Event, o ordering.Outcome, err error) {
		fmt.Println("settled", e.Sequence, o.Decision, err)
	}
	for _, seq := range []uint64{3, 2, 1} {
		e := &contract.Event{ID: fmt.Sprint(seq), Source: "ledger", Subject: "acct_1", Sequence: seq}
		o, _ := g.Process(context.Background(), e, apply, settle)
		fmt.Println("seq", seq, o.Decision, "held:", o.Held)
	}
	// Output:
	// seq 3 gap held: true
	// seq 2 gap held: true
	// applied 1
	// applied 2
	// settled 2 apply <nil>
	// applied 3
	// settled 3 apply <nil>
	// seq 1 apply held: false
}
