package main

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// skewClock is the system clock moved forward by Advance: a lease that
// runs out without the test waiting for it.
type skewClock struct {
	mu   sync.Mutex
	skew time.Duration
}

func (c *skewClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

func (c *skewClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.skew += d
}

func (c *skewClock) AfterFunc(d time.Duration, f func()) idempotency.Timer {
	return time.AfterFunc(d, f)
}

// failFirstComplete is a store whose first Complete fails, as a Redis or
// PostgreSQL blip would: the record stays claimed until its lease runs out.
type failFirstComplete struct {
	idempotency.Store
	failed atomic.Bool
}

func (s *failFirstComplete) Complete(ctx context.Context, key idempotency.Key, token uint64, res idempotency.Result) error {
	if s.failed.CompareAndSwap(false, true) {
		return contract.New(contract.KindUnavailable, "test.complete", "store unreachable")
	}
	return s.Store.Complete(ctx, key, token, res)
}

// A request that ran while its record could not be completed runs again
// once its lease has run out (the client's answer was lost, it retries with
// the same key). The gateway key is the same, so the gateway replays its
// charge, not a new one; the service must not record that one charge as a
// second payment.
func TestPaymentsRerunRecordsOneChargeOnce(t *testing.T) {
	clock := &skewClock{}
	mem, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, &failFirstComplete{Store: mem}, &FakeGateway{})

	first := f.do(t, "POST", "/payments", goodBody, auth("rerun-1"))
	if first.status != 201 {
		t.Fatalf("first: %d %s, want 201", first.status, first.body)
	}
	clock.Advance(time.Hour) // past the 30 s lease: the claim is abandoned
	again := f.do(t, "POST", "/payments", goodBody, auth("rerun-1"))
	if again.status != 201 {
		t.Fatalf("retry: %d %s, want 201", again.status, again.body)
	}
	if again.header.Get("Idempotent-Replayed") == "true" {
		t.Fatal("the retry was replayed: the store failure was not simulated")
	}
	if got := f.gw.Charges(); got != 1 {
		t.Fatalf("gateway charged %d times, want 1", got)
	}
	var p1, p2 Payment
	if err := errors.Join(json.Unmarshal(first.body, &p1), json.Unmarshal(again.body, &p2)); err != nil {
		t.Fatal(err)
	}
	if p1.ID != p2.ID || p1.ChargeID != p2.ChargeID {
		t.Errorf("one charge answered as two payments: %s (charge %s) then %s (charge %s)", p1.ID, p1.ChargeID, p2.ID, p2.ChargeID)
	}
	list := f.do(t, "GET", "/payments", "", map[string]string{"X-Api-Key": key1})
	var l struct{ Payments []Payment }
	if err := json.Unmarshal(list.body, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Payments) != 1 {
		t.Fatalf("merchant sees %d payments for one charge: %+v", len(l.Payments), l.Payments)
	}
}
