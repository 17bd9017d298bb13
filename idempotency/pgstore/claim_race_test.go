package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// TestConcurrentClaimOneWinnerLongLease: 64 claimers on two store instances,
// on 20 keys in turn, with a lease no scheduling delay can outlast: exactly
// one wins each key, every other sees the winner's token in progress.
func TestConcurrentClaimOneWinnerLongLease(t *testing.T) {
	p1, _ := newPool(t, "pgstore-race", nil)
	p2, _ := newPool(t, "pgstore-race", nil)
	table := newTable()
	stores := []*Store{newStore(t, p1, table), nil}
	stores[1], _ = New(Config{Pool: p2, Schema: testSchema, Table: table})
	for round := range 20 {
		key := idempotency.Key{Scope: "race", Key: fmt.Sprint(round)}
		var wg sync.WaitGroup
		claims := make([]idempotency.Claim, 64)
		errs := make([]error, 64)
		start := make(chan struct{})
		for i := range 64 {
			wg.Go(func() {
				<-start
				claims[i], errs[i] = stores[i%2].Claim(context.Background(), idempotency.ClaimRequest{Key: key, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
			})
		}
		close(start)
		wg.Wait()
		winners, token := 0, uint64(0)
		for i := range claims {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if claims[i].Status == idempotency.Claimed {
				winners++
				token = claims[i].Token
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners", round, winners)
		}
		for i, c := range claims {
			if c.Status != idempotency.Claimed && (c.Status != idempotency.InProgress || c.Token != token) {
				t.Fatalf("round %d claimer %d: %+v, want in progress with token %d", round, i, c, token)
			}
		}
	}
}

// isolationLevels are the default_transaction_isolation values under which a
// statement fails with a serialization failure (40001) where READ COMMITTED
// would wait and read the latest row version.
var isolationLevels = []string{"repeatable read", "serializable"}

// TestConcurrentClaimUnderDefaultIsolation: on a database (or role, or
// connection) whose default isolation is REPEATABLE READ or SERIALIZABLE,
// concurrent claims of one key — fresh, or released so the UPDATE branch
// runs — still have exactly one winner and the others answer InProgress,
// instead of failing with the serialization failure their statement met.
func TestConcurrentClaimUnderDefaultIsolation(t *testing.T) {
	for _, iso := range isolationLevels {
		t.Run(iso, func(t *testing.T) {
			p, _ := newPool(t, "pgstore-isolation", map[string]string{"default_transaction_isolation": iso})
			s := newStore(t, p, newTable())
			ctx := context.Background()
			for round := range 20 {
				key := idempotency.Key{Scope: "iso", Key: fmt.Sprint(round)}
				req := idempotency.ClaimRequest{Key: key, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour}
				if round%2 == 1 {
					c, err := s.Claim(ctx, req)
					if err != nil {
						t.Fatal(err)
					}
					if err := s.Release(ctx, key, c.Token); err != nil {
						t.Fatal(err)
					}
				}
				var wg sync.WaitGroup
				claims := make([]idempotency.Claim, 8)
				errs := make([]error, 8)
				start := make(chan struct{})
				for i := range claims {
					wg.Go(func() {
						<-start
						claims[i], errs[i] = s.Claim(ctx, req)
					})
				}
				close(start)
				wg.Wait()
				winners := 0
				for i, c := range claims {
					if errs[i] != nil {
						t.Fatalf("round %d claimer %d: %v", round, i, errs[i])
					}
					if c.Status == idempotency.Claimed {
						winners++
					} else if c.Status != idempotency.InProgress {
						t.Fatalf("round %d claimer %d: %+v, want claimed or in progress", round, i, c)
					}
				}
				if winners != 1 {
					t.Fatalf("round %d: %d winners", round, winners)
				}
			}
		})
	}
}

// TestOwnerCallsUnderDefaultIsolation: under REPEATABLE READ or
// SERIALIZABLE as the default isolation, an owner's Renew calls (a
// heartbeat) racing with its own Complete or Release, and with each other,
// meet row versions committed after their snapshot. Each call still
// answers as under READ COMMITTED: Complete and Release succeed, and a
// Renew succeeds or, once the record left progress, finds the lease lost —
// never a serialization failure.
func TestOwnerCallsUnderDefaultIsolation(t *testing.T) {
	for _, iso := range isolationLevels {
		t.Run(iso, func(t *testing.T) {
			p, _ := newPool(t, "pgstore-isolation", map[string]string{"default_transaction_isolation": iso})
			s := newStore(t, p, newTable())
			ctx := context.Background()
			for round := range 20 {
				key := idempotency.Key{Scope: "iso-owner", Key: fmt.Sprint(round)}
				c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
				if err != nil || c.Status != idempotency.Claimed {
					t.Fatal(c, err)
				}
				var wg sync.WaitGroup
				renews := make([]error, 6)
				var final error
				start := make(chan struct{})
				for i := range renews {
					wg.Go(func() {
						<-start
						renews[i] = s.Renew(ctx, key, c.Token, time.Minute)
					})
				}
				wg.Go(func() {
					<-start
					if round%2 == 0 {
						final = s.Complete(ctx, key, c.Token, idempotency.Result{Body: []byte("done")})
					} else {
						final = s.Release(ctx, key, c.Token)
					}
				})
				close(start)
				wg.Wait()
				if final != nil {
					t.Fatalf("round %d: owner's Complete or Release: %v", round, final)
				}
				for i, err := range renews {
					if err != nil && !errors.Is(err, idempotency.ErrLeaseLost) {
						t.Fatalf("round %d renew %d: %v", round, i, err)
					}
				}
				want := idempotency.StateCompleted
				if round%2 == 1 {
					want = idempotency.StateReleased
				}
				if rec, err := s.Get(ctx, key); err != nil || rec.State != want || rec.Token != c.Token {
					t.Fatalf("round %d: %+v, %v; want state %d with token %d", round, rec, err, want, c.Token)
				}
			}
		})
	}
}
