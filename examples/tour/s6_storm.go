package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

func retryStorm(ctx context.Context, e *env, r *report) error {
	const calls = 1000
	const attempts = 4
	// The dependency fails every call for the whole run.
	var hits atomic.Int64
	down := func(context.Context) error {
		hits.Add(1)
		return contract.New(contract.KindUnavailable, "ledger.post", "ledger unavailable")
	}
	play := func(budget retry.Budget, log bool) (int64, int, error) {
		hits.Store(0)
		clock := retrytest.NewClock() // waits advance virtual time: no real sleeping
		cfg := retry.Config{Name: "ledger", MaxAttempts: attempts, Budget: budget, Clock: clock}
		if log {
			cfg.Logger = e.logger
		}
		p, err := retry.New(cfg)
		if err != nil {
			return 0, 0, err
		}
		exhausted := 0
		for range calls {
			// No deadline: virtual waits would otherwise run past the tour's real one.
			err := retry.DoVoid(context.WithoutCancel(ctx), p, down)
			if errors.Is(err, retry.StopBudget) {
				exhausted++
			}
		}
		return hits.Load(), exhausted, nil
	}

	noBudget, _, err := play(nil, false)
	if err != nil {
		return err
	}
	bucket, err := retry.NewTokenBucket(retry.TokenBucketConfig{})
	if err != nil {
		return err
	}
	withBucket, bucketStops, err := play(bucket, true)
	if err != nil {
		return err
	}
	ratio, err := retry.NewRatioBudget(retry.RatioBudgetConfig{Ratio: 0.1, Clock: retrytest.NewClock()})
	if err != nil {
		return err
	}
	withRatio, ratioStops, err := play(ratio, false)
	if err != nil {
		return err
	}

	r.did("the ledger fails 100%% of calls; %d callers each call it once with up to %d attempts (full jitter)", calls, attempts)
	r.decided("without a budget every call retries: the failing ledger takes %.1f× its normal traffic", float64(noBudget)/calls)
	r.decided("with the gRPC-style token bucket (10 tokens, ratio 0.1) retries stop once half the tokens are spent: %d calls gave up with \"retry budget exhausted\"", bucketStops)
	r.decided("with the SRE-style ratio budget (10%% of calls, minimum 10) %d calls gave up early", ratioStops)
	r.figure("calls", "%d", calls)
	r.figure("ledger hits, no budget", "%d (%.2f× calls)", noBudget, float64(noBudget)/calls)
	r.figure("ledger hits, token bucket", "%d (%.3f× calls)", withBucket, float64(withBucket)/calls)
	r.figure("ledger hits, ratio budget", "%d (%.3f× calls)", withRatio, float64(withRatio)/calls)
	r.expect(noBudget == calls*attempts, "without a budget the storm is %d× (%d hits)", attempts, noBudget)
	// ≤ 1.1× in integers: 10 × hits ≤ 11 × calls. (The ratio budget's
	// minimum of 10 retries is below 10% of 1000 calls: no extra allowance.)
	r.expect(10*withBucket <= 11*calls, "the token bucket keeps hits ≤ 1.1× calls (%d ≤ %d)", withBucket, 11*calls/10)
	r.expect(10*withRatio <= 11*calls, "the ratio budget keeps hits ≤ 1.1× calls (%d ≤ %d)", withRatio, 11*calls/10)
	return nil
}
