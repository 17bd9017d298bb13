package idempotency_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// lossyStore fails a share of the calls to its store with a retryable
// unavailable error: some before the call reaches the store, some after it
// was applied (a reply lost on the way back). Lost Claim replies are not
// injected: such a claim holds its key until the lease runs out, which only
// slows the run down.
type lossyStore struct {
	idempotency.Store
	mu       sync.Mutex
	rng      *rand.Rand
	injected atomic.Int64
}

var errLossy = &contract.Error{Kind: contract.KindUnavailable, Code: "test.injected", Detail: "injected fault"}

// fault decides the fate of one call: 0 none, 1 fail before, 2 fail after.
func (f *lossyStore) fault(lostReply bool) int {
	f.mu.Lock()
	n := f.rng.IntN(100)
	f.mu.Unlock()
	switch {
	case n < 5:
		f.injected.Add(1)
		return 1
	case lostReply && n < 10:
		f.injected.Add(1)
		return 2
	}
	return 0
}

func (f *lossyStore) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	if f.fault(false) == 1 {
		return idempotency.Claim{}, errLossy
	}
	return f.Store.Claim(ctx, req)
}

func (f *lossyStore) Complete(ctx context.Context, key idempotency.Key, token uint64, r idempotency.Result) error {
	switch f.fault(true) {
	case 1:
		return errLossy
	case 2:
		if err := f.Store.Complete(ctx, key, token, r); err != nil {
			return err
		}
		return errLossy
	}
	return f.Store.Complete(ctx, key, token, r)
}

func (f *lossyStore) Get(ctx context.Context, key idempotency.Key) (idempotency.Record, error) {
	if f.fault(false) == 1 {
		return idempotency.Record{}, errLossy
	}
	return f.Store.Get(ctx, key)
}

// TestMemoryStoreExactlyOnceUnderFaults runs storetest.ExactlyOnce on two
// fault-injecting views of one MemoryStore: failed calls, and Completes
// applied with their reply lost, never run an effect twice or lose a
// result.
func TestMemoryStoreExactlyOnceUnderFaults(t *testing.T) {
	s := newMemory(t, idempotency.MemoryConfig{})
	a := &lossyStore{Store: s, rng: rand.New(rand.NewPCG(1, 2))}
	b := &lossyStore{Store: s, rng: rand.New(rand.NewPCG(3, 4))}
	r := storetest.ExactlyOnce(t, []idempotency.Store{a, b}, storetest.ExactlyOnceConfig{PerWorker: 200, Lease: time.Minute, EffectTime: time.Millisecond})
	injected := a.injected.Load() + b.injected.Load()
	if injected == 0 || r.StoreFailures < injected/2 {
		t.Fatalf("%d faults injected, %d store failures seen", injected, r.StoreFailures)
	}
	if r.Keys == 0 || r.Keys >= r.Requests || r.InProgress == 0 {
		t.Fatalf("no concurrent duplicates in the run: %+v", r)
	}
}
