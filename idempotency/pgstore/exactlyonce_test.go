package pgstore

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

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// doOnce is the caller's side of the protocol, as idempotency.Do runs it:
// claim; run the effect if won and complete; wait while in progress; return
// the stored result once completed. Store failures are retried, and each
// one must be a retryable contract error (counted in faults).
func doOnce(ctx context.Context, t *testing.T, s idempotency.Store, key idempotency.Key, lease time.Duration, effect func() []byte, faults *atomic.Int64) []byte {
	req := idempotency.ClaimRequest{Key: key, Fingerprint: "fp", Lease: lease, Retention: time.Hour}
	storeErr := func(err error) {
		if !contract.Retryable(err) || !(errors.Is(err, contract.ErrUnavailable) || errors.Is(err, contract.ErrTimeout)) {
			t.Errorf("store failure is not a retryable unavailable/timeout contract error: %v", err)
		}
		faults.Add(1)
		time.Sleep(time.Millisecond)
	}
	for ctx.Err() == nil {
		c, err := s.Claim(ctx, req)
		if err != nil {
			storeErr(err)
			continue
		}
		switch c.Status {
		case idempotency.Completed:
			return c.Result.Body
		case idempotency.InProgress:
			time.Sleep(time.Millisecond)
			continue
		case idempotency.Mismatch:
			t.Errorf("unexpected mismatch for %q", key.Key)
			return nil
		}
		body := effect()
		for ctx.Err() == nil {
			err := s.Complete(ctx, key, c.Token, idempotency.Result{Body: body})
			if err == nil {
				return body
			}
			if errors.Is(err, idempotency.ErrLeaseLost) {
				rec, gerr := s.Get(ctx, key)
				for gerr != nil && ctx.Err() == nil {
					storeErr(gerr)
					rec, gerr = s.Get(ctx, key)
				}
				if rec.State == idempotency.StateCompleted && rec.Token == c.Token {
					return rec.Result.Body
				}
				t.Errorf("lease lost for %q with a %v lease: %+v", key.Key, lease, rec)
				return nil
			}
			storeErr(err)
		}
	}
	return nil
}

// exactlyOnce runs 16 goroutines × 500 requests, 30 % of them repeating an
// earlier key, alternating between the stores, and checks that every key's
// effect ran exactly once and every caller saw the same result.
// stopFaults, when not nil, is called once the run is over, before the
// stored records are checked.
func exactlyOnce(t *testing.T, stores []idempotency.Store, scope string, lease time.Duration, faults *atomic.Int64, stopFaults func()) {
	const workers, perWorker = 16, 500
	rng := mrand.New(mrand.NewPCG(7, 11))
	plan := make([]string, workers*perWorker)
	var fresh []string
	for i := range plan {
		if len(fresh) > 0 && rng.IntN(100) < 30 {
			plan[i] = fresh[rng.IntN(len(fresh))]
		} else {
			plan[i] = fmt.Sprintf("req-%d", i)
			fresh = append(fresh, plan[i])
		}
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	var runs sync.Map // key -> *atomic.Int32
	for _, k := range fresh {
		runs.Store(k, new(atomic.Int32))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			s := stores[w%len(stores)]
			for _, k := range plan[w*perWorker : (w+1)*perWorker] {
				n, _ := runs.Load(k)
				got := doOnce(ctx, t, s, idempotency.Key{Scope: scope, Key: k}, lease, func() []byte {
					n.(*atomic.Int32).Add(1)
					return []byte("effect:" + k)
				}, faults)
				if !bytes.Equal(got, []byte("effect:"+k)) {
					t.Errorf("%s: caller saw %q", k, got)
				}
			}
		})
	}
	wg.Wait()
	if stopFaults != nil {
		stopFaults()
	}
	if ctx.Err() != nil {
		t.Fatal("run did not finish in 3 minutes")
	}
	for _, k := range fresh {
		n, _ := runs.Load(k)
		if c := n.(*atomic.Int32).Load(); c != 1 {
			t.Errorf("%s: effect ran %d times", k, c)
		}
		// Connections the faults left dead in the pool fail once more:
		// retry those, as any caller would.
		rec, err := stores[0].Get(context.Background(), idempotency.Key{Scope: scope, Key: k})
		for i := 0; i < 100 && err != nil && contract.Retryable(err); i++ {
			rec, err = stores[0].Get(context.Background(), idempotency.Key{Scope: scope, Key: k})
		}
		if err != nil || rec.State != idempotency.StateCompleted || string(rec.Result.Body) != "effect:"+k {
			t.Errorf("%s: stored record %+v, %v", k, rec, err)
		}
	}
	t.Logf("%d requests, %d distinct keys, %d store failures retried", len(plan), len(fresh), faults.Load())
}

func TestExactlyOnceTwoInstances(t *testing.T) {
	p1, _ := newPool(t, "pgstore-once", nil)
	p2, _ := newPool(t, "pgstore-once", nil)
	table := newTable()
	a := newStore(t, p1, table)
	b, _ := New(Config{Pool: p2, Schema: testSchema, Table: table})
	var faults atomic.Int64
	exactlyOnce(t, []idempotency.Store{a, b}, "once", 10*time.Second, &faults, nil)
	if faults.Load() != 0 {
		t.Errorf("%d store failures without any fault injected", faults.Load())
	}
}

// terminateBackends ends every backend of application app (this test's own
// pools only: other tests share the server) and returns how many.
func terminateBackends(ctx context.Context, admin *pgxpool.Pool, app string) int {
	var n int
	_ = admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()`, app).Scan(&n)
	return n
}

// TestExactlyOnceUnderBackendTermination terminates this test's backends
// with pg_terminate_backend every few milliseconds during the run: calls fail
// with retryable unavailable errors, nothing panics, every effect runs
// exactly once and every completed result survives.
func TestExactlyOnceUnderBackendTermination(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	app := "pgstore-kill-" + randomSuffix()
	p1, _ := newPool(t, app, nil)
	p2, _ := newPool(t, app, nil)
	admin, _ := newPool(t, "pgstore-kill-admin", nil)
	table := newTable()
	a := newStore(t, p1, table)
	b, _ := New(Config{Pool: p2, Schema: testSchema, Table: table})

	stop := make(chan struct{})
	done := make(chan struct{})
	var kills atomic.Int64
	// The first kill comes 50 ms into the run, then one a second: the run
	// must see at least one however fast it has become.
	go func() {
		defer close(done)
		wait := 50 * time.Millisecond
		for {
			select {
			case <-stop:
				return
			case <-time.After(wait):
			}
			kills.Add(int64(terminateBackends(context.Background(), admin, app)))
			wait = time.Second
		}
	}()
	var faults atomic.Int64
	exactlyOnce(t, []idempotency.Store{a, b}, "kill", 5*time.Second, &faults, func() { close(stop); <-done })
	t.Logf("%d backends terminated", kills.Load())
	if kills.Load() == 0 || faults.Load() == 0 {
		t.Fatalf("no fault was injected (terminated %d, failures seen %d)", kills.Load(), faults.Load())
	}
}
