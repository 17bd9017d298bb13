package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/testenv"
)

// doOnce is the caller's side of the protocol, as idempotency.Do runs it:
// claim; run the effect if won and complete; wait while in progress; return
// the stored result once completed. Store failures are retried, and each
// one must be a retryable contract error (recorded in faults).
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
				// An earlier attempt may have been applied with its reply
				// lost to a killed connection (and retried by the client).
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
	// Shuffle so a duplicate often runs concurrently with its original.
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })

	var runs sync.Map // key -> *atomic.Int32
	for _, k := range fresh {
		runs.Store(k, new(atomic.Int32))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
		t.Fatal("run did not finish in 2 minutes")
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
	prefix := testPrefix(t)
	a := newStore(t, newClient(t, "redisstore-once-a"), prefix)
	b := newStore(t, newClient(t, "redisstore-once-b"), prefix)
	var faults atomic.Int64
	exactlyOnce(t, []idempotency.Store{a, b}, "once", 5*time.Second, &faults, nil)
	if faults.Load() != 0 {
		t.Errorf("%d store failures without any fault injected", faults.Load())
	}
}

// TestExactlyOnceUnderClientKill kills this test's own connections with
// CLIENT KILL every few milliseconds while the run goes on (other tests'
// connections on the shared server are left alone: they are found by
// client name). Calls fail with retryable unavailable errors, nothing
// panics, every effect still runs exactly once and every completed result
// survives.
func TestExactlyOnceUnderClientKill(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	addr := testenv.RedisAddr(t)
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	name := "redisstore-kill-" + hex.EncodeToString(rb[:])
	prefix := testPrefix(t)
	// One client retries inside go-redis (the default), one surfaces every
	// failure (MaxRetries -1).
	ca := redis.NewClient(&redis.Options{Addr: addr, ClientName: name, PoolSize: 16})
	cb := redis.NewClient(&redis.Options{Addr: addr, ClientName: name, PoolSize: 16, MaxRetries: -1})
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	a := newStore(t, ca, prefix)
	b := newStore(t, cb, prefix)

	admin := newClient(t, "redisstore-kill-admin")
	stop := make(chan struct{})
	var kills atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			list, err := admin.ClientList(context.Background()).Result()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(list, "\n") {
				if !strings.Contains(line, " name="+name+" ") {
					continue
				}
				for _, f := range strings.Fields(line) {
					if id, ok := strings.CutPrefix(f, "id="); ok {
						if admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err() == nil {
							kills.Add(1)
						}
						break
					}
				}
			}
		}
	}()
	// A claim whose reply was lost holds its key until the lease expires,
	// so the lease is short; it is still far longer than one effect with
	// its retries on a loaded machine.
	var faults atomic.Int64
	exactlyOnce(t, []idempotency.Store{a, b}, "kill", 5*time.Second, &faults, func() { close(stop); <-done })
	t.Logf("%d connections killed", kills.Load())
	if kills.Load() == 0 || faults.Load() == 0 {
		t.Fatalf("no fault was injected (kills %d, failures seen %d)", kills.Load(), faults.Load())
	}
}
