package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/ordering"
)

// brokenStore is an idempotency.Store whose Claim fails with err while
// broken is set, and works (an in-memory store) once it is cleared: an
// operator fixed it.
type brokenStore struct {
	idempotency.Store
	err    error
	broken atomic.Bool
}

func (s *brokenStore) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	if s.broken.Load() {
		return idempotency.Claim{}, s.err
	}
	return s.Store.Claim(ctx, req)
}

// brokenState is an ordering.State failing every call before deciding with
// err while broken is set, and working once it is cleared.
type brokenState struct {
	ordering.State
	err    error
	broken atomic.Bool
}

func (s *brokenState) Last(ctx context.Context, subject string) (uint64, error) {
	if s.broken.Load() {
		return 0, s.err
	}
	return s.State.Last(ctx, subject)
}

func (s *brokenState) Advance(ctx context.Context, subject string, fn func(context.Context, uint64) (uint64, error)) error {
	if s.broken.Load() {
		return s.err
	}
	return s.State.Advance(ctx, subject, fn)
}

// TestStoreAndStateFailuresRetriedWhateverTheirClass: a dedup store or
// ordering State failing before the Handler ran fails every event alike —
// a missing table, a database down — and a redelivery after the fix
// succeeds. Both are retried with backoff whatever the failure's class
// until MaxAttempts, and dead-lettered only then. A permanent State
// failure used to dead-letter the event at its first attempt (a valid
// event lost for an operator error), while the store's was retried.
func TestStoreAndStateFailuresRetriedWhateverTheirClass(t *testing.T) {
	missing := errors.New(`ERROR: relation "sadpath_missing" does not exist (SQLSTATE 42P01)`)
	classes := map[string]error{
		"permanent": &contract.Error{Kind: contract.KindInternal, Code: "store_internal", Op: "pg", Cause: missing},
		"transient": &contract.Error{Kind: contract.KindUnavailable, Code: "store_unavailable", Op: "pg"},
	}
	for _, part := range []string{"store", "state"} {
		for class, fail := range classes {
			for _, fixed := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/%s/fixed=%v", part, class, fixed), func(t *testing.T) {
					mem, err := ordering.NewMemory(ordering.MemoryConfig{})
					if err != nil {
						t.Fatal(err)
					}
					store := &brokenStore{Store: memStore(t), err: fail}
					state := &brokenState{State: mem, err: fail}
					broken, reason := &store.broken, "dedup store failed"
					if part == "state" {
						broken, reason = &state.broken, "ordering state failed"
					}
					var q dlq
					var mu sync.Mutex
					ran := map[uint64]int{}
					var settled []consumer.Result
					c := mustConsumer(t, consumer.Config{
						Guard:       mustGuard(t, ordering.Config{State: state, Gap: ordering.GapHold, HoldTimeout: time.Hour}),
						Store:       store,
						MaxAttempts: 3,
						MinBackoff:  time.Second,
						MaxBackoff:  time.Minute,
						DeadLetter:  q.add,
						Handler: func(_ context.Context, e *contract.Event) error {
							mu.Lock()
							defer mu.Unlock()
							ran[e.Sequence]++
							return nil
						},
					})
					ctx := context.Background()
					settle := func(r consumer.Result) {
						mu.Lock()
						defer mu.Unlock()
						settled = append(settled, r)
					}
					// Sequence 2 arrives first and is held for sequence 1.
					if r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("acct", 2, `{}`)), Attempt: 1, Settle: settle}); r.Action != consumer.Hold {
						t.Fatalf("gap: %+v, want hold", r)
					}
					// Then the store or State breaks before sequence 1 arrives.
					broken.Store(true)
					one := encode(t, event("acct", 1, `{}`))
					for attempt, delay := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second} {
						r := c.Handle(ctx, consumer.Delivery{Data: one, Attempt: attempt, Settle: settle})
						if r.Action != consumer.Retry || r.Delay != delay || r.Reason != reason || !errors.Is(r.Err, fail) {
							t.Fatalf("attempt %d: %+v; want a retry after %v, reason %q, the failure's error", attempt, r, delay, reason)
						}
					}
					mu.Lock()
					if len(ran) != 0 || len(settled) != 0 || q.len() != 0 {
						t.Fatalf("while broken: handler runs %v, settled %v, %d dead letters; want none", ran, settled, q.len())
					}
					mu.Unlock()
					broken.Store(!fixed)
					r := c.Handle(ctx, consumer.Delivery{Data: one, Attempt: 3, Settle: settle})
					mu.Lock()
					defer mu.Unlock()
					if !fixed {
						// MaxAttempts still bounds the retries: the event
						// goes to the dead letters, with the failure.
						want := fmt.Sprintf("%s; gave up after 3 attempts", reason)
						if r.Action != consumer.DeadLetter || r.Reason != want || !errors.Is(r.Err, fail) || q.len() != 1 || len(ran) != 0 || len(settled) != 0 {
							t.Fatalf("last attempt, still broken: %+v (dead letters %d, runs %v, settled %v); want dead-lettered %q", r, q.len(), ran, settled, want)
						}
						return
					}
					// Fixed: the redelivery is applied, and so is the held event.
					if r.Action != consumer.Ack || ran[1] != 1 || ran[2] != 1 || q.len() != 0 {
						t.Fatalf("redelivery after the fix: %+v (runs %v, dead letters %d); want both applied once", r, ran, q.len())
					}
					if len(settled) != 1 || settled[0].Action != consumer.Ack || settled[0].Event.Sequence != 2 {
						t.Fatalf("settled %+v; want the held event acknowledged once", settled)
					}
				})
			}
		}
	}
}
