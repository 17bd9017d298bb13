package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/internal/testenv"
)

// When the local breaker opens, by its own counts or by a trip applied from
// the shared state, the counts it has not merged yet are dropped: the trip
// cleared the shared window. Only local changes are published, and not an
// operator's Reset.
func TestLocalOpenDropsUnmergedCounts(t *testing.T) {
	for _, tc := range []struct {
		t       breaker.Transition
		drop    bool
		publish bool
	}{
		{breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Reason: "failure rate 1.00 over 4 calls >= 0.50"}, true, true},
		{breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateOpen, Reason: "probe failed"}, true, true},
		{breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, Reason: peerPrefix + "tripped by instance b"}, true, false},
		{breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Reason: "3 probes succeeded"}, false, true},
		{breaker.Transition{From: breaker.StateOpen, To: breaker.StateHalfOpen, Reason: "probe requested"}, false, false},
		{breaker.Transition{From: breaker.StateForcedClosed, To: breaker.StateOpen, Reason: "reset by operator"}, true, false},
		{breaker.Transition{From: breaker.StateForcedOpen, To: breaker.StateHalfOpen, Reason: "reset by operator"}, false, false},
	} {
		s := &Shared{pubSig: make(chan struct{}, 1)}
		s.succ.Store(2)
		s.fail.Store(3)
		s.onLocalChange(tc.t)
		name := tc.t.From.String() + ">" + tc.t.To.String() + " (" + tc.t.Reason + ")"
		if dropped := s.succ.Load() == 0 && s.fail.Load() == 0; dropped != tc.drop {
			t.Errorf("%s: counts %d/%d left, want dropped %v", name, s.succ.Load(), s.fail.Load(), tc.drop)
		}
		if _, published := s.nextPublish(); published != tc.publish {
			t.Errorf("%s: published %v, want %v", name, published, tc.publish)
		}
	}
}

// skipFirstScript fails the first script call, and closes done then.
type skipFirstScript struct {
	once sync.Once
	done chan struct{}
}

func (h *skipFirstScript) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *skipFirstScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		skip := false
		if strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			h.once.Do(func() { skip = true })
		}
		if skip {
			defer close(h.done)
			return errors.New("test: merge skipped")
		}
		return next(ctx, cmd)
	}
}
func (h *skipFirstScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// newIdle returns a Shared on a real Redis whose loop does not merge: its
// first merge, at start, fails and the next is an hour away. The test calls
// sync and apply itself. It returns the key of the shared state and Redis's
// time in ms.
func newIdle(t *testing.T) (s *Shared, c *redis.Client, key string, now int64) {
	t.Helper()
	s, c = newIdleInstance(t, uniqueName(t), "a", breaker.Config{})
	tm, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	return s, c, s.base + ":state", tm.UnixMilli()
}

// newIdleInstance is newIdle for breaker name with instance id and config
// bc, on its own client. Its loop still publishes local changes, and its
// subscription applies messages.
func newIdleInstance(t *testing.T, name, id string, bc breaker.Config) (*Shared, *redis.Client) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { c.Close() })
	skip := &skipFirstScript{done: make(chan struct{})}
	c.AddHook(skip)
	bc.Name, bc.DisableMetrics = name, true
	s, err := New(Config{Client: c, Prefix: "sadpath-test:breaker:", SyncInterval: time.Hour, InstanceID: id, Breaker: bc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		c.Del(context.Background(), s.base+":state")
	})
	<-skip.done // the loop's first merge failed: it applies nothing
	return s, c
}

func uniqueName(t *testing.T) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return "t-" + t.Name() + "-" + hex.EncodeToString(r[:])
}

