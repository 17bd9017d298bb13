package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// busyOnce answers InProgress once for one event's id, with the lease a
// crashed instance left on it: a redelivery must wait out that lease.
type busyOnce struct {
	idempotency.Store
	key   string
	lease time.Duration
	done  bool
}

func (s *busyOnce) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	if !s.done && req.Key.Key == s.key {
		s.done = true
		return idempotency.Claim{Status: idempotency.InProgress, LeaseRemaining: s.lease}, nil
	}
	return s.Store.Claim(ctx, req)
}

// TestMissingEventRetriedLaterThanHoldTimeoutIsNotSkipped: with the default
// configuration (HoldTimeout 30s, MaxBackoff 1m, Lease 1m), the missing
// event of a held gap can be retried after more than HoldTimeout: its
// sixth transient failure backs off 32s, a crashed instance's claim keeps
// it "in progress elsewhere" for up to a minute, and a held event that
// fails when released backs off by its own attempt. The held events must
// wait for that redelivery: a Sweep in between skipped the event, and its
// redelivery was acknowledged as stale, never applied. A broker is
// simulated in virtual time: Retry redelivers after Result.Delay, Sweep
// runs every second.
func TestMissingEventRetriedLaterThanHoldTimeoutIsNotSkipped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fails   map[uint64]int // transient handler failures per sequence
		attempt map[uint64]int // attempt of the first delivery, 1 when absent
		order   []uint64       // first deliveries
		busy    time.Duration  // lease left on sequence 1 by a crashed instance
	}{
		{name: "handler backoff", fails: map[uint64]int{1: 6}, order: []uint64{2, 1}},
		{name: "in progress elsewhere", busy: 55 * time.Second, order: []uint64{2, 1}},
		{name: "held event fails when released", fails: map[uint64]int{2: 1}, attempt: map[uint64]int{2: 7}, order: []uint64{2, 3, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := &stepClock{now: time.Unix(1_700_000_000, 0)}
			var store idempotency.Store = memStore(t)
			if tc.busy > 0 {
				e := event("a", 1, `{}`)
				store = &busyOnce{Store: store, key: e.DedupKey(), lease: tc.busy}
			}
			applied := map[uint64]int{}
			var order []uint64
			failures := map[uint64]int{}
			c := mustConsumer(t, consumer.Config{
				Guard: mustGuard(t, ordering.Config{Gap: ordering.GapHold, Clock: clk}),
				Store: store,
				Handler: func(_ context.Context, e *contract.Event) error {
					if failures[e.Sequence] < tc.fails[e.Sequence] {
						failures[e.Sequence]++
						return contract.New(contract.KindUnavailable, "ledger", "down")
					}
					applied[e.Sequence]++
					order = append(order, e.Sequence)
					return nil
				},
			})
			type delivery struct {
				due     time.Time
				seq     uint64
				attempt int
			}
			var queue []delivery
			var deliver func(d delivery)
			result := func(d delivery, r consumer.Result) {
				switch r.Action {
				case consumer.Retry:
					queue = append(queue, delivery{due: clk.now.Add(r.Delay), seq: d.seq, attempt: d.attempt + 1})
				case consumer.DeadLetter:
					t.Fatalf("sequence %d dead-lettered: %+v", d.seq, r)
				}
			}
			deliver = func(d delivery) {
				dd := consumer.Delivery{Data: encode(t, event("a", d.seq, `{}`)), Attempt: d.attempt,
					Settle: func(r consumer.Result) { result(d, r) }}
				if r := c.Handle(ctx, dd); r.Action != consumer.Hold {
					result(d, r)
				}
			}
			for _, s := range tc.order {
				a := tc.attempt[s]
				if a == 0 {
					a = 1
				}
				deliver(delivery{seq: s, attempt: a})
			}
			for i := 0; i < 600; i++ { // ten minutes, one second at a time
				clk.now = clk.now.Add(time.Second)
				c.Sweep(ctx)
				var later []delivery
				due := queue
				queue = nil
				for _, d := range due {
					if d.due.After(clk.now) {
						later = append(later, d)
						continue
					}
					deliver(d)
				}
				queue = append(later, queue...)
			}
			want := make([]uint64, len(tc.order))
			for i := range want {
				want[i] = uint64(i + 1)
			}
			if fmt.Sprint(order) != fmt.Sprint(want) {
				t.Fatalf("applied %v (counts %v), want %v each once: an event retried later than HoldTimeout was skipped and its redelivery dropped as stale", order, applied, want)
			}
		})
	}
}
