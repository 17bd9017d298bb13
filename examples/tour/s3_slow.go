package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit"
	"github.com/sadpath/sadpath/logctx"
)

// The timeline is compressed 1:20: "thirty seconds" of slowness last 1.5 s.
const (
	slowFrom    = 500 * time.Millisecond
	slowUntil   = 2000 * time.Millisecond
	runFor      = 3200 * time.Millisecond
	bucket      = 200 * time.Millisecond
	callTimeout = 100 * time.Millisecond
	healthyLat  = 2 * time.Millisecond
	slowLat     = 400 * time.Millisecond
	callers     = 24
	bulkheadMax = 8
	openTimeout = 250 * time.Millisecond

	// closeBound is how soon after the ledger recovers the breaker must be
	// closed: a probe sent just before recovery still fails (after
	// callTimeout) and reopens the breaker for openTimeout; then the next
	// call finds it half-open and 3 probes must succeed. probeSlack is that
	// last part: callers call every 10 ms and the ledger answers in 2 ms,
	// plus timer and scheduling delays on a loaded machine.
	probeSlack = 50 * time.Millisecond
	closeBound = openTimeout + callTimeout + probeSlack
)

// slowDep is a dependency that turns slow between slowFrom and slowUntil.
type slowDep struct {
	start       time.Time
	inflight    atomic.Int64
	maxInflight atomic.Int64
	calls       atomic.Int64
}

func (d *slowDep) call(ctx context.Context) error {
	n := d.inflight.Add(1)
	defer d.inflight.Add(-1)
	for {
		m := d.maxInflight.Load()
		if n <= m || d.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	d.calls.Add(1)
	lat := healthyLat
	if at := time.Since(d.start); at >= slowFrom && at < slowUntil {
		lat = slowLat
	}
	t := time.NewTimer(lat)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return contract.Wrap(contract.KindTimeout, "ledger.query", ctx.Err())
	}
}

type sample struct {
	at, latency time.Duration
	outcome     string // ok, failed, rejected (breaker), shed (bulkhead)
}