// An epoch far ahead of the instance's clock is a bad message and is not
// recorded. One within a day passes that check, but the merge is
// authoritative: an epoch recorded ahead of both the stored epoch and
// Redis's clock is reset to the stored one, and the stored state applies.
func TestMergeResetsAnEpochAheadOfRedis(t *testing.T) {
	s, c, key, now := newIdle(t)
	ctx := context.Background()
	s.apply("closed|" + strconv.FormatInt(math.MaxInt64, 10) + "|0|garbled")
	if e := s.lastEpoch.Load(); e == math.MaxInt64 {
		t.Fatal("an epoch of MaxInt64 was recorded")
	}
	s.apply("open|" + strconv.FormatInt(now, 10) + "|60000|b") // a real trip is still followed
	if st := s.b.State(); st != breaker.StateOpen {
		t.Fatalf("after a peer's trip: %v", st)
	}

	ahead := now + (23 * time.Hour).Milliseconds()
	s.apply("closed|" + strconv.FormatInt(ahead, 10) + "|0|garbled") // within a day: recorded
	if e := s.lastEpoch.Load(); e != ahead {
		t.Fatalf("recorded epoch %d, want %d", e, ahead)
	}
	// The peer recovered: the stored state is closed, with a real epoch.
	if err := c.HSet(ctx, key, "state", "closed", "until", 0, "epoch", now+1, "origin", "b").Err(); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if e := s.lastEpoch.Load(); e != now+1 {
		t.Fatalf("recorded epoch %d after the merge, want the stored %d", e, now+1)
	}
	if st := s.b.State(); st != breaker.StateHalfOpen {
		t.Fatalf("after the merge: %v, want half_open (the peer's recovery applied)", st)
	}
}

// While the local breaker is forced, the shared state is not applied (Trip
// and Probe do nothing) and its epoch is not recorded, so that after Reset
// the next merge applies it.
func TestForcedInstanceFollowsSharedStateAfterReset(t *testing.T) {
	s, c, key, now := newIdle(t)
	ctx := context.Background()
	s.b.ForceClosed(ctx, "migration")
	// A peer trips for a minute: the stored state and its message.
	if err := c.HSet(ctx, key, "state", "open", "until", now+60000, "epoch", now, "origin", "b").Err(); err != nil {
		t.Fatal(err)
	}
	s.apply("open|" + strconv.FormatInt(now, 10) + "|60000|b")
	s.sync()
	if st := s.b.State(); st != breaker.StateForcedClosed {
		t.Fatalf("forced closed instance is %v", st)
	}
	if e := s.lastEpoch.Load(); e >= now {
		t.Fatalf("epoch %d recorded while forced", e)
	}
	s.b.Reset(ctx)
	s.sync()
	if st, ra := s.b.State(), s.b.RetryAfter(); st != breaker.StateOpen || ra <= 30*time.Second || ra > time.Minute {
		t.Fatalf("after Reset and a merge: %v for %v, want open for the rest of the peer's minute", st, ra)
	}
}

// A local close published after a peer's newer trip reached Redis must not
// undo it: the close applies only when the shared state has not changed
// since the instance saw it.
func TestStaleCloseDoesNotUndoAPeersTrip(t *testing.T) {
	s, c, key, now := newIdle(t)
	ctx := context.Background()
	// a follows b's trip...
	if err := c.HSet(ctx, key, "state", "open", "until", now+60000, "epoch", now-1000, "origin", "b").Err(); err != nil {
		t.Fatal(err)
	}
	s.apply("open|" + strconv.FormatInt(now-1000, 10) + "|60000|b")
	seen := s.lastEpoch.Load()
	// ...and recovers, while b trips again: b's trip reaches Redis first.
	if err := c.HSet(ctx, key, "state", "open", "until", now+60000, "epoch", now, "origin", "b").Err(); err != nil {
		t.Fatal(err)
	}
	recovered := breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Reason: "1 probes succeeded"}
	s.publish(change{t: recovered, seen: seen})
	st, err := c.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if st["state"] != "open" || st["origin"] != "b" || s.lastEpoch.Load() != seen {
		t.Fatalf("a stale close applied: shared state %v, recorded epoch %d (seen %d)", st, s.lastEpoch.Load(), seen)
	}
	// A close after a saw b's second trip applies.
	s.publish(change{t: recovered, seen: now})
	if st, _ = c.HGetAll(ctx, key).Result(); st["state"] != "closed" || st["origin"] != "a" || s.lastEpoch.Load() <= now {
		t.Fatalf("close after the trip: shared state %v, recorded epoch %d", st, s.lastEpoch.Load())
	}
}

var errDown = errors.New("connection refused")

