package redisstate_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/goleak"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/breaker/redisstate"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDown = contract.New(contract.KindUnavailable, "dep", "down")

// roundTrips counts the commands and pipelines a client sends: one each is a
// network round trip.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n.Add(1); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

func client(t *testing.T) (*redis.Client, *roundTrips) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	rt := &roundTrips{}
	c.AddHook(rt)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}
	return c, rt
}

// uniqueName keeps tests of this and other packages apart in the shared Redis.
func uniqueName(t *testing.T) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return "t-" + t.Name() + "-" + hex.EncodeToString(r[:])
}

const testPrefix = "sadpath-test:breaker:"

func newShared(t *testing.T, c redis.UniversalClient, name, id string, bc breaker.Config) *redisstate.Shared {
	t.Helper()
	bc.Name = name
	bc.DisableMetrics = true
	if bc.Window == 0 {
		bc.Window = time.Minute
	}
	s, err := redisstate.New(redisstate.Config{Client: c, Breaker: bc, Prefix: testPrefix,
		SyncInterval: 50 * time.Millisecond, InstanceID: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		c.Del(context.Background(), testPrefix+"{"+name+"}:state") // window buckets expire on their own
	})
	return s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// subscribed waits until n instances listen on name's channel.
func subscribed(t *testing.T, c redis.UniversalClient, name string, n int64) {
	t.Helper()
	channel := testPrefix + "{" + name + "}:events"
	eventually(t, "the instances are subscribed", func() bool {
		m, err := c.PubSubNumSub(context.Background(), channel).Result()
		return err == nil && m[channel] >= n
	})
}

// window returns the successes and failures in name's shared window.
func window(t *testing.T, c redis.UniversalClient, name string) (succ, fail int64) {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, testPrefix+"{"+name+"}:w:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		v, err := c.HMGet(ctx, k, "s", "f").Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range []*int64{&succ, &fail} {
			if str, ok := v[i].(string); ok {
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

func fail(b *breaker.Breaker) error {
	return b.Execute(context.Background(), func(context.Context) error { return errDown })
}

func ok(b *breaker.Breaker) error {
	return b.Execute(context.Background(), func(context.Context) error { return nil })
}

func TestTwoInstancesSeeEachOthersTripsAndRecovery(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: 300 * time.Millisecond, MaxOpenTimeout: 300 * time.Millisecond, HalfOpenProbes: 1}
	a := newShared(t, c, name, "a", cfg)
	b := newShared(t, c, name, "b", cfg)
	subscribed(t, c, name, 2)

	for range 4 {
		_ = fail(a.Breaker())
	}
	if st := a.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("a: %v", st)
	}
	eventually(t, "b sees a's trip", func() bool { return b.Breaker().State() == breaker.StateOpen })
	var ran bool
	err := b.Breaker().Execute(context.Background(), func(context.Context) error { ran = true; return nil })
	if ran || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("b let a call through: %v", err)
	}
	if ra := b.Breaker().RetryAfter(); ra <= 0 || ra > 300*time.Millisecond {
		t.Fatalf("b RetryAfter %v", ra)
	}
	// a recovers (probe succeeds); b follows by probing.
	eventually(t, "a's open delay ends", func() bool { return a.Breaker().State() == breaker.StateHalfOpen })
	if err := ok(a.Breaker()); err != nil {
		t.Fatal(err)
	}
	if st := a.Breaker().State(); st != breaker.StateClosed {
		t.Fatalf("a after probe: %v", st)
	}
	eventually(t, "b half-open or closed", func() bool { return b.Breaker().State() != breaker.StateOpen })
	if err := ok(b.Breaker()); err != nil {
		t.Fatal(err)
	}
	if st := b.Breaker().State(); st != breaker.StateClosed {
		t.Fatalf("b after probe: %v", st)
	}
	// And the other way round: b trips, a follows.
	for range 4 {
		_ = fail(b.Breaker())
	}
	eventually(t, "a sees b's trip", func() bool { return a.Breaker().State() == breaker.StateOpen })
}

func TestSharedWindowTripsWhatNoInstanceSeesAlone(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 10, FailureRatio: 0.5, OpenTimeout: time.Minute}
	a := newShared(t, c, name, "a", cfg)
	b := newShared(t, c, name, "b", cfg)
	for range 6 { // 6 < MinCalls on each instance
		_ = fail(a.Breaker())
		_ = fail(b.Breaker())
	}
	if a.Breaker().State() != breaker.StateClosed || b.Breaker().State() != breaker.StateClosed {
		t.Fatal("an instance tripped on its own counts")
	}
	eventually(t, "both trip on the shared window", func() bool {
		return a.Breaker().State() == breaker.StateOpen && b.Breaker().State() == breaker.StateOpen
	})
}

