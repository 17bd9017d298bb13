package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// ExactlyOnceConfig configures ExactlyOnce. The zero value is a complete
// configuration.
type ExactlyOnceConfig struct {
	// Workers is the number of concurrent callers (default 16) and
	// PerWorker the requests each makes (default 500).
	Workers, PerWorker int
	// DuplicatePercent is the share of requests that repeat an earlier key
	// (default 30). Requests are shuffled, so a duplicate often runs while
	// its original is in flight.
	DuplicatePercent int
	// Lease is each claim's lease (default 5 s). A claim whose reply was
	// lost to an injected fault holds its key until the lease runs out, so
	// under faults it should be short; it must stay far longer than one
	// effect and its store calls on a loaded machine.
	Lease time.Duration
	// EffectTime is how long each effect takes (default 0). A store whose
	// calls are fast (in memory) needs it for duplicates to overlap.
	EffectTime time.Duration
	// Timeout bounds the whole run (default 2 minutes).
	Timeout time.Duration
	// StopFaults, when set, is called once every caller has finished and
	// before the stored records are read back: it stops the fault
	// injection the test started.
	StopFaults func()
}

// ExactlyOnceReport is what a run of ExactlyOnce saw.
type ExactlyOnceReport struct {
	Requests int // requests made
	Keys     int // distinct keys among them: effects that ran
	// StoreFailures counts store calls that failed (each with a retryable
	// unavailable or timeout error) and were retried. Without injected
	// faults it should be zero; with them, above zero proves the faults
	// reached the store.
	StoreFailures int64
	// InProgress counts claims answered "in progress": duplicates that ran
	// while their original was in flight. Above zero proves the run
	// exercised concurrent duplicates, not just replays.
	InProgress int64
}

// ExactlyOnce proves the store's part of "exactly once": concurrent callers,
// spread over stores (several instances sharing one backend, or just one),
// make Workers × PerWorker requests of which DuplicatePercent repeat an
// earlier key. Each caller runs the protocol idempotency.Do runs — claim;
// run the effect and complete when it won; wait while the key is in
// progress; take the stored result once completed — and retries any store
// failure, which must be a retryable contract error of kind unavailable or
// timeout.
//
// Meant to run while the test injects faults (connections killed, backends
// terminated, a failover), it fails t unless every key's effect ran exactly
// once, every caller saw that key's own result, and every result is stored
// once the faults stop. An owner whose Complete reply was lost may see
// idempotency.ErrLeaseLost on its retried Complete: the record is then read
// back, and it passes when it holds that owner's token and result.
//
// Keys live under a random scope, so runs on a shared backend do not
// collide. ExactlyOnce is for real stores; the in-memory store runs the
// executor-level stress test of the idempotency package.
func ExactlyOnce(t *testing.T, stores []idempotency.Store, cfg ExactlyOnceConfig) ExactlyOnceReport {
	t.Helper()
	if len(stores) == 0 {
		t.Fatal("storetest.ExactlyOnce: no store")
	}
	workers, perWorker := orDefault(cfg.Workers, 16), orDefault(cfg.PerWorker, 500)
	dup := cfg.DuplicatePercent
	if dup == 0 {
		dup = 30
	}
	if workers < 0 || perWorker < 0 || dup < 0 || dup > 100 || cfg.Lease < 0 || cfg.Timeout < 0 || cfg.EffectTime < 0 {
		t.Fatalf("storetest.ExactlyOnce: invalid config %+v", cfg)
	}
	lease, timeout := cfg.Lease, cfg.Timeout
	if lease == 0 {
		lease = 5 * time.Second
	}
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	scope := "exactly-once-" + randomHex()

	rng := mrand.New(mrand.NewPCG(7, 11))
	plan := make([]string, workers*perWorker)
	var fresh []string
	for i := range plan {
		if len(fresh) > 0 && rng.IntN(100) < dup {
			plan[i] = fresh[rng.IntN(len(fresh))]
		} else {
			plan[i] = fmt.Sprintf("req-%d", i)
			fresh = append(fresh, plan[i])
		}
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	runs := make(map[string]*atomic.Int32, len(fresh))
	for _, k := range fresh {
		runs[k] = new(atomic.Int32)
	}
	var faults, waits atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := &onceCaller{t: t, s: stores[w%len(stores)], lease: lease, faults: &faults, waits: &waits}
			for _, k := range plan[w*perWorker : (w+1)*perWorker] {
				n := runs[k]
				got := c.do(ctx, idempotency.Key{Scope: scope, Key: k}, func() []byte {
					n.Add(1)
					if cfg.EffectTime > 0 {
						time.Sleep(cfg.EffectTime)
					}
					return []byte("effect:" + k)
				})
				if ctx.Err() == nil && !bytes.Equal(got, []byte("effect:"+k)) {
					t.Errorf("%s: caller saw %q", k, got)
				}
			}
		})
	}
	wg.Wait()
	if cfg.StopFaults != nil {
		cfg.StopFaults()
	}
	if ctx.Err() != nil {
		t.Fatalf("storetest.ExactlyOnce: the run did not finish in %v", timeout)
	}
	for _, k := range fresh {
		if c := runs[k].Load(); c != 1 {
			t.Errorf("%s: effect ran %d times", k, c)
		}
		// Connections the faults left dead in a pool fail once more:
		// retry those, as any caller would.
		key := idempotency.Key{Scope: scope, Key: k}
		rec, err := stores[0].Get(context.Background(), key)
		for i := 0; i < 100 && err != nil && contract.Retryable(err); i++ {
			rec, err = stores[0].Get(context.Background(), key)
		}
		if err != nil || rec.State != idempotency.StateCompleted || string(rec.Result.Body) != "effect:"+k {
			t.Errorf("%s: stored record %+v, %v", k, rec, err)
		}
	}
	r := ExactlyOnceReport{Requests: len(plan), Keys: len(fresh), StoreFailures: faults.Load(), InProgress: waits.Load()}
	t.Logf("storetest.ExactlyOnce: %d requests, %d distinct keys, %d store failures retried, %d claims in progress",
		r.Requests, r.Keys, r.StoreFailures, r.InProgress)
	return r
}