// waitStored waits until the shared state at key is want.
func waitStored(t *testing.T, c *redis.Client, key, want string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for c.HGet(ctx, key, "state").Val() != want {
		if time.Now().After(deadline) {
			t.Fatalf("shared state never became %s: %v", want, c.HGetAll(ctx, key).Val())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSeen waits until s has recorded the stored state's epoch: its loop
// records the epoch of its own change once the script that stored it has
// returned, after the change is visible to others. (In production the loop
// merges too, so a merge never runs between the two.)
func waitSeen(t *testing.T, s *Shared, c *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, err := c.HGet(context.Background(), s.base+":state", "epoch").Int64()
		if err == nil && s.lastEpoch.Load() >= e {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s recorded epoch %d, stored %d (%v)", s.id, s.lastEpoch.Load(), e, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitHalfOpen waits until b's open delay has passed.
func waitHalfOpen(t *testing.T, b *breaker.Breaker) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.State() != breaker.StateHalfOpen {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %v, never half-open", b.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Instance b's calls failed before it learnt of a's trip (it missed the
// message — a reconnecting subscription — or merged just before it
// arrived, the common case on a busy instance merging every MinCalls
// calls). Its catch-up merge must not add those failures into the window
// a's trip cleared: the merge after a's successful probe would re-trip the
// shared state with them, undoing the recovery with the failures the trip
// was about.
func TestFailuresBeforeAPeersTripAreNotMerged(t *testing.T) {
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: 300 * time.Millisecond, MaxOpenTimeout: 300 * time.Millisecond,
		HalfOpenProbes: 1, Window: time.Minute}
	a, c := newIdleInstance(t, name, "a", cfg)
	b, _ := newIdleInstance(t, name, "b", cfg)
	b.ps.Close() // b misses a's messages; its next merge catches up
	b.sync()     // b has merged before: no shared state yet
	ctx := context.Background()
	key := a.base + ":state"
	fail := func(s *Shared) { _ = s.b.Execute(ctx, func(context.Context) error { return errDown }) }

	for range 4 {
		fail(a)
	}
	waitStored(t, c, key, "open") // a's trip is shared; the window is cleared
	for range 3 {
		fail(b) // b, not knowing yet, still calls the dependency: 3 < MinCalls, b stays closed
	}
	b.sync() // b catches up: it follows a's trip, and drops its failures
	if st := b.b.State(); st != breaker.StateOpen {
		t.Fatalf("b after its merge: %v", st)
	}
	// The dependency recovers: a's probe succeeds, a closes and shares it.
	waitHalfOpen(t, a.b)
	if err := a.b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st := a.b.State(); st != breaker.StateClosed {
		t.Fatalf("a after its probe: %v", st)
	}
	waitStored(t, c, key, "closed")
	waitSeen(t, a, c)
	a.sync() // a merges its successful probe: 1 success, and b's failures had they been merged
	if st := c.HGetAll(ctx, key).Val(); st["state"] != "closed" {
		t.Fatalf("the recovery was re-tripped by b's failures from before a's trip: shared state %v", st)
	}
}

// Instance b missed both a's trip and a's recovery: its failures, counted
// during the outage, reach Redis only after the recovery. They are dropped
// too: merged into the window of the recovery, they would re-trip it just
// the same.
func TestFailuresBeforeAPeersRecoveryAreNotMerged(t *testing.T) {
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: 300 * time.Millisecond, MaxOpenTimeout: 300 * time.Millisecond,
		HalfOpenProbes: 1, Window: time.Minute}
	a, c := newIdleInstance(t, name, "a", cfg)
	b, _ := newIdleInstance(t, name, "b", cfg)
	b.ps.Close() // b misses a's messages
	b.sync()     // b has merged before: no shared state yet
	ctx := context.Background()
	key := a.base + ":state"
	for range 4 {
		_ = a.b.Execute(ctx, func(context.Context) error { return errDown })
	}
	waitStored(t, c, key, "open")
	for range 3 { // b, knowing nothing, counts failures of the outage
		_ = b.b.Execute(ctx, func(context.Context) error { return errDown })
	}
	waitHalfOpen(t, a.b)
	if err := a.b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	waitStored(t, c, key, "closed") // a recovered
	waitSeen(t, a, c)
	b.sync() // b's outage failures reach Redis after the recovery
	if st := b.b.State(); st != breaker.StateClosed {
		t.Fatalf("b after its merge: %v", st)
	}
	a.sync() // 1 success, and b's 3 failures had they been merged: 3/4 >= 0.5
	if st := c.HGetAll(ctx, key).Val(); st["state"] != "closed" {
		t.Fatalf("the recovery was re-tripped by b's failures from the outage: shared state %v", st)
	}
	// b's calls after it caught up are merged as usual.
	if err := b.b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	b.sync()
	var succ, fails int64
	cur := c.Time(ctx).Val().UnixMilli() / b.bucketMs
	for i := range b.buckets + 1 {
		v := c.HMGet(ctx, b.base+":w:"+strconv.FormatInt(cur-i, 10), "s", "f").Val()
		for j, p := range []*int64{&succ, &fails} {
			if str, ok := v[j].(string); ok {
				n, _ := strconv.ParseInt(str, 10, 64)
				*p += n
			}
		}
	}
	if succ != 2 || fails != 0 {
		t.Fatalf("shared window holds %d successes and %d failures, want a's probe and b's call after it caught up", succ, fails)
	}
}

// An instance that learns of a peer's trip from the merge (it missed the
// message) reports the peer that tripped, read from the stored state, not
// the failure rate of the window that trip cleared ("0/0 calls"); the
// stored origin comes from Redis and is logged printable and bounded. A
// trip made by the merge itself reports the shared failure rate.
func TestMergeReportsWhoTripped(t *testing.T) {
	ctx := context.Background()
	newInstance := func() (*Shared, *redis.Client, func() []string) {
		var mu sync.Mutex
		var reasons []string
		s, c := newIdleInstance(t, uniqueName(t), "a", breaker.Config{MinCalls: 4,
			OnStateChange: func(_ context.Context, tr breaker.Transition) {
				mu.Lock()
				reasons = append(reasons, tr.Reason)
				mu.Unlock()
			}})
		return s, c, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), reasons...)
		}
	}
	for _, tc := range []struct{ origin, want string }{
		{"b", "shared: tripped by instance b"},
		{"evil\x1b[2J\r\u202e" + strings.Repeat("x", 1000), "shared: tripped by instance evil?[2J??" + strings.Repeat("x", 116) + "…"},
		{"", "shared: tripped by another instance"},
	} {
		s, c, reasons := newInstance()
		now := c.Time(ctx).Val().UnixMilli()
		if err := c.HSet(ctx, s.base+":state", "state", "open", "until", now+60000, "epoch", now, "origin", tc.origin).Err(); err != nil {
			t.Fatal(err)
		}
		s.sync()
		if st := s.b.State(); st != breaker.StateOpen {
			t.Fatalf("after the merge: %v", st)
		}
		if got := reasons(); len(got) != 1 || got[0] != tc.want {
			t.Fatalf("reasons %q, want [%q]", got, tc.want)
		}
	}
	// The shared window trips on this instance's merge: 3 failures of peers
	// plus 1 of its own.
	s, c, reasons := newInstance()
	now := c.Time(ctx).Val().UnixMilli()
	bucket := s.base + ":w:" + strconv.FormatInt(now/s.bucketMs, 10)
	if err := c.HSet(ctx, bucket, "s", 0, "f", 3).Err(); err != nil {
		t.Fatal(err)
	}
	c.PExpire(ctx, bucket, time.Minute)
	_ = s.b.Execute(ctx, func(context.Context) error { return errDown })
	s.sync()
	if got := reasons(); len(got) != 1 || got[0] != "shared: shared failure rate 4/4 calls" {
		t.Fatalf("reasons of a trip by the merge: %q", got)
	}
}

// failScripts fails every script call while down is set, and counts them.
type failScripts struct {
	down   atomic.Bool
	failed atomic.Int32
}

func (h *failScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.down.Load() && strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			h.failed.Add(1)
			return errors.New("test: redis down")
		}
		return next(ctx, cmd)
	}
}
func (h *failScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// An instance that starts while Redis is down and trips on its own failures
// (its trip could not be published) must not take, at its first merge once
// Redis is back, a recovery stored before it started for news: that close
// is older than its trip, and ending the open delay on it would send probes
// to the failing dependency at once.
func TestFirstMergeDoesNotEndALocalTripOnAnOlderRecovery(t *testing.T) {
	ctx := context.Background()
	s, c := newIdleInstance(t, uniqueName(t), "a", breaker.Config{MinCalls: 2, OpenTimeout: time.Hour})
	key := s.base + ":state"
	now := c.Time(ctx).Val().UnixMilli()
	// A recovery an hour ago, stored.
	if err := c.HSet(ctx, key, "state", "closed", "until", 0, "epoch", now-3600000, "origin", "b").Err(); err != nil {
		t.Fatal(err)
	}
	down := &failScripts{}
	down.down.Store(true)
	c.AddHook(down)
	for range 2 {
		_ = s.b.Execute(ctx, func(context.Context) error { return errDown })
	}
	if st := s.b.State(); st != breaker.StateOpen {
		t.Fatalf("after two failures: %v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for down.failed.Load() == 0 { // the loop tried to publish the trip, and failed
		if time.Now().After(deadline) {
			t.Fatal("the trip was never published")
		}
		time.Sleep(time.Millisecond)
	}
	down.down.Store(false)
	s.sync()
	if st, ra := s.b.State(), s.b.RetryAfter(); st != breaker.StateOpen || ra < 59*time.Minute {
		t.Fatalf("after the first merge: %v for %v, want open for the rest of the hour", st, ra)
	}
}

// Two calls ending at once can both count past MinCalls without either
// seeing exactly MinCalls (each adds its own outcome, then reads the other
// count after the other's add): the early merge must still be asked for.
func TestOnCallKicksPastMinCalls(t *testing.T) {
	for _, o := range []breaker.Outcome{breaker.Success, breaker.Failure, breaker.Slow} {
		s := &Shared{kick: make(chan struct{}, 1), minCalls: 10}
		s.succ.Store(5)
		s.fail.Store(5) // a concurrent call took the count to MinCalls without seeing it
		s.onCall(o)
		select {
		case <-s.kick:
		default:
			t.Errorf("%v as call %d of MinCalls 10: no early merge asked for", o, s.succ.Load()+s.fail.Load())
		}
	}
	s := &Shared{kick: make(chan struct{}, 1), minCalls: 10}
	s.onCall(breaker.Success)
	select {
	case <-s.kick:
		t.Error("an early merge asked for after 1 call of MinCalls 10")
	default:
	}
}

// A failover promotes a replica that lacks the newest change (it lagged)
// and whose clock is behind the old primary's: the epochs it gives new
// changes (its time in ms) are older than the one the instances saw. A
// peer's trip on it was ignored until that clock passed the old epoch (up
// to a minute): its message looked old, and so did the stored state at
// every merge; the instance merged the failures it counted before the trip
// into the window the trip cleared; and its recovery, checked against the
// epoch it had seen, undid the peer's newer trip. Now a merge that finds
// the stored state older than what the instance saw takes the stored state
// as the shared state, and a close applies only over the state the
// instance saw.
func TestFailoverToAServerWithAClockBehind(t *testing.T) {
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: time.Minute, HalfOpenProbes: 1, Window: time.Minute}
	a, c := newIdleInstance(t, name, "a", cfg)
	b, _ := newIdleInstance(t, name, "b", cfg)
	ctx := context.Background()
	key := a.base + ":state"
	recovered := breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed, Reason: "1 probes succeeded"}
	// On the old primary, its clock 30s ahead of the new one, a recovered
	// from a trip; both instances saw it.
	old := c.Time(ctx).Val().UnixMilli() + 30000
	if err := c.HSet(ctx, key, "state", "open", "until", old, "epoch", old, "origin", "a").Err(); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if err := a.publish(change{t: recovered, seen: old}); err != nil {
		t.Fatal(err)
	}
	b.sync()
	if e := b.lastEpoch.Load(); e <= old {
		t.Fatalf("b recorded epoch %d, want a's recovery after %d", e, old)
	}
	c.Del(ctx, key) // the failover: the new primary never got those changes
	for range 3 {   // a's calls fail: 3 < MinCalls, a stays closed
		_ = a.b.Execute(ctx, func(context.Context) error { return errDown })
	}
	for range 4 { // b trips, on the new primary
		_ = b.b.Execute(ctx, func(context.Context) error { return errDown })
	}
	waitStored(t, c, key, "open")

	// a recovers from an older trip, not knowing of b's.
	if err := a.publish(change{t: recovered, seen: a.lastEpoch.Load()}); err != nil {
		t.Fatal(err)
	}
	if st := c.HGetAll(ctx, key).Val(); st["state"] != "open" || st["origin"] != "b" {
		t.Fatalf("a's close undid b's newer trip: shared state %v", st)
	}
	a.sync()
	if st, ra := a.b.State(), a.b.RetryAfter(); st != breaker.StateOpen || ra < 30*time.Second {
		t.Fatalf("a after its merge: %v for %v, want open for the rest of b's minute", st, ra)
	}
	if _, f := windowOf(t, a, c); f != 0 {
		t.Fatalf("%d of a's failures from before b's trip merged into the window it cleared", f)
	}

	// From there on, the new primary's changes are followed. a, having
	// seen b's trip, recovers: its close applies, though a's last change
	// on the old primary had a newer epoch.
	a.b.Probe(ctx)
	if err := a.b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	waitStored(t, c, key, "closed")
	waitSeen(t, a, c)
	// b catches up at its merge, then trips again: a follows its message.
	b.sync()
	if st := b.b.State(); st != breaker.StateHalfOpen {
		t.Fatalf("b after a's recovery: %v", st)
	}
	_ = b.b.Execute(ctx, func(context.Context) error { return errDown })
	deadline := time.Now().Add(5 * time.Second)
	for a.b.State() != breaker.StateOpen {
		if time.Now().After(deadline) {
			t.Fatalf("a did not follow b's second trip: %v", a.b.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// windowOf returns the successes and failures in s's shared window.
func windowOf(t *testing.T, s *Shared, c *redis.Client) (succ, fail int64) {
	t.Helper()
	ctx := context.Background()
	cur := c.Time(ctx).Val().UnixMilli() / s.bucketMs
	for i := range s.buckets + 1 {
		v := c.HMGet(ctx, s.base+":w:"+strconv.FormatInt(cur-i, 10), "s", "f").Val()
		for j, p := range []*int64{&succ, &fail} {
			if str, ok := v[j].(string); ok {
				n, err := strconv.ParseInt(str, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				*p += n
			}
		}
	}
	return succ, fail
}

// Redis comes back without its newest changes — restarted from a snapshot
// (RDB), or a replica promoted before it got them — holding a trip the
// instance saw and then recovered from. That trip is no news: the
// recovery superseded it, and Redis lost only the recovery. The merge
// takes the stored epoch, so that the changes made on that server from
// now on are followed, but must not reopen the instance for the rest of
// the old trip's delay (minutes, for an operator's trip), turning away
// every call to a dependency that has recovered.
func TestRestoredTripTheInstanceRecoveredFromIsNotApplied(t *testing.T) {
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: time.Minute, HalfOpenProbes: 1, Window: time.Minute}
	a, c := newIdleInstance(t, name, "a", cfg)
	ctx := context.Background()
	key := a.base + ":state"
	tripped := c.Time(ctx).Val().UnixMilli()
	if err := c.HSet(ctx, key, "state", "open", "until", tripped+10*60*1000, "epoch", tripped, "origin", "ops").Err(); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if st := a.b.State(); st != breaker.StateOpen {
		t.Fatalf("a after the trip: %v", st)
	}
	snapshot := c.HGetAll(ctx, key).Val()
	// The operator ends the trip early: a probes and recovers.
	a.b.Probe(ctx)
	if err := a.b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	waitStored(t, c, key, "closed")
	waitSeen(t, a, c)

	// Redis restarts from the snapshot.
	if err := c.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, key, snapshot).Err(); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if st, ra := a.b.State(), a.b.RetryAfter(); st != breaker.StateClosed {
		t.Fatalf("a after Redis lost its recovery: %v for %v, want closed", st, ra)
	}
	// a writes its recovery back (TestRestoredTripDoesNotTripInstancesStartedAfter)
	// and records its epoch.
	waitStored(t, c, key, "closed")
	waitSeen(t, a, c)
	// A change made on that server after the restart is followed.
	stored, err := c.HGet(ctx, key, "epoch").Int64()
	if err != nil {
		t.Fatal(err)
	}
	a.apply("open|" + strconv.FormatInt(stored+1, 10) + "|60000|b")
	if st := a.b.State(); st != breaker.StateOpen {
		t.Fatalf("a after a peer's trip on the restarted server: %v", st)
	}
}

// A recovery known only from its message may never have been stored:
// another deployment with the same Prefix and Name on another database of
// the same Redis server (Pub/Sub ignores databases) publishes its own. The
// merge finds the stored trip, which the instance saw before that message,
// but Redis never had the recovery: the stored trip is the shared state,
// and the instance opens again for the rest of its delay.
func TestUnstoredRecoveryDoesNotEndTheStoredTrip(t *testing.T) {
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: time.Minute, HalfOpenProbes: 1, Window: time.Minute}
	a, c := newIdleInstance(t, name, "a", cfg)
	ctx := context.Background()
	key := a.base + ":state"
	tripped := c.Time(ctx).Val().UnixMilli()
	if err := c.HSet(ctx, key, "state", "open", "until", tripped+10*60*1000, "epoch", tripped, "origin", "b").Err(); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if st := a.b.State(); st != breaker.StateOpen {
		t.Fatalf("a after the trip: %v", st)
	}
	a.apply("closed|" + strconv.FormatInt(tripped+5, 10) + "|0|other-deployment")
	if st := a.b.State(); st != breaker.StateHalfOpen {
		t.Fatalf("a after the other deployment's recovery: %v", st)
	}
	a.sync()
	if st, ra := a.b.State(), a.b.RetryAfter(); st != breaker.StateOpen || ra < 9*time.Minute {
		t.Fatalf("a after its merge: %v for %v, want open for the rest of the stored trip", st, ra)
	}
}

// Redis goes back to a trip the running instances have recovered from (a
// snapshot, a replica promoted without the recovery): they keep their
// state (TestRestoredTripTheInstanceRecoveredFromIsNotApplied), but the
// stored trip is all an instance that starts afterwards sees, and it cannot
// tell it from a trip made a moment ago: it would turn away every call to a
// healthy dependency for the rest of the old trip's delay. The running
// instance that finds its recovery lost writes it back over the stored
// trip: instances that start afterwards find it, and one that started in
// between and followed the stale trip probes at its next merge.
func TestRestoredTripDoesNotTripInstancesStartedAfter(t *testing.T) {
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: time.Minute, HalfOpenProbes: 1, Window: time.Minute}
	a, c := newIdleInstance(t, name, "a", cfg)
	ctx := context.Background()
	key := a.base + ":state"
	tripped := c.Time(ctx).Val().UnixMilli()
	if err := c.HSet(ctx, key, "state", "open", "until", tripped+10*60*1000, "epoch", tripped, "origin", "ops").Err(); err != nil {
		t.Fatal(err)
	}
	a.sync()
	snapshot := c.HGetAll(ctx, key).Val()
	a.b.Probe(ctx) // the operator ends the trip early: a probes and recovers
	if err := a.b.Execute(ctx, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	waitStored(t, c, key, "closed")
	waitSeen(t, a, c)

	// Redis restarts from the snapshot; b starts before a's next merge.
	if err := c.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, key, snapshot).Err(); err != nil {
		t.Fatal(err)
	}
	b, _ := newIdleInstance(t, name, "b", cfg)
	b.sync()
	if st := b.b.State(); st != breaker.StateOpen {
		t.Fatalf("b started on the restored trip: %v (it cannot tell it is stale)", st)
	}

	a.sync()
	if st := a.b.State(); st != breaker.StateClosed {
		t.Fatalf("a after Redis lost its recovery: %v, want closed", st)
	}
	waitStored(t, c, key, "closed") // a wrote its recovery back
	if o := c.HGet(ctx, key, "origin").Val(); o != "a" {
		t.Fatalf("stored recovery from %q, want a's", o)
	}

	// d starts after a's merge: it finds the recovery.
	d, _ := newIdleInstance(t, name, "d", cfg)
	d.sync()
	if st, ra := d.b.State(), d.b.RetryAfter(); st != breaker.StateClosed {
		t.Fatalf("d, started after the restore, is %v for %v: tripped by a trip every instance had recovered from", st, ra)
	}
	// b, which followed the stale trip, probes from its next merge.
	b.sync()
	if st := b.b.State(); st != breaker.StateHalfOpen {
		t.Fatalf("b after the written-back recovery: %v, want half_open", st)
	}
}

// A stored trip whose delay has passed on Redis's clock — restored from an
// old snapshot, long over — trips no instance that starts afterwards.
func TestStoredTripWhoseDelayPassedTripsNoOne(t *testing.T) {
	s, c, key, now := newIdle(t)
	ctx := context.Background()
	if err := c.HSet(ctx, key, "state", "open", "until", now-1, "epoch", now-60000, "origin", "b").Err(); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if st, ra := s.b.State(), s.b.RetryAfter(); st != breaker.StateClosed {
		t.Fatalf("after its first merge: %v for %v, want closed", st, ra)
	}
}

// logBuffer is a slog.Logger's output, safe to read while it is written.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A value at the state key that this package did not write — another
// program's, a hand edit, a unit mistake, garbage — must not be followed:
// a deadline in microseconds opened every instance that started for a year,
// a larger one overflowed the open delay, an epoch such as 1e300 became
// MinInt64 in the instance and "1e+300" in every message (which all
// instances then ignored). The scripts refuse it, changing nothing: each
// instance runs on its local breaker and logs why, once; the stored value
// is left for an operator to delete.
func TestCorruptSharedStateIsNotFollowed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		seed func(c *redis.Client, key string, now int64) error
	}{
		{"not a hash", func(c *redis.Client, key string, _ int64) error { return c.Set(ctx, key, "\xff\x00garbage", 0).Err() }},
		{"unknown state", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "half-open", "until", now+60000, "epoch", now, "origin", "x").Err()
		}},
		{"deadline in microseconds", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "open", "until", (now+60000)*1000, "epoch", now, "origin", "x").Err()
		}},
		{"deadline past int64 nanoseconds", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "open", "until", "9000000000000000", "epoch", now, "origin", "x").Err()
		}},
		{"deadline 1e300", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "open", "until", "1e300", "epoch", now, "origin", "x").Err()
		}},
		{"deadline not a number", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "open", "until", "soon", "epoch", now, "origin", "x").Err()
		}},
		{"epoch 1e300", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "open", "until", now+60000, "epoch", "1e300", "origin", "x").Err()
		}},
		{"negative epoch", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "open", "until", now+60000, "epoch", "-5", "origin", "x").Err()
		}},
		{"fractional epoch", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "state", "open", "until", now+60000, "epoch", "123.5", "origin", "x").Err()
		}},
		// A later format that this version must not read sets a format
		// version: this version neither follows nor overwrites it.
		{"newer format version", func(c *redis.Client, key string, now int64) error {
			return c.HSet(ctx, key, "v", "2", "state", "open", "until", now+60000, "epoch", now, "origin", "x").Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
			t.Cleanup(func() { c.Close() })
			const prefix = "sadpath-test:breaker:"
			name := uniqueName(t)
			key := prefix + "{" + name + "}:state"
			t.Cleanup(func() { c.Del(ctx, key) })
			now := c.Time(ctx).Val().UnixMilli()
			if err := tc.seed(c, key, now); err != nil {
				t.Fatal(err)
			}
			before := c.Dump(ctx, key).Val()
			// The instance starts over it: its first merge reads it.
			logs := &logBuffer{}
			s, err := New(Config{Client: c, Prefix: prefix, SyncInterval: time.Hour, InstanceID: "a",
				Breaker: breaker.Config{Name: name, DisableMetrics: true, MinCalls: 2, OpenTimeout: time.Minute,
					Logger: slog.New(slog.NewTextHandler(logs, nil))}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			deadline := time.Now().Add(5 * time.Second)
			for !s.merged.Load() && !strings.Contains(logs.String(), "breaker running locally") {
				if time.Now().After(deadline) {
					t.Fatal("the first merge neither succeeded nor failed")
				}
				time.Sleep(time.Millisecond)
			}
			if st, ra := s.b.State(), s.b.RetryAfter(); st != breaker.StateClosed {
				t.Fatalf("after its first merge over the corrupt state: %v for %v, want closed", st, ra)
			}
			if e := s.lastEpoch.Load(); e != 0 {
				t.Fatalf("recorded epoch %d from the corrupt state", e)
			}
			l := logs.String()
			if !strings.Contains(l, "breaker running locally") || !strings.Contains(l, key) {
				t.Fatalf("want a 'breaker running locally' decision naming %s, logs:\n%s", key, l)
			}
			opened := breaker.Transition{From: breaker.StateClosed, To: breaker.StateOpen, OpenFor: time.Minute}
			if err := s.publish(change{t: opened}); err == nil {
				t.Fatal("a trip was written over the corrupt state")
			}
			recovered := breaker.Transition{From: breaker.StateHalfOpen, To: breaker.StateClosed}
			if err := s.publish(change{t: recovered, seen: now}); err == nil {
				t.Fatal("a recovery was written over the corrupt state")
			}
			if after := c.Dump(ctx, key).Val(); after != before {
				t.Fatal("the corrupt state was changed")
			}
			if n := strings.Count(logs.String(), `msg="breaker running locally`); n != 1 {
				t.Fatalf("'breaker running locally' logged %d times, want once", n)
			}
		})
	}
}