func TestClosedPathRoundTripsPerCall(t *testing.T) {
	c, rt := client(t)
	obs, _ := client(t) // the test's own look-ups, not counted in rt
	name := uniqueName(t)
	s := newShared(t, c, name, "a", breaker.Config{MinCalls: 1000})
	subscribed(t, obs, name, 1)
	const calls = 20000
	// The instance's first merge may still be on its way: counted here, it
	// only makes the bound below stricter.
	before := rt.n.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls / 4 {
				if err := ok(s.Breaker()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Every call's count reaches the shared window: waiting for that, not
	// for a fixed time, proves the counts are shared (no merge at all, or
	// the first merge alone, cannot pass) and includes the last merge in n.
	eventually(t, "every call is merged into the shared window", func() bool {
		succ, _ := window(t, obs, name)
		return succ >= calls
	})
	n := rt.n.Load() - before
	if succ, fail := window(t, obs, name); succ != calls || fail != 0 {
		t.Fatalf("shared window holds %d successes, %d failures; want %d, 0", succ, fail, calls)
	}
	perCall := float64(n) / calls
	t.Logf("ours: %d Redis round trips for %d closed-state calls in %v: %.4f per call", n, calls, time.Since(start), perCall)
	if perCall > 1 {
		t.Fatalf("%.3f round trips per call, want <= 1", perCall)
	}
}

// gobreaker's own distributed breaker on the same Redis, for comparison.
func TestGobreakerDistributedRoundTripsPerCall(t *testing.T) {
	c, rt := client(t)
	store, err := redisstate.NewGobreakerStore(c, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dcb, err := gobreaker.NewDistributedCircuitBreaker[int](store, gobreaker.Settings{Name: testPrefix + uniqueName(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Del(context.Background(), "gobreaker:state:"+dcb.Name()) })
	const calls = 200
	before := rt.n.Load()
	for range calls {
		if _, err := dcb.Execute(func() (int, error) { return 1, nil }); err != nil {
			t.Fatal(err)
		}
	}
	perCall := float64(rt.n.Load()-before) / calls
	t.Logf("gobreaker DistributedCircuitBreaker: %.2f Redis round trips per closed-state call (lock held across the call)", perCall)
	if perCall < 4 {
		t.Fatalf("expected gobreaker's get+lock+set+unlock per call, measured %.2f", perCall)
	}
	// The lock really is held while the function runs.
	held := false
	_, _ = dcb.Execute(func() (int, error) {
		n, _ := c.Exists(context.Background(), "gobreaker:mutex:"+dcb.Name()).Result()
		held = n == 1
		return 0, nil
	})
	if !held {
		t.Fatal("expected gobreaker to hold its lock during the call")
	}
}

// A Redis that accepts connections and never answers: every call must still
// go through the local breaker without waiting, and it still trips locally.
func TestRedisUnreachableFailsOpenWithoutBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	conns.Add(1)
	go func() {
		defer conns.Done()
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, cn) // never answered
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		conns.Wait()
		mu.Lock()
		for _, cn := range open {
			cn.Close()
		}
		mu.Unlock()
	}()
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, ReadTimeout: 200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	s, err := redisstate.New(redisstate.Config{Client: c, Prefix: testPrefix, SyncInterval: 20 * time.Millisecond,
		Timeout: 100 * time.Millisecond,
		Breaker: breaker.Config{Name: "down", MinCalls: 5, DisableMetrics: true, Window: time.Minute,
			Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10000 {
			_ = ok(s.Breaker())
		}
		for range 10 {
			_ = fail(s.Breaker())
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a call that waited on Redis would take >= 100ms each
		t.Fatal("calls blocked on an unreachable Redis")
	}
	// 10 failures after 10000 successes: 10/10010 < 0.5, closed; now fail alone.
	b2 := s.Breaker()
	if b2.State() != breaker.StateClosed {
		t.Fatalf("state %v", b2.State())
	}
	eventually(t, "the unreachable store is logged", func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Contains(logs.String(), "breaker running locally: shared state unavailable")
	})
	// The local breaker still trips on its own.
	bb := newLocalOnlyTrip(t, c)
	if bb.State() != breaker.StateOpen {
		t.Fatalf("local trip with Redis down: %v", bb.State())
	}
}

func newLocalOnlyTrip(t *testing.T, c redis.UniversalClient) *breaker.Breaker {
	s, err := redisstate.New(redisstate.Config{Client: c, Prefix: testPrefix, Timeout: 50 * time.Millisecond,
		Breaker: breaker.Config{Name: "down2", MinCalls: 3, DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for range 3 {
		_ = fail(s.Breaker())
	}
	return s.Breaker()
}

func TestHostileMessagesAreIgnored(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	s, err := redisstate.New(redisstate.Config{Client: c, Prefix: testPrefix, SyncInterval: time.Hour,
		Breaker: breaker.Config{Name: name, DisableMetrics: true,
			Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	subscribed(t, c, name, 1)
	channel := testPrefix + "{" + name + "}:events"
	for _, m := range []string{"", "open", "open|x|1|a", "open|1|-5|a", "open|1|0|a", "half|1|1|a",
		"open|1|99999999999999|a", strings.Repeat("z", 10000)} {
		if err := c.Publish(context.Background(), channel, m).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A valid one last: once it applied, the bad ones were read before it.
	if err := c.Publish(context.Background(), channel, "open|1000000|60000|peer").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the valid message applies", func() bool { return s.Breaker().State() == breaker.StateOpen })
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), `msg="breaker ignored shared message"`); n != 8 {
		t.Fatalf("%d bad messages logged, want 8:\n%s", n, logs.String())
	}
}

// A peer's "open" message that never reached the shared state — forged,
// garbled, from another deployment on the same prefix — may ask for up to a
// year, beyond MaxOpenTimeout (open delays from peers are not clamped: an
// operator's hour-long Trip must reach every instance). The merge ends such
// a trip, and the breaker probes again. A real trip is stored before it is
// published, so the merges keep it.
func TestPeerTripMissingFromSharedStateEnds(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	ca := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	t.Cleanup(func() { ca.Close() })
	scripts := &completedScripts{}
	ca.AddHook(scripts)
	// The open state may last less than one merge (50ms): seen through
	// OnStateChange, not by polling State, which a loaded machine may not
	// schedule within it.
	var opened atomic.Bool
	a := newShared(t, ca, name, "a", breaker.Config{OpenTimeout: 100 * time.Millisecond, MaxOpenTimeout: 200 * time.Millisecond,
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			if tr.To == breaker.StateOpen {
				opened.Store(true)
			}
		}})
	subscribed(t, c, name, 1)
	now, err := c.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	year := (365 * 24 * time.Hour).Milliseconds()
	msg := "open|" + strconv.FormatInt(now.UnixMilli(), 10) + "|" + strconv.FormatInt(year, 10) + "|peer"
	if err := c.Publish(context.Background(), testPrefix+"{"+name+"}:events", msg).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a follows the message", opened.Load)
	eventually(t, "a merge ends the trip no one stored", func() bool { return a.Breaker().State() != breaker.StateOpen })
	if st := a.Breaker().State(); st != breaker.StateHalfOpen {
		t.Fatalf("after the merge: %v, want half_open (probing)", st)
	}

	// A real trip for a minute, by instance b: a follows it, and its
	// merges (every 50ms) keep it.
	b := newShared(t, c, name, "b", breaker.Config{MinCalls: 4, OpenTimeout: time.Minute})
	subscribed(t, c, name, 2)
	for range 4 {
		_ = fail(b.Breaker())
	}
	eventually(t, "a follows b's trip", func() bool { return a.Breaker().State() == breaker.StateOpen })
	// a's scripts are merges alone now (a peer's trip is not shared
	// again). The one in flight may have read the shared state before b's
	// trip; those after it read the trip, and each is applied before the
	// next one starts: two are applied once four more scripts completed.
	n := scripts.n.Load()
	eventually(t, "two of a's merges read b's trip", func() bool { return scripts.n.Load() >= n+4 })
	if st, ra := a.Breaker().State(), a.Breaker().RetryAfter(); st != breaker.StateOpen || ra < 30*time.Second {
		t.Fatalf("a, two merges after b's trip: %v for %v, want open for the rest of b's minute", st, ra)
	}
}

// completedScripts counts the script calls a client completed without an
// error (an EVALSHA refused with NOSCRIPT, then sent again as EVAL, counts
// once).
type completedScripts struct{ n atomic.Int64 }

func (s *completedScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (s *completedScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			s.n.Add(1)
		}
		return err
	}
}
func (s *completedScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// The user's OnStateChange hook panics on a trip (a bug in the alerting
// code). The panic reaches the goroutine that tripped the breaker, as
// package breaker documents, but the trip is still shared: Shared's part of
// the hook runs even so. Likewise a panicking OnCall still has its call
// counted.
func TestPanickingUserHookStillShares(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	var armChange, armCall atomic.Bool
	armChange.Store(true)
	armCall.Store(true)
	a := newShared(t, c, name, "a", breaker.Config{MinCalls: 100, OpenTimeout: time.Minute,
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			if tr.To == breaker.StateOpen && armChange.CompareAndSwap(true, false) {
				panic("alerting bug")
			}
		},
		OnCall: func(context.Context, breaker.Outcome) {
			if armCall.CompareAndSwap(true, false) {
				panic("metrics bug")
			}
		}})
	b := newShared(t, c, name, "b", breaker.Config{MinCalls: 100, OpenTimeout: time.Minute})
	subscribed(t, c, name, 2)
	panics := func(f func()) (r any) {
		defer func() { r = recover() }()
		f()
		return nil
	}
	if r := panics(func() { _ = ok(a.Breaker()) }); r != "metrics bug" {
		t.Fatalf("OnCall's panic: %v", r)
	}
	eventually(t, "the call is merged", func() bool {
		s, _ := window(t, c, name)
		return s == 1
	})
	// An operator isolates the dependency: shared with every instance.
	if r := panics(func() { a.Breaker().Trip(context.Background(), time.Minute, "isolating payments-gateway") }); r != "alerting bug" {
		t.Fatalf("OnStateChange's panic: %v", r)
	}
	if st := a.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("a: %v", st)
	}
	eventually(t, "b follows a's trip", func() bool { return b.Breaker().State() == breaker.StateOpen })
}

// childEnv names the test a child process of the test binary runs.
const childEnv = "REDISSTATE_TEST_CHILD"

// runInChild runs t's test again in a child process of the test binary
// (with childEnv set to its name, so that it runs its body) and fails when
// the child fails, crashes or does not run it. A test that could crash the
// process runs so, lest a crash kill the whole test binary.
func runInChild(t *testing.T) {
	t.Helper()
	addr := testenv.RedisAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=90s")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), testenv.EnvRedisAddr+"="+addr)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name()+" ")) {
		if len(out) > 8000 {
			out = append(out[:4000:4000], append([]byte("\n[…]\n"), out[len(out)-4000:]...)...)
		}
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

// A peer's trip is applied on Shared's own goroutines: the subscription
// (from the message) and the merge loop (from the stored state). A user
// hook that panics there must not crash the process — every instance gets
// the same message: the whole fleet would crash at once, and again at
// restart. The panic is logged, with the breaker's name, and both
// goroutines go on applying the shared state.
func TestPanickingHookInTheBackgroundIsLogged(t *testing.T) {
	if os.Getenv(childEnv) != t.Name() {
		runInChild(t)
		return
	}
	c, _ := client(t)
	ctx := context.Background()
	var logs bytes.Buffer
	var mu sync.Mutex
	logged := func(s string) int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), s)
	}
	cfg := func(name string) breaker.Config {
		return breaker.Config{Name: name, DisableMetrics: true, Window: time.Minute,
			Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)),
			OnStateChange: func(_ context.Context, tr breaker.Transition) {
				if tr.To == breaker.StateOpen {
					panic("alerting bug")
				}
			}}
	}
	store := func(name, state string, after int64) int64 { // a change newer than epoch after
		now := max(c.Time(ctx).Val().UnixMilli(), after+1)
		if err := c.HSet(ctx, testPrefix+"{"+name+"}:state", "state", state, "until", now+60000, "epoch", now, "origin", "peer").Err(); err != nil {
			t.Fatal(err)
		}
		return now
	}
	const panicked = `msg="breaker hook failed in the background"`

	// The subscription: a peer's trip, stored and published. No merge
	// for an hour: the message applies it.
	name := uniqueName(t)
	s, err := redisstate.New(redisstate.Config{Client: c, Prefix: testPrefix, SyncInterval: time.Hour, InstanceID: "a", Breaker: cfg(name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); c.Del(ctx, testPrefix+"{"+name+"}:state") })
	subscribed(t, c, name, 1)
	epoch := store(name, "open", 0)
	c.Publish(ctx, testPrefix+"{"+name+"}:events", "open|"+strconv.FormatInt(epoch, 10)+"|60000|peer")
	eventually(t, "the panic is logged", func() bool { return logged(panicked) == 1 })
	if st := s.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("after the peer's trip: %v", st)
	}
	if logged("alerting bug") != 1 || logged("dependency="+name) < 2 {
		t.Fatalf("log:\n%s", logs.String())
	}
	epoch = store(name, "closed", epoch)
	c.Publish(ctx, testPrefix+"{"+name+"}:events", "closed|"+strconv.FormatInt(epoch, 10)+"|0|peer")
	eventually(t, "the subscription still applies messages", func() bool { return s.Breaker().State() == breaker.StateHalfOpen })

	// The merge loop: the peer's trip is stored when the instance starts;
	// its first merge applies it.
	name = uniqueName(t)
	epoch = store(name, "open", 0)
	s2, err := redisstate.New(redisstate.Config{Client: c, Prefix: testPrefix, SyncInterval: 20 * time.Millisecond, InstanceID: "a", Breaker: cfg(name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close(); c.Del(ctx, testPrefix+"{"+name+"}:state") })
	eventually(t, "the panic is logged", func() bool { return logged(panicked) == 2 })
	if st := s2.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("after the merge: %v", st)
	}
	store(name, "closed", epoch)
	eventually(t, "the merge loop still applies the shared state", func() bool { return s2.Breaker().State() == breaker.StateHalfOpen })
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestConfigValidation(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tc := range []struct {
		cfg   redisstate.Config
		field string
	}{
		{redisstate.Config{Breaker: breaker.Config{Name: "x"}}, "Config.Client"},
		{redisstate.Config{Client: (*redis.Client)(nil), Breaker: breaker.Config{Name: "x"}}, "Config.Client"},
		{redisstate.Config{Client: c, SyncInterval: -1, Breaker: breaker.Config{Name: "x"}}, "Config.SyncInterval"},
		{redisstate.Config{Client: c, Timeout: -1, Breaker: breaker.Config{Name: "x"}}, "Config.Timeout"},
		{redisstate.Config{Client: c, InstanceID: "a|b", Breaker: breaker.Config{Name: "x"}}, "Config.InstanceID"},
		// A brace in the prefix takes over the {name} hash tag: "{}" makes
		// it empty, so one breaker's keys spread over Redis Cluster slots
		// and its scripts fail with CROSSSLOT.
		{redisstate.Config{Client: c, Prefix: "app{}:", Breaker: breaker.Config{Name: "x"}}, "Config.Prefix"},
		{redisstate.Config{Client: c, Prefix: "app{", Breaker: breaker.Config{Name: "x"}}, "Config.Prefix"},
		{redisstate.Config{Client: c, Prefix: "app}", Breaker: breaker.Config{Name: "x"}}, "Config.Prefix"},
		{redisstate.Config{Client: c}, "Config.Name"},
		{redisstate.Config{Client: c, Breaker: breaker.Config{Name: "x", FailureRatio: 2}}, "Config.FailureRatio"},
	} {
		_, err := redisstate.New(tc.cfg)
		if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("want invalid %s, got %v", tc.field, err)
		}
	}
}

// An instance that starts (or reconnects) after a trip was published learns
// it from the shared state on its first merge.
func TestLateInstanceCatchesUpFromSharedState(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 3, OpenTimeout: time.Minute}
	a := newShared(t, c, name, "a", cfg)
	for range 3 {
		_ = fail(a.Breaker())
	}
	if a.Breaker().State() != breaker.StateOpen {
		t.Fatal("a did not trip")
	}
	// Wait until a's trip is stored, then start b: it never saw the message.
	eventually(t, "a's trip is stored", func() bool {
		st, _ := c.HGet(context.Background(), testPrefix+"{"+name+"}:state", "state").Result()
		return st == "open"
	})
	b := newShared(t, c, name, "b", cfg)
	eventually(t, "b catches up", func() bool { return b.Breaker().State() == breaker.StateOpen })
	if ra := b.Breaker().RetryAfter(); ra <= 30*time.Second || ra > time.Minute {
		t.Fatalf("b open for %v, want the remainder of a's minute", ra)
	}
}

