package idempotency_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// sizeFirstStore checks the result's size before the owner's token, as
// pgstore and redisstore do (len(enc) > maxBytes is tested before the
// conditional UPDATE / script).
type sizeFirstStore struct{ idempotency.Store }

func (s sizeFirstStore) Complete(ctx context.Context, k idempotency.Key, token uint64, r idempotency.Result) error {
	if len(r.Body) > 1000 {
		return contract.New(contract.KindTooLarge, "test.complete", "result over the limit")
	}
	return s.Store.Complete(ctx, k, token, r)
}

// The owner's lease expires while fn runs and another caller claims the
// key. A small result: Do reports ErrLeaseLost. A result the store refuses
// as too large (checked before the token, like pgstore/redisstore): the
// marker Complete fails with ErrLeaseLost too, but Do reports success and
// counts a store error.
// A lease lost while fn ran is reported as ErrLeaseLost whatever the size
// of the result, also with a store that refuses a too-large result before
// it checks the owner (as the Redis and PostgreSQL stores do).
func TestDoTooLargeAfterLeaseLostIsLeaseLost(t *testing.T) {
	for _, size := range []int{10, 5000} {
		clk := storetest.NewFakeClock(epoch)
		mem := newMemory(t, idempotency.MemoryConfig{Clock: clk})
		ex, err := idempotency.New(idempotency.Config{Store: sizeFirstStore{mem}, Clock: clk, Lease: time.Second, Heartbeat: -1})
		if err != nil {
			t.Fatal(err)
		}
		key := idempotency.Key{Scope: "s", Key: strings.Repeat("k", size%7+1)}
		_, err = idempotency.Do(context.Background(), ex, key, "fp", func(ctx context.Context) (string, error) {
			clk.Advance(2 * time.Second) // lease expired
			if c, err := mem.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour}); err != nil || c.Status != idempotency.Claimed {
				t.Fatalf("other caller's claim: %+v %v", c, err)
			}
			return strings.Repeat("x", size), nil
		})
		if !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Errorf("result of %d bytes, lease lost before Complete: Do error %v, want ErrLeaseLost", size, err)
		}
	}
}
