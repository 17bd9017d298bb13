package ordering_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// FuzzGuard drives a Guard with an arbitrary stream of (subject, sequence,
// fail?) deliveries and clock steps, and checks the invariants: each
// subject's applied sequences are strictly consecutive (or skip forward only
// through a logged timeout), nothing is applied twice, the state never goes
// backwards, and the hold buffer stays within MaxHeld.
func FuzzGuard(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5})
	f.Add([]byte{5, 4, 3, 2, 1, 0})
	f.Add([]byte{3, 3, 3, 0x81, 1, 2, 0xff, 0xfe, 4})
	f.Add([]byte{0x40, 0x41, 0x42, 0x02, 0x01})
	f.Fuzz(func(t *testing.T, ops []byte) {
		clk := newFakeClock()
		const maxHeld = 8
		g, err := ordering.New(ordering.Config{Gap: ordering.GapHold, MaxHeld: maxHeld, HoldTimeout: 10 * time.Second, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		lastApplied := map[string]uint64{}
		failNext := false
		apply := func(_ context.Context, e *contract.Event) error {
			if failNext {
				failNext = false
				return contract.New(contract.KindUnavailable, "fuzz", "injected")
			}
			if e.Sequence <= lastApplied[e.Subject] {
				t.Fatalf("subject %s: applied %d after %d", e.Subject, e.Sequence, lastApplied[e.Subject])
			}
			lastApplied[e.Subject] = e.Sequence
			return nil
		}
		settle := func(context.Context, *contract.Event, ordering.Outcome, error) {}
		for _, op := range ops {
			switch {
			case op == 0xff:
				clk.Advance(11 * time.Second)
				g.Sweep(ctx)
				continue
			case op == 0xfe:
				failNext = true
				continue
			}
			subject := fmt.Sprint("s", op>>6) // 4 subjects
			seq := uint64(op&0x3f) % 16       // 0..15; 0 is invalid
			e := &contract.Event{ID: fmt.Sprint(op), Source: "/f", Subject: subject, Sequence: seq}
			before, _ := g.State().Last(ctx, subject)
			o, err := g.Process(ctx, e, apply, settle)
			after, _ := g.State().Last(ctx, subject)
			if after < before {
				t.Fatalf("state went backwards: %d -> %d", before, after)
			}
			if seq == 0 && err == nil {
				t.Fatal("sequence 0 accepted")
			}
			if o.Decision == ordering.Apply && err == nil && after < seq {
				t.Fatalf("applied %d but last is %d", seq, after)
			}
			if g.Held() > maxHeld {
				t.Fatalf("hold buffer %d > MaxHeld %d", g.Held(), maxHeld)
			}
		}
	})
}