// A trip clears the shared window, and the counts merged before it or
// counted locally before it are not merged after it: once the breaker has
// recovered, the failures that tripped it cannot trip it again.
func TestFailuresBeforeATripDoNotRetripTheRecovery(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	var mu sync.Mutex
	var path []string
	s := newShared(t, c, name, "a", breaker.Config{MinCalls: 4, HalfOpenProbes: 1,
		OpenTimeout: 100 * time.Millisecond, MaxOpenTimeout: 100 * time.Millisecond,
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			mu.Lock()
			path = append(path, tr.From.String()+">"+tr.To.String()+" ("+tr.Reason+")")
			mu.Unlock()
		}})
	b := s.Breaker()
	for range 3 {
		_ = fail(b)
	}
	eventually(t, "3 failures are merged, below MinCalls", func() bool {
		_, f := window(t, c, name)
		return f == 3
	})
	_ = fail(b) // the 4th trips the local breaker, which publishes the trip
	if st := b.State(); st != breaker.StateOpen {
		t.Fatalf("local breaker %v", st)
	}
	eventually(t, "the open delay ends", func() bool { return b.State() == breaker.StateHalfOpen })
	if err := ok(b); err != nil {
		t.Fatal(err)
	}
	if st := b.State(); st != breaker.StateClosed {
		t.Fatalf("after the probe: %v", st)
	}
	// The merge of the probe's success is the one that would re-trip on
	// stale failures (a trip by the shared window would clear it again).
	eventually(t, "the window holds the probe's success alone", func() bool {
		succ, f := window(t, c, name)
		return succ == 1 && f == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if b.State() != breaker.StateClosed || len(path) != 3 {
		t.Fatalf("state %v, transitions:\n%s", b.State(), strings.Join(path, "\n"))
	}
}

// ForceClosed lets calls through uncounted: they must not reach the shared
// window and trip the other instances.
func TestForcedClosedCallsDoNotTripPeers(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	cfg := breaker.Config{MinCalls: 4, OpenTimeout: time.Minute, HalfOpenProbes: 1}
	a := newShared(t, c, name, "a", cfg)
	b := newShared(t, c, name, "b", cfg)
	subscribed(t, c, name, 2)
	ctx := context.Background()
	a.Breaker().ForceClosed(ctx, "operator: failures expected during migration")
	for range 4 {
		_ = fail(a.Breaker())
	}
	a.Breaker().Reset(ctx)
	// A counted call after them: once it is merged, so would they have been.
	if err := ok(a.Breaker()); err != nil {
		t.Fatalf("a after Reset: %v", err)
	}
	eventually(t, "a's counted call is merged", func() bool {
		s, _ := window(t, c, name)
		return s == 1
	})
	if _, f := window(t, c, name); f != 0 {
		t.Fatalf("%d forced-closed failures in the shared window", f)
	}
	if st := b.Breaker().State(); st != breaker.StateClosed {
		t.Fatalf("b is %v", st)
	}
}

// Redis loses the shared state (a restart without persistence, a failover to
// a lagging replica, FLUSHDB): the epochs of the changes after it must still
// be newer than those the instances saw before it.
func TestEpochsKeepGrowingAfterSharedStateLoss(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	ctx := context.Background()
	key := testPrefix + "{" + name + "}:state"
	// The shared state has changed up to now, and a has read its epoch.
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	c.HSet(ctx, key, "state", "closed", "until", 0, "epoch", now.UnixMilli(), "origin", "x")
	a := newShared(t, c, name, "a", breaker.Config{MinCalls: 2, HalfOpenProbes: 1})
	if err := ok(a.Breaker()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a merged (and read the state) after its call", func() bool {
		s, _ := window(t, c, name)
		return s == 1
	})
	c.Del(ctx, key) // Redis loses the state

	b := newShared(t, c, name, "b", breaker.Config{MinCalls: 2, OpenTimeout: time.Minute, HalfOpenProbes: 1})
	subscribed(t, c, name, 2)
	_ = fail(b.Breaker())
	_ = fail(b.Breaker()) // b trips for a minute and publishes it
	if st := b.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("b: %v", st)
	}
	eventually(t, "a follows b's trip", func() bool { return a.Breaker().State() == breaker.StateOpen })
	epoch, err := c.HGet(ctx, key, "epoch").Int64()
	if err != nil || epoch <= now.UnixMilli() {
		t.Fatalf("epoch after the loss %d (%v), want > %d", epoch, err, now.UnixMilli())
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Calls that started before the local breaker tripped and fail after it are
// discarded by the local breaker (they belong to the state before) and are
// not shared either: merged after the trip cleared the shared window, they
// would trip the breaker again once it has recovered.
func TestCallsInFlightAcrossATripAreNotShared(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	clock := &fakeClock{t: time.Now()}
	var mu sync.Mutex
	var path []string
	s := newShared(t, c, name, "a", breaker.Config{MinCalls: 4, HalfOpenProbes: 1, OpenTimeout: time.Minute, Clock: clock,
		OnStateChange: func(_ context.Context, tr breaker.Transition) {
			mu.Lock()
			path = append(path, tr.From.String()+">"+tr.To.String()+" ("+tr.Reason+")")
			mu.Unlock()
		}})
	b := s.Breaker()
	// 4 calls in flight, slow to fail (a dependency timing out)...
	release := make(chan struct{})
	var started, done sync.WaitGroup
	for range 4 {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			_ = b.Execute(context.Background(), func(context.Context) error {
				started.Done()
				<-release
				return errDown
			})
		}()
	}
	started.Wait()
	// ...while 4 quick failures trip the breaker.
	for range 4 {
		_ = fail(b)
	}
	if st := b.State(); st != breaker.StateOpen {
		t.Fatalf("local breaker %v", st)
	}
	eventually(t, "the trip is stored", func() bool {
		st, _ := c.HGet(context.Background(), testPrefix+"{"+name+"}:state", "state").Result()
		return st == "open"
	})
	close(release) // the in-flight calls fail now, after the trip
	done.Wait()

	clock.Advance(time.Minute)
	if err := ok(b); err != nil { // the probe
		t.Fatal(err)
	}
	if st := b.State(); st != breaker.StateClosed {
		t.Fatalf("after the probe: %v", st)
	}
	// The in-flight failures were counted before the probe's success: had
	// they been shared, they would be merged by now too.
	eventually(t, "the probe's success is merged", func() bool {
		succ, _ := window(t, c, name)
		return succ == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if _, f := window(t, c, name); f != 0 || b.State() != breaker.StateClosed || len(path) != 3 {
		t.Fatalf("%d failures of calls that started before the trip in the shared window; state %v, transitions:\n%s",
			f, b.State(), strings.Join(path, "\n"))
	}
}

// A well-formed message whose epoch is far ahead of the instance's clock
// (garbled or hostile) is a bad message: recorded, it would make every later
// epoch (Redis's time in ms) look old, and the instance would ignore every
// trip of its peers, from messages and from the merge alike.
func TestMessageWithEpochFarAheadIsIgnored(t *testing.T) {
	c, _ := client(t)
	name := uniqueName(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	cfg := breaker.Config{MinCalls: 2, OpenTimeout: time.Minute, HalfOpenProbes: 1,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}
	a := newShared(t, c, name, "a", cfg)
	cfg.Logger = nil
	b := newShared(t, c, name, "b", cfg)
	subscribed(t, c, name, 2)
	channel := testPrefix + "{" + name + "}:events"
	if err := c.Publish(context.Background(), channel, "closed|9223372036854775807|0|garbled").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a rejects the message", func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Contains(logs.String(), `msg="breaker ignored shared message"`) &&
			strings.Contains(logs.String(), "epoch ahead of this instance's clock")
	})
	_ = fail(b.Breaker())
	_ = fail(b.Breaker()) // b trips for a minute and publishes it
	if st := b.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("b: %v", st)
	}
	eventually(t, "a follows b's trip", func() bool { return a.Breaker().State() == breaker.StateOpen })
}

