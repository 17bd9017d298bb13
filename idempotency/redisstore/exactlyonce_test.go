package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
	"github.com/sadpath/sadpath/internal/testenv"
)

func TestExactlyOnceTwoInstances(t *testing.T) {
	prefix := testPrefix(t)
	a := newStore(t, newClient(t, "redisstore-once-a"), prefix)
	b := newStore(t, newClient(t, "redisstore-once-b"), prefix)
	r := storetest.ExactlyOnce(t, []idempotency.Store{a, b}, storetest.ExactlyOnceConfig{Lease: 5 * time.Second})
	if r.StoreFailures != 0 {
		t.Errorf("%d store failures without any fault injected", r.StoreFailures)
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
	r := storetest.ExactlyOnce(t, []idempotency.Store{a, b}, storetest.ExactlyOnceConfig{Lease: 5 * time.Second, StopFaults: func() { close(stop); <-done }})
	t.Logf("%d connections killed", kills.Load())
	if kills.Load() == 0 || r.StoreFailures == 0 {
		t.Fatalf("no fault was injected (kills %d, failures seen %d)", kills.Load(), r.StoreFailures)
	}
}