func orDefault(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// onceCaller is one caller of ExactlyOnce, running idempotency.Do's
// protocol against its store.
type onceCaller struct {
	t      *testing.T
	s      idempotency.Store
	lease  time.Duration
	faults *atomic.Int64
	waits  *atomic.Int64
}

// storeErr checks a failed store call's error and backs off a little.
func (c *onceCaller) storeErr(err error) {
	if !contract.Retryable(err) || !(errors.Is(err, contract.ErrUnavailable) || errors.Is(err, contract.ErrTimeout)) {
		c.t.Errorf("store failure is not a retryable unavailable/timeout contract error: %v", err)
	}
	c.faults.Add(1)
	time.Sleep(time.Millisecond)
}

// do returns key's result: the effect's when this caller won the claim,
// the stored one otherwise; nil when ctx ends first or the store misbehaved
// (reported on t).
func (c *onceCaller) do(ctx context.Context, key idempotency.Key, effect func() []byte) []byte {
	req := idempotency.ClaimRequest{Key: key, Fingerprint: "fp", Lease: c.lease, Retention: time.Hour}
	for ctx.Err() == nil {
		cl, err := c.s.Claim(ctx, req)
		if err != nil {
			c.storeErr(err)
			continue
		}
		switch cl.Status {
		case idempotency.Completed:
			return cl.Result.Body
		case idempotency.InProgress:
			c.waits.Add(1)
			time.Sleep(time.Millisecond)
			continue
		case idempotency.Mismatch:
			c.t.Errorf("unexpected mismatch for %q", key.Key)
			return nil
		}
		return c.complete(ctx, key, cl.Token, effect())
	}
	return nil
}

// complete stores body under token, retrying store failures.
func (c *onceCaller) complete(ctx context.Context, key idempotency.Key, token uint64, body []byte) []byte {
	for ctx.Err() == nil {
		err := c.s.Complete(ctx, key, token, idempotency.Result{Body: body})
		if err == nil {
			return body
		}
		if !errors.Is(err, idempotency.ErrLeaseLost) {
			c.storeErr(err)
			continue
		}
		// An earlier attempt may have been applied with its reply lost to
		// a killed connection (and retried by the client).
		rec, gerr := c.s.Get(ctx, key)
		for gerr != nil && ctx.Err() == nil {
			c.storeErr(gerr)
			rec, gerr = c.s.Get(ctx, key)
		}
		if rec.State == idempotency.StateCompleted && rec.Token == token {
			return rec.Result.Body
		}
		if ctx.Err() == nil {
			c.t.Errorf("lease lost for %q with a %v lease: %+v", key.Key, c.lease, rec)
		}
		return nil
	}
	return nil
}
