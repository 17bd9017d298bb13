package idempotency_test

import (
	"context"
	"errors"
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

// Renewals that keep failing — a store this process cannot reach, while
// other processes can — must not leave fn running past its lease, when
// another caller may claim the key and run it too: fn's context is
// canceled with cause ErrLeaseLost when the lease, counted from before the
// claim was sent, runs out, and not before; the other caller's result
// stands.
func TestDoHeartbeatLeaseRunsOutWhileStoreUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name             string
		lease, heartbeat time.Duration
	}{
		{"three heartbeats to a lease", 3 * time.Second, time.Second},
		// The renewal a heartbeat after the first failed one would come
		// after the lease's end: the heartbeat beats at the end instead.
		{"lease just over a heartbeat", 1500 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newExec(t, func(c *idempotency.Config) { c.Lease, c.Heartbeat = tc.lease, tc.heartbeat })
			env.fault.set(&env.fault.renewErr, func() error { return errDown }) // the partition starts after the claim
			other, err := idempotency.New(idempotency.Config{Store: env.store, Clock: env.clk})
			if err != nil {
				t.Fatal(err)
			}
			ctxs := make(chan context.Context, 1)
			done := make(chan struct{})
			var (
				v    int
				derr error
			)
			go func() {
				defer close(done)
				v, derr = idempotency.Do(context.Background(), env.ex, k1, "fp", func(ctx context.Context) (int, error) {
					ctxs <- ctx
					<-ctx.Done()
					return 1, nil
				})
			}()
			ctx := <-ctxs
			// Advance runs the heartbeat's timers, renewals included,
			// before it returns.
			const step = 100 * time.Millisecond
			for elapsed := step; elapsed <= tc.lease; elapsed += step {
				env.clk.Advance(step)
				if elapsed < tc.lease && ctx.Err() != nil {
					t.Fatalf("fn's context ended %v after the claim, before the %v lease ran out (cause %v)", elapsed, tc.lease, context.Cause(ctx))
				}
			}
			if cause := context.Cause(ctx); !errors.Is(cause, idempotency.ErrLeaseLost) {
				t.Fatalf("the lease ran out with every renewal failing, and fn's context cause is %v, want ErrLeaseLost", cause)
			}
			<-done
			if !errors.Is(derr, idempotency.ErrLeaseLost) || v != 1 {
				t.Fatalf("Do: %d %v, want fn's value and ErrLeaseLost", v, derr)
			}
			if n := env.meter.get(idempotency.OutcomeLeaseLost); n != 1 {
				t.Fatalf("lease_lost count %d, want 1", n)
			}
			// Another caller, which can reach the store, now claims the key
			// and runs the operation; the first owner recorded nothing.
			if v, err := idempotency.Do(context.Background(), other, k1, "fp", func(context.Context) (int, error) { return 2, nil }); err != nil || v != 2 {
				t.Fatalf("another caller after the lease ran out: %d %v, want it to run", v, err)
			}
		})
	}
}

// A renewal that fails now and then does not cost the lease: the next one
// renews it, and fn runs on, well past the first lease, to completion.
func TestDoHeartbeatRidesOutFailedRenewals(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Lease, c.Heartbeat = 3*time.Second, time.Second })
	var renewals atomic.Int32
	env.fault.set(&env.fault.renewErr, func() error {
		if renewals.Add(1)%3 == 1 { // the 1st, 4th, 7th… fail
			return errDown
		}
		return nil
	})
	release := make(chan struct{})
	started, done, out, outErr := startBlocked(env, k1, release, 7, nil)
	<-started
	for range 100 { // 10 s on a 3 s lease
		env.clk.Advance(100 * time.Millisecond)
	}
	close(release)
	<-done
	if *outErr != nil || *out != 7 || renewals.Load() < 9 {
		t.Fatalf("Do: %d %v after %d renewals, want fn's value recorded", *out, *outErr, renewals.Load())
	}
	if r, _ := env.store.Get(context.Background(), k1); r.State != idempotency.StateCompleted {
		t.Fatalf("record %v, want completed", r.State)
	}
}

// A renewal the store does not answer (a partition without a reset) is
// given up after at most a heartbeat: it holds neither the clock's timer
// goroutine nor, through the heartbeat's lock, the end of Do.
func TestDoHeartbeatBoundsRenewal(t *testing.T) {
	const lease, heartbeat = 300 * time.Millisecond, 100 * time.Millisecond // real time: the bound of a store call is a context deadline
	us := &unreachableStore{renew: true, entered: make(chan enteredCall, 1)}
	env := newExec(t, func(c *idempotency.Config) {
		c.Lease, c.Heartbeat = lease, heartbeat
		us.Store = c.Store
		c.Store = us
	})
	release := make(chan struct{})
	started, done, out, outErr := startBlocked(env, k1, release, 5, nil)
	<-started
	beat := make(chan struct{})
	go func() {
		defer close(beat)
		env.clk.Advance(heartbeat / 2) // the sweep: a renewal timer of its own
		env.clk.Advance(heartbeat / 2) // the first renewal, which hangs
	}()
	call := <-us.entered
	close(release) // fn ends while the renewal is in flight: Do waits for it
	select {
	case <-done:
	case <-time.After(2 * time.Second): // 20 heartbeats: a hang guard, not a timing assertion
		t.Fatal("Do still blocked 2 s later: the renewal in flight is not bounded")
	}
	<-beat
	checkBounded(t, call, heartbeat)
	if *outErr != nil || *out != 5 {
		t.Fatalf("Do: %d %v, want fn's value recorded (one failed renewal does not lose a lease)", *out, *outErr)
	}
}
