package pgstore

import (
	"context"
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
