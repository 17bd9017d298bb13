package ordering_test

import (
	"context"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// TestRetryingRestartsWaitAtRedelivery: the missing event fails and its
// caller will redeliver it after more than HoldTimeout. Told so with
// Retrying, the Guard makes the held events wait a full HoldTimeout from
// the redelivery — events held meanwhile too — so no Sweep skips the event
// first; without a redelivery, the skip comes exactly HoldTimeout after it.
func TestRetryingRestartsWaitAtRedelivery(t *testing.T) {
	for _, redeliver := range []bool{true, false} {
		ctx := context.Background()
		clk := newFakeClock()
		boom := contract.New(contract.KindUnavailable, "db", "down")
		r := recorder{fail: map[string]error{"s/2": boom}}
		var s settled
		g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, HoldTimeout: 10 * time.Second, Clock: clk})
		mustProcess(t, g, ev("s", 1), r.apply, s.settle)
		mustProcess(t, g, ev("s", 3), r.apply, s.settle)
		if _, err := g.Process(ctx, ev("s", 2), r.apply, s.settle); err != boom {
			t.Fatalf("failing 2: %v", err)
		}
		g.Retrying(ctx, ev("s", 2), time.Minute)
		g.Retrying(ctx, ev("s", 2), time.Second) // an earlier restart does not shorten the wait
		g.Retrying(ctx, ev("s", 3), time.Hour)   // held, not missing: nothing
		g.Retrying(ctx, ev("s", 1), time.Hour)   // applied: nothing
		g.Retrying(ctx, nil, time.Hour)
		clk.Advance(30 * time.Second)
		mustProcess(t, g, ev("s", 5), r.apply, s.settle) // held meanwhile: waits for 2 as well
		clk.Advance(30*time.Second + 10*time.Second - time.Millisecond)
		if n := g.Sweep(ctx); n != 0 || g.Held() != 2 {
			t.Fatalf("sweep before the redelivery's HoldTimeout settled %d (held %d): 2 would be skipped", n, g.Held())
		}
		clk.Advance(time.Millisecond)
		if redeliver {
			mustProcess(t, g, ev("s", 2), r.apply, s.settle)
			if got := r.got(); got != "s/1 s/2 s/3" {
				t.Fatalf("applied %q, want 1 2 3", got)
			}
			continue
		}
		if n := g.Sweep(ctx); n != 1 || r.got() != "s/1 s/3 s/5" {
			t.Fatalf("sweep a HoldTimeout after the announced redelivery: settled %d, applied %q; want 2 and 4 skipped", n, r.got())
		}
	}
}
