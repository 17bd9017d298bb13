package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
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
	c = redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { c.Close() })
	skip := &skipFirstScript{done: make(chan struct{})}
	c.AddHook(skip)
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := "t-" + t.Name() + "-" + hex.EncodeToString(r[:])
	s, err := New(Config{Client: c, Prefix: "sadpath-test:breaker:", SyncInterval: time.Hour, InstanceID: "a",
		Breaker: breaker.Config{Name: name, DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	key = s.base + ":state"
	t.Cleanup(func() {
		s.Close()
		c.Del(context.Background(), key)
	})
	<-skip.done // the loop's first merge failed: it applies nothing
	tm, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatalf("redis: %v", err)
	}
	return s, c, key, tm.UnixMilli()
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