// slowScripts holds every script call while paused (Redis slow), and says
// so on held.
type slowScripts struct {
	mu   sync.Mutex
	gate chan struct{} // nil: not paused
	held chan struct{} // 1-buffered: a script call waits at the gate
}

func (s *slowScripts) pause() {
	s.mu.Lock()
	s.gate = make(chan struct{})
	s.mu.Unlock()
}

func (s *slowScripts) resume() {
	s.mu.Lock()
	close(s.gate)
	s.gate = nil
	s.mu.Unlock()
}

func (s *slowScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (s *slowScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.mu.Lock()
		g := s.gate
		s.mu.Unlock()
		if g != nil && strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			select {
			case s.held <- struct{}{}:
			default:
			}
			select {
			case <-g:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return next(ctx, cmd)
	}
}
func (s *slowScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// While Redis is slow the local changes pile up faster than they are
// published: the newest must be the one shared. Here the dependency flaps
// (20 changes) and then an operator trips the breaker for an hour; once Redis
// is fast again the peers follow the hour-long trip.
func TestNewestLocalChangeIsSharedWhenRedisIsSlow(t *testing.T) {
	c, _ := client(t)
	slow := &slowScripts{held: make(chan struct{}, 1)}
	ca := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	ca.AddHook(slow)
	t.Cleanup(func() { ca.Close() })
	name := uniqueName(t)
	clock := &fakeClock{t: time.Now()}
	a, err := redisstate.New(redisstate.Config{Client: ca, Prefix: testPrefix, SyncInterval: 50 * time.Millisecond,
		Timeout: 10 * time.Second,
		Breaker: breaker.Config{Name: name, DisableMetrics: true, Window: time.Minute, MinCalls: 1, HalfOpenProbes: 1,
			OpenTimeout: 10 * time.Millisecond, MaxOpenTimeout: 10 * time.Millisecond, Clock: clock}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := newShared(t, c, name, "b", breaker.Config{MinCalls: 100, OpenTimeout: time.Minute})
	subscribed(t, c, name, 2)

	slow.pause()
	<-slow.held    // a's loop is stuck in a merge
	for range 10 { // the dependency flaps: 20 changes to publish
		_ = fail(a.Breaker())
		clock.Advance(time.Second)
		_ = ok(a.Breaker())
	}
	a.Breaker().Trip(context.Background(), time.Hour, "operator: maintenance")
	slow.resume()

	eventually(t, "b follows a's hour-long trip", func() bool {
		return b.Breaker().State() == breaker.StateOpen && b.Breaker().RetryAfter() > 59*time.Minute
	})
	if st := a.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("a is %v", st)
	}
}

// Close while a merge waits on Redis cancels it: that is the instance
// shutting down, not Redis failing, and must not be logged as an outage
// ("running locally") on every deploy.
func TestCloseDuringAMergeLogsNoOutage(t *testing.T) {
	c, _ := client(t)
	slow := &slowScripts{held: make(chan struct{}, 1)}
	ca := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	ca.AddHook(slow)
	t.Cleanup(func() { ca.Close() })
	name := uniqueName(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	slow.pause()
	a, err := redisstate.New(redisstate.Config{Client: ca, Prefix: testPrefix, Timeout: time.Hour,
		Breaker: breaker.Config{Name: name, DisableMetrics: true, Window: time.Minute,
			Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))}})
	if err != nil {
		t.Fatal(err)
	}
	subscribed(t, c, name, 1)
	<-slow.held // the first merge waits on Redis
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	slow.resume()
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(logs.String(), "running locally") {
		t.Fatalf("Close logged an outage:\n%s", logs.String())
	}
}

// failingScripts fails every script call while down, as a Redis blip does,
// and counts the failed runs of openScript (4 arguments: 8 with EVALSHA,
// its hash, the key count and the key).
type failingScripts struct {
	down        atomic.Bool
	failedOpens atomic.Int64
}

func (f *failingScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failingScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.down.Load() && strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			if len(cmd.Args()) == 8 {
				f.failedOpens.Add(1)
			}
			err := errors.New("connection reset by peer")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (f *failingScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A trip made while Redis blips is still shared once Redis is back: the
// peers open for what remains of the delay instead of never hearing of it.
func TestTripMadeWhileRedisBlipsIsSharedWhenBack(t *testing.T) {
	c, _ := client(t)
	blip := &failingScripts{}
	ca := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	ca.AddHook(blip)
	t.Cleanup(func() { ca.Close() })
	name := uniqueName(t)
	a, err := redisstate.New(redisstate.Config{Client: ca, Prefix: testPrefix, SyncInterval: 20 * time.Millisecond,
		Breaker: breaker.Config{Name: name, DisableMetrics: true, Window: time.Minute, MinCalls: 4, OpenTimeout: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := newShared(t, c, name, "b", breaker.Config{MinCalls: 100, OpenTimeout: time.Minute})
	subscribed(t, c, name, 2)

	blip.down.Store(true)
	for range 4 {
		_ = fail(a.Breaker())
	}
	if st := a.Breaker().State(); st != breaker.StateOpen {
		t.Fatalf("a: %v", st)
	}
	eventually(t, "a's publish of its trip fails", func() bool { return blip.failedOpens.Load() > 0 })
	blip.down.Store(false)
	eventually(t, "b follows a's trip", func() bool {
		return b.Breaker().State() == breaker.StateOpen && b.Breaker().RetryAfter() > 59*time.Minute
	})
}

// stalledScripts holds every script call until released, ignoring its
// context: what go-redis does while it waits for a reply (it honours no
// cancel there, and no deadline without ContextTimeoutEnabled).
type stalledScripts struct {
	release chan struct{}
	held    chan struct{} // 1-buffered: a script call is held
}

func (s *stalledScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (s *stalledScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.HasPrefix(strings.ToLower(cmd.Name()), "eval") {
			select {
			case s.held <- struct{}{}:
			default:
			}
			<-s.release
		}
		return next(ctx, cmd)
	}
}
func (s *stalledScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A merge stuck on a stalled Redis is bounded by Config.Timeout, and Close
// does not wait for it: a shutdown is not held for ReadTimeout per attempt
// (about 10 s with go-redis's defaults), or forever with ReadTimeout -1.
func TestCloseDoesNotWaitForAStalledRedis(t *testing.T) {
	c, _ := client(t)
	stall := &stalledScripts{release: make(chan struct{}), held: make(chan struct{}, 1)}
	ca := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	ca.AddHook(stall)
	t.Cleanup(func() { ca.Close() })
	name := uniqueName(t)
	a, err := redisstate.New(redisstate.Config{Client: ca, Prefix: testPrefix, Timeout: time.Hour,
		Breaker: breaker.Config{Name: name, DisableMetrics: true, Window: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer close(stall.release) // the abandoned call ends when Redis answers
	subscribed(t, c, name, 1)
	<-stall.held // the first merge waits on Redis
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a merge stuck on a stalled Redis")
	}
}

// Close returns even while the subscription's handshake waits on a Redis
// that accepts connections and never answers (go-redis ignores a cancel
// there and holds the subscription's lock).
func TestCloseDoesNotWaitForAStalledSubscription(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{}, 16)
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, cn) // never answered
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	defer func() { // the abandoned commands end when their connections do
		ln.Close()
		mu.Lock()
		for _, cn := range conns {
			cn.Close()
		}
		mu.Unlock()
	}()
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: -1, MaxRetries: -1})
	defer c.Close()
	s, err := redisstate.New(redisstate.Config{Client: c, Prefix: testPrefix, Timeout: 50 * time.Millisecond,
		Breaker: breaker.Config{Name: "stalled", DisableMetrics: true}})
	if err != nil {
		t.Fatal(err)
	}
	<-accepted // the merge's connection and the subscription's
	<-accepted
	closed := make(chan struct{})
	go func() { _ = s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for a subscription stuck on a stalled Redis")
	}
}

// NewGobreakerStore refuses a nil client (it panicked at the first Lock) and
// a negative lockTTL, naming them; a held lock is ErrLocked.
func TestGobreakerStoreConfigAndLocked(t *testing.T) {
	unused := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = unused.Close() })
	for name, tc := range map[string]struct {
		c   redis.UniversalClient
		ttl time.Duration
	}{
		"nil client":        {nil, time.Second},
		"nil *redis.Client": {(*redis.Client)(nil), time.Second},
		"negative lockTTL":  {unused, -time.Second},
	} {
		s, err := redisstate.NewGobreakerStore(tc.c, tc.ttl)
		if s != nil || !errors.Is(err, contract.ErrInvalid) {
			t.Errorf("%s: NewGobreakerStore = %v, %v; want a config.invalid error", name, s, err)
		}
	}
	c, _ := client(t)
	a, err := redisstate.NewGobreakerStore(c, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := redisstate.NewGobreakerStore(c, time.Second)
	lock := testPrefix + uniqueName(t) + ":lock"
	if err := a.Lock(lock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Unlock(lock) })
	if err := b.Lock(lock); !errors.Is(err, redisstate.ErrLocked) {
		t.Fatalf("second holder: %v, want ErrLocked", err)
	}
}
