package ordering_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// A Guard applies each subject's events once, in sequence order: a
// duplicate and a stale event are dropped, a gap is rejected for redelivery.
func ExampleGuard() {
	g, err := ordering.New(ordering.Config{}) // in-memory state, gaps rejected
	if err != nil {
		panic(err)
	}
	balance := 0
	apply := func(_ context.Context, e *contract.Event) error {
		balance += int(e.Sequence) * 10
		return nil
	}
	for _, seq := range []uint64{1, 2, 2, 1, 4, 3, 4} {
		e := &contract.Event{ID: fmt.Sprint(seq), Source: "ledger", Subject: "acct_1", Sequence: seq}
		o, err := g.Process(context.Background(), e, apply, nil)
		switch {
		case errors.Is(err, ordering.ErrGap):
			fmt.Printf("seq %d: gap, redeliver later\n", seq)
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("seq %d: %s\n", seq, o.Decision)
		}
	}
	fmt.Println("balance", balance)
	// Output:
	// seq 1: apply
	// seq 2: apply
	// seq 2: duplicate
	// seq 1: stale
	// seq 4: gap, redeliver later
	// seq 3: apply
	// seq 4: apply
	// balance 100
}
