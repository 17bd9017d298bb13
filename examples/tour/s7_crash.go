package main

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
)

func crashBetweenClaimAndCompletion(ctx context.Context, e *env, r *report) error {
	clock := newManualClock(time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
	store, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clock})
	if err != nil {
		return err
	}
	const lease = 30 * time.Second
	exec, err := idempotency.New(idempotency.Config{Store: store, Lease: lease, Heartbeat: -1, Clock: clock, Logger: e.logger})
	if err != nil {
		return err
	}
	key := idempotency.Key{Scope: "merchant-42", Key: "refund-7781"}
	fp := idempotency.Fingerprint([]byte("POST /refunds"), []byte(`{"payment":"pay_0001","amount_minor":500}`))
	ctx = logctx.WithEntity(logctx.WithOperation(ctx, "refunds.create"), "refund", "refund-7781")

	// Worker A claims the key and "crashes": it never completes nor releases.
	crashed, err := store.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: fp, Lease: lease, Retention: 24 * time.Hour})
	if err != nil {
		return err
	}
	r.did("worker A claimed the refund (fencing token %d) and crashed before completing it", crashed.Token)

	var effects atomic.Int64
	refund := func(context.Context) (string, error) {
		effects.Add(1)
		return "refund issued", nil
	}
	// A retry while A's lease runs: refused, with a retry-after.
	_, errEarly := idempotency.Do(ctx, exec, key, fp, refund)
	ra, _ := contract.RetryAfter(errEarly)
	r.decided("a retry 0s after the crash: %v", errEarly)
	r.expect(errors.Is(errEarly, idempotency.ErrInProgress) && ra > 0 && ra <= lease,
		"while the crashed owner's lease runs, a retry is refused as in progress with a retry-after ≤ the lease (%s)", ra)

	// The lease expires: the retry goes through, exactly once.
	clock.Advance(lease + time.Second)
	out, err := idempotency.Do(ctx, exec, key, fp, refund)
	r.decided("after the lease expired (%s later) the retry ran: %q", lease+time.Second, out)
	r.expect(err == nil && out == "refund issued", "the retry after lease expiry succeeds (err %v)", err)

	// More retries replay, and the zombie's late completion is fenced off.
	for range 3 {
		if _, err := idempotency.Do(ctx, exec, key, fp, refund); err != nil {
			r.fail("a replay failed: %v", err)
		}
	}
	zombie := store.Complete(ctx, key, crashed.Token, idempotency.Result{Body: []byte(`"stale"`)})
	rec, _ := store.Get(ctx, key)
	r.decided("worker A came back and tried to complete with token %d: %v", crashed.Token, zombie)
	r.figure("refund effects", "%d", effects.Load())
	r.figure("fencing tokens", "crashed owner %d, current owner %d", crashed.Token, rec.Token)
	r.expect(effects.Load() == 1, "the refund ran exactly once across crash, retry and 3 replays (ran %d times)", effects.Load())
	r.expect(errors.Is(zombie, idempotency.ErrLeaseLost), "the crashed owner's late completion is rejected by its fencing token")
	r.expect(rec.Token > crashed.Token, "fencing tokens increase: %d > %d", rec.Token, crashed.Token)
	return nil
}