// load runs the callers against call until runFor has passed.
func load(ctx context.Context, start time.Time, call func(context.Context) error) []sample {
	var mu sync.Mutex
	var out []sample
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < runFor && ctx.Err() == nil {
				at := time.Since(start)
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				t0 := time.Now()
				err := call(cctx)
				lat := time.Since(t0)
				cancel()
				o := "ok"
				if err != nil {
					o = "failed"
					switch contract.As(err).Code {
					case breaker.CodeOpen, breaker.CodeTooManyProbes:
						o = "rejected" // by the breaker: fail fast
					case limit.CodeBulkheadFull, limit.CodeBulkheadWaitTimeout:
						o = "shed" // by the bulkhead, after at most its queue wait
					}
				}
				mu.Lock()
				out = append(out, sample{at, lat, o})
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return out
}

func slowDependency(ctx context.Context, e *env, r *report) error {
	start := time.Now()
	bare := &slowDep{start: start}
	protectedDep := &slowDep{start: start}

	var tmu sync.Mutex
	type change struct {
		at       time.Duration
		from, to breaker.State
		reason   string
	}
	var changes []change
	br, err := breaker.New(breaker.Config{
		Name: "ledger", Window: 400 * time.Millisecond, Buckets: 10, MinCalls: 10, FailureRatio: 0.5,
		SlowCallThreshold: 50 * time.Millisecond, OpenTimeout: openTimeout, MaxOpenTimeout: openTimeout, HalfOpenProbes: 3,
		Logger: e.logger, DisableMetrics: true,
		OnStateChange: func(_ context.Context, t breaker.Transition) {
			tmu.Lock()
			changes = append(changes, change{time.Since(start), t.From, t.To, t.Reason})
			tmu.Unlock()
		},
	})
	if err != nil {
		return err
	}
	// The bulkhead stands outside the breaker, so its own rejections never
	// count as the ledger's failures; a short queue absorbs bursts.
	bh, err := limit.NewBulkhead(limit.BulkheadConfig{Name: "ledger", MaxConcurrent: bulkheadMax, MaxWaiting: callers, MaxWait: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	protected := func(ctx context.Context) error {
		_, err := limit.Do(ctx, bh, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, br.Execute(ctx, protectedDep.call)
		})
		return err
	}
	ctx = logctx.WithOperation(ctx, "ledger.query")

	var bareSamples, protSamples []sample
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); bareSamples = load(ctx, start, bare.call) }()
	go func() { defer wg.Done(); protSamples = load(ctx, start, protected) }()
	wg.Wait()

	r.did("%d callers call the ledger every 10 ms for %s, each call with a %s timeout", callers, runFor, callTimeout)
	r.did("the ledger answers in %s, but in %s–%s (\"thirty seconds\", compressed 1:20) it takes %s", healthyLat, slowFrom, slowUntil, slowLat)
	r.did("run A calls it bare; run B through a breaker (failure rate ≥ 50%% over ≥ 10 calls in a 400 ms window, slow call > 50 ms, open %s) inside a bulkhead of %d (queue ≤ 20 ms)", openTimeout, bulkheadMax)

	// Timeline of run B, with run A's p99 beside it.
	r.Timeline = append(r.Timeline, fmt.Sprintf("%-11s %-8s | %7s %5s %6s %8s %5s %9s | %9s", "t", "ledger", "B:calls", "ok", "failed", "rejected", "shed", "B:p99", "A:p99"))
	for from := time.Duration(0); from < runFor; from += bucket {
		to := from + bucket
		var lb, la []time.Duration
		cnt := map[string]int{}
		for _, s := range protSamples {
			if s.at >= from && s.at < to {
				cnt[s.outcome]++
				lb = append(lb, s.latency)
			}
		}
		for _, s := range bareSamples {
			if s.at >= from && s.at < to {
				la = append(la, s.latency)
			}
		}
		state := "healthy"
		if from >= slowFrom && from < slowUntil {
			state = "SLOW"
		}
		r.Timeline = append(r.Timeline, fmt.Sprintf("%4d–%4dms %-8s | %7d %5d %6d %8d %5d %9s | %9s",
			from.Milliseconds(), to.Milliseconds(), state, len(lb), cnt["ok"], cnt["failed"], cnt["rejected"], cnt["shed"],
			percentile(lb, 99).Round(100*time.Microsecond), percentile(la, 99).Round(100*time.Microsecond)))
	}
	tmu.Lock()
	for _, c := range changes {
		r.decided("at %4dms breaker %s → %s: %s", c.at.Milliseconds(), c.from, c.to, c.reason)
	}
	tmu.Unlock()

	var rejected, slowBare, slowProt []time.Duration
	for _, s := range protSamples {
		if s.outcome == "rejected" {
			rejected = append(rejected, s.latency)
		}
		if s.at >= slowFrom && s.at < slowUntil {
			slowProt = append(slowProt, s.latency)
		}
	}
	for _, s := range bareSamples {
		if s.at >= slowFrom && s.at < slowUntil {
			slowBare = append(slowBare, s.latency)
		}
	}
	r.figure("A (bare): ledger calls, max in flight", "%d calls, %d in flight", bare.calls.Load(), bare.maxInflight.Load())
	r.figure("B (protected): ledger calls, max in flight", "%d calls, %d in flight", protectedDep.calls.Load(), protectedDep.maxInflight.Load())
	r.figure("latency during the slow phase p50/p99", "A %s / %s   B %s / %s",
		percentile(slowBare, 50).Round(time.Millisecond), percentile(slowBare, 99).Round(time.Millisecond),
		percentile(slowProt, 50).Round(10*time.Microsecond), percentile(slowProt, 99).Round(time.Millisecond))
	shed := 0
	for _, s := range protSamples {
		if s.outcome == "shed" {
			shed++
		}
	}
	r.figure("B rejected by the breaker: count, p50/p99", "%d, %s / %s", len(rejected), percentile(rejected, 50), percentile(rejected, 99))
	r.figure("B shed by the bulkhead", "%d", shed)

	opened, closedAfter := false, time.Duration(-1)
	for _, c := range changes {
		if c.to == breaker.StateOpen && c.at >= slowFrom && c.at < slowUntil {
			opened = true
		}
		if c.to == breaker.StateClosed && c.at >= slowUntil && closedAfter < 0 {
			closedAfter = c.at - slowUntil
		}
	}
	r.figure("breaker closed after recovery", "%s (bound %s: open timeout %s + one failed probe %s + %s of probing)",
		closedAfter.Round(time.Millisecond), closeBound, openTimeout, callTimeout, probeSlack)
	r.expect(opened, "the breaker opened while the ledger was slow")
	r.expect(len(rejected) > 0 && percentile(rejected, 99) < time.Millisecond, "once tripped, rejected calls fail fast: p99 %s < 1ms", percentile(rejected, 99))
	r.expect(protectedDep.maxInflight.Load() <= bulkheadMax, "in-flight calls to the ledger never exceeded the bulkhead (%d ≤ %d)", protectedDep.maxInflight.Load(), bulkheadMax)
	r.expect(closedAfter >= 0 && closedAfter <= closeBound,
		"the breaker closed again within open timeout %s + one failed probe %s + %s of probing after the ledger recovered (%s ≤ %s)",
		openTimeout, callTimeout, probeSlack, closedAfter.Round(time.Millisecond), closeBound)
	r.expect(protectedDep.calls.Load() < bare.calls.Load(), "the slow ledger got fewer calls with protection (%d < %d)", protectedDep.calls.Load(), bare.calls.Load())
	return nil
}
