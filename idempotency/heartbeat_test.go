package idempotency_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// renewCounter counts renewals per key.
type renewCounter struct {
	idempotency.Store
	n map[string]*atomic.Int32
}

func (r renewCounter) Renew(ctx context.Context, k idempotency.Key, tok uint64, d time.Duration) error {
	r.n[k.Key].Add(1)
	return r.Store.Renew(ctx, k, tok, d)
}

// Operations starting at different times share one sweep timer while
// young, then each renews on its own schedule: the first renewal at most
// Heartbeat after its start, then every Heartbeat, and all keep their
// leases through 10 s of work on a 3 s lease.
func TestDoHeartbeatManyOwners(t *testing.T) {
	counts := map[string]*atomic.Int32{}
	env := newExec(t, func(c *idempotency.Config) {
		c.Lease, c.Heartbeat = 3*time.Second, time.Second
		c.Store = renewCounter{Store: c.Store, n: counts}
	})
	release := make(chan struct{})
	var dones []chan struct{}
	var outs []*error
	const owners = 4
	for i := range owners {
		k := idempotency.Key{Scope: "s", Key: strconv.Itoa(i)}
		counts[k.Key] = new(atomic.Int32)
		started, done, _, outErr := startBlocked(env, k, release, i, nil)
		<-started
		dones, outs = append(dones, done), append(outs, outErr)
		env.clk.Advance(300 * time.Millisecond) // Advance runs due timers, sweeps and renewals included, before it returns
	}
	// Owner i started at 300ms*i; now is 1.2 s. Walk to 10.2 s.
	for range 36 {
		env.clk.Advance(250 * time.Millisecond)
	}
	for i := range owners {
		k := idempotency.Key{Scope: "s", Key: strconv.Itoa(i)}
		c, err := env.store.Claim(context.Background(), idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
		if err != nil || c.Status != idempotency.InProgress {
			t.Fatalf("owner %d: a claimer sees %v %v, want in progress", i, c.Status, err)
		}
		// Ran 10.2 s - 0.3 s*i: renewed once a second from at most 1 s in.
		ran := 10200*time.Millisecond - time.Duration(i)*300*time.Millisecond
		min := int32(ran/time.Second) - 1
		if n := counts[k.Key].Load(); n < min || n > int32(ran/time.Second)+1 {
			t.Fatalf("owner %d renewed %d times in %v", i, n, ran)
		}
	}
	close(release)
	for i := range owners {
		<-dones[i]
		if *outs[i] != nil {
			t.Fatalf("owner %d: %v", i, *outs[i])
		}
	}
}

// Short operations arm no timer of their own: at most the shared sweep
// timer is armed, and it finds nothing to do.
func TestDoShortOperationsShareOneTimer(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Lease, c.Heartbeat = 3*time.Second, time.Second })
	for i := range 100 {
		k := idempotency.Key{Scope: "s", Key: strconv.Itoa(i)}
		if _, err := idempotency.Do(context.Background(), env.ex, k, "fp", func(context.Context) (int, error) { return i, nil }); err != nil {
			t.Fatal(err)
		}
		if w := env.clk.Waiters(); w != 1 {
			t.Fatalf("after %d operations %d timers armed, want the one sweep timer", i+1, w)
		}
	}
	env.clk.Advance(500 * time.Millisecond)
	if w := env.clk.Waiters(); w != 0 {
		t.Fatalf("after an empty sweep %d timers armed, want none", w)
	}
}
