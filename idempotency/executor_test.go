package idempotency_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

type payment struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
}

type execEnv struct {
	clk   *storetest.FakeClock
	store *idempotency.MemoryStore
	fault *faultyStore
	meter *countingMeter
	logs  *bytes.Buffer
	ex    *idempotency.Executor
}

func newExec(t *testing.T, mod func(*idempotency.Config)) *execEnv {
	t.Helper()
	env := &execEnv{clk: storetest.NewFakeClock(epoch), meter: newCountingMeter(), logs: &bytes.Buffer{}}
	env.store = newMemory(t, idempotency.MemoryConfig{Clock: env.clk})
	env.fault = &faultyStore{Store: env.store}
	cfg := idempotency.Config{
		Store:         env.fault,
		Clock:         env.clk,
		MeterProvider: env.meter,
		Logger:        slog.New(slog.NewJSONHandler(&lockedWriter{w: env.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	ex, err := idempotency.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.ex = ex
	return env
}

var k1 = idempotency.Key{Scope: "tenant-1", Key: "order-secret-key-123"}

func TestDoRunsOnceThenReplays(t *testing.T) {
	env := newExec(t, nil)
	var runs atomic.Int32
	fn := func(context.Context) (payment, error) {
		runs.Add(1)
		return payment{ID: "pay_1", Amount: 1250}, nil
	}
	ctx := context.Background()
	first, err := idempotency.Do(ctx, env.ex, k1, "fp", fn)
	if err != nil || first != (payment{ID: "pay_1", Amount: 1250}) {
		t.Fatalf("first Do: %+v %v", first, err)
	}
	for range 3 {
		again, err := idempotency.Do(ctx, env.ex, k1, "fp", fn)
		if err != nil || again != first {
			t.Fatalf("replay: %+v %v, want %+v", again, err, first)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("fn ran %d times, want 1", n)
	}
	if env.meter.get(idempotency.OutcomeExecuted) != 1 || env.meter.get(idempotency.OutcomeReplayed) != 3 {
		t.Fatalf("counters: %v", env.meter.counts)
	}
	logs := env.logs.String()
	if strings.Contains(logs, k1.Key) || strings.Contains(logs, k1.Scope) {
		t.Fatalf("logs carry the raw key or scope:\n%s", logs)
	}
	if !strings.Contains(logs, `"decision":"replayed"`) || !strings.Contains(logs, `"`+idempotency.KeyHash+`":"`) {
		t.Fatalf("logs miss the replay decision or key hash:\n%s", logs)
	}
}

func TestDoMismatch(t *testing.T) {
	env := newExec(t, nil)
	ctx := context.Background()
	if _, err := idempotency.Do(ctx, env.ex, k1, "fp-a", func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	ran := false
	_, err := idempotency.Do(ctx, env.ex, k1, "fp-b", func(context.Context) (int, error) { ran = true; return 2, nil })
	if !errors.Is(err, idempotency.ErrMismatch) || !errors.Is(err, contract.ErrPreconditionFailed) || contract.Retryable(err) {
		t.Fatalf("Do with another fingerprint: %v, want non-retryable ErrMismatch", err)
	}
	if ran || env.meter.get(idempotency.OutcomeMismatch) != 1 {
		t.Fatalf("ran=%v mismatch count %d", ran, env.meter.get(idempotency.OutcomeMismatch))
	}
}

// startBlocked runs Do in a goroutine with fn blocked until release is closed.
func startBlocked(env *execEnv, key idempotency.Key, release <-chan struct{}, result int, err error) (started, done chan struct{}, out *int, outErr *error) {
	started, done = make(chan struct{}), make(chan struct{})
	out, outErr = new(int), new(error)
	go func() {
		defer close(done)
		*out, *outErr = idempotency.Do(context.Background(), env.ex, key, "fp", func(ctx context.Context) (int, error) {
			close(started)
			<-release
			return result, err
		})
	}()
	return
}

func TestDoFailFastOnDuplicateInFlight(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Lease = 10 * time.Second })
	release := make(chan struct{})
	started, done, _, _ := startBlocked(env, k1, release, 7, nil)
	<-started
	env.clk.Advance(2 * time.Second)
	_, err := idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) {
		t.Error("duplicate ran")
		return 0, nil
	})
	if !errors.Is(err, idempotency.ErrInProgress) || !errors.Is(err, contract.ErrConflict) {
		t.Fatalf("duplicate in flight: %v, want ErrInProgress", err)
	}
	if ra, ok := contract.RetryAfter(err); !ok || ra <= 0 || ra > 10*time.Second {
		t.Fatalf("RetryAfter %v %v, want the remaining lease", ra, ok)
	}
	close(release)
	<-done
	if env.meter.get(idempotency.OutcomeConflict) != 1 {
		t.Fatalf("conflict count %d", env.meter.get(idempotency.OutcomeConflict))
	}
}

func TestDoWaitGetsFirstResult(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Duplicate = idempotency.Wait })
	release := make(chan struct{})
	started, done, _, _ := startBlocked(env, k1, release, 42, nil)
	<-started
	dupDone := make(chan struct{})
	var got int
	var gotErr error
	go func() {
		defer close(dupDone)
		got, gotErr = idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) {
			return -1, nil
		})
	}()
	// The duplicate polls; let the first finish, then let poll timers fire.
	waitFor(t, "the duplicate to poll", func() bool { return env.clk.Waiters() >= 2 })
	close(release)
	<-done
	advanceUntil(t, env.clk, 10*time.Millisecond, dupDone)
	if gotErr != nil || got != 42 {
		t.Fatalf("waiting duplicate: %d %v, want the first result 42", got, gotErr)
	}
}

func TestDoWaitRunsWhenFirstFails(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Duplicate = idempotency.Wait })
	release := make(chan struct{})
	boom := errors.New("boom")
	started, done, _, firstErr := startBlocked(env, k1, release, 0, boom)
	<-started
	dupDone := make(chan struct{})
	var got int
	var gotErr error
	go func() {
		defer close(dupDone)
		got, gotErr = idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) {
			return 99, nil
		})
	}()
	waitFor(t, "the duplicate to poll", func() bool { return env.clk.Waiters() >= 2 })
	close(release)
	<-done
	if !errors.Is(*firstErr, boom) {
		t.Fatalf("first: %v", *firstErr)
	}
	advanceUntil(t, env.clk, 10*time.Millisecond, dupDone)
	if gotErr != nil || got != 99 {
		t.Fatalf("duplicate after a released failure: %d %v, want it to run and return 99", got, gotErr)
	}
}

func TestDoWaitGivesUpWithContext(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Duplicate = idempotency.Wait })
	release := make(chan struct{})
	started, done, _, _ := startBlocked(env, k1, release, 1, nil)
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	dupDone := make(chan struct{})
	var gotErr error
	go func() {
		defer close(dupDone)
		_, gotErr = idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { return 0, nil })
	}()
	waitFor(t, "the duplicate to poll", func() bool { return env.clk.Waiters() >= 2 })
	cancel()
	<-dupDone
	if !errors.Is(gotErr, idempotency.ErrInProgress) || !errors.Is(gotErr, context.Canceled) {
		t.Fatalf("canceled wait: %v, want ErrInProgress wrapping context.Canceled", gotErr)
	}
	close(release)
	<-done
}

func TestDoErrorReleasesForRetry(t *testing.T) {
	env := newExec(t, nil)
	ctx := context.Background()
	boom := contract.New(contract.KindUnavailable, "psp.charge", "gateway down")
	var runs int
	_, err := idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { runs++; return 0, boom })
	if err != boom {
		t.Fatalf("Do returned %v, want fn's error unchanged", err)
	}
	v, err := idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { runs++; return 5, nil })
	if err != nil || v != 5 || runs != 2 {
		t.Fatalf("retry after a failure: %d %v runs=%d, want it to run", v, err, runs)
	}
}

func TestDoStoresPermanentErrors(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) {
		c.StoreError = func(err error) bool { return errors.Is(err, contract.ErrInvalid) }
	})
	ctx := context.Background()
	declined := contract.New(contract.KindInvalid, "psp.charge", "card declined").WithCode("payment.declined")
	var runs int
	_, err := idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { runs++; return 0, declined })
	if err != declined {
		t.Fatalf("first: %v", err)
	}
	_, err = idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { runs++; return 1, nil })
	ce := contract.As(err)
	if runs != 1 || ce.Kind != contract.KindInvalid || ce.Code != "payment.declined" || ce.Detail != "card declined" {
		t.Fatalf("replayed permanent error: %v (runs=%d)", err, runs)
	}
}

func TestDoPanicReleases(t *testing.T) {
	env := newExec(t, nil)
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Fatalf("recovered %v, want the panic to continue", r)
			}
		}()
		_, _ = idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { panic("kaboom") })
	}()
	// The run is a decision like any other: counted and logged.
	if n := env.meter.get(idempotency.OutcomeExecuted); n != 1 {
		t.Fatalf("executed count %d after a panicking run, want 1 (counters %v)", n, env.meter.counts)
	}
	if logs := env.logs.String(); !strings.Contains(logs, `"decision":"executed"`) || !strings.Contains(logs, "panicked") {
		t.Fatalf("the panicking run was not logged:\n%s", logs)
	}
	v, err := idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { return 3, nil })
	if err != nil || v != 3 {
		t.Fatalf("after a panic: %d %v, want the key released", v, err)
	}
}

func TestDoHeartbeatKeepsLease(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Lease = 3 * time.Second; c.Heartbeat = time.Second })
	release := make(chan struct{})
	started, done, out, outErr := startBlocked(env, k1, release, 11, nil)
	<-started
	for range 10 { // 10 s of work on a 3 s lease
		waitFor(t, "the heartbeat to arm", func() bool { return env.clk.Waiters() == 1 })
		env.clk.Advance(time.Second)
	}
	c, err := env.store.Claim(context.Background(), idempotency.ClaimRequest{Key: k1, Fingerprint: "fp", Lease: time.Second, Retention: time.Hour})
	if err != nil || c.Status != idempotency.InProgress {
		t.Fatalf("after 10s of heartbeats a claimer sees %v %v, want in progress", c.Status, err)
	}
	close(release)
	<-done
	if *outErr != nil || *out != 11 {
		t.Fatalf("Do: %d %v", *out, *outErr)
	}
	if r, _ := env.store.Get(context.Background(), k1); r.State != idempotency.StateCompleted {
		t.Fatalf("record %v, want completed", r.State)
	}
}

func TestDoHeartbeatDetectsLeaseLoss(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Lease = 3 * time.Second; c.Heartbeat = time.Second })
	env.fault.set(&env.fault.renewErr, func() error { return idempotency.ErrLeaseLost })
	var cause error
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		_, err = idempotency.Do(context.Background(), env.ex, k1, "fp", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			cause = context.Cause(ctx)
			return 0, ctx.Err()
		})
	}()
	advanceUntil(t, env.clk, time.Second, done)
	if !errors.Is(cause, idempotency.ErrLeaseLost) {
		t.Fatalf("fn's context cause %v, want ErrLeaseLost", cause)
	}
	if !errors.Is(err, idempotency.ErrLeaseLost) || env.meter.get(idempotency.OutcomeLeaseLost) != 1 {
		t.Fatalf("Do: %v (lease_lost count %d), want ErrLeaseLost", err, env.meter.get(idempotency.OutcomeLeaseLost))
	}
}

// Without a heartbeat, an owner that outlives its lease is fenced off: the
// new owner's result stands and the late one learns it lost.
func TestDoLateOwnerFenced(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Lease = 3 * time.Second; c.Heartbeat = -1 })
	release := make(chan struct{})
	started, done, out, outErr := startBlocked(env, k1, release, 1, nil)
	<-started
	env.clk.Advance(4 * time.Second)
	v, err := idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) { return 2, nil })
	if err != nil || v != 2 {
		t.Fatalf("re-claim after lease expiry: %d %v", v, err)
	}
	close(release)
	<-done
	if !errors.Is(*outErr, idempotency.ErrLeaseLost) || *out != 1 {
		t.Fatalf("late owner: %d %v, want its value and ErrLeaseLost", *out, *outErr)
	}
	v, err = idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) { return 3, nil })
	if err != nil || v != 2 {
		t.Fatalf("replay: %d %v, want the new owner's 2", v, err)
	}
}

func TestDoStoreFailureFailsClosed(t *testing.T) {
	env := newExec(t, nil)
	env.fault.set(&env.fault.claimErr, func() error { return errDown })
	ran := false
	_, err := idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) { ran = true; return 1, nil })
	if ran || !errors.Is(err, idempotency.ErrStoreUnavailable) || !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
		t.Fatalf("store down: ran=%v err=%v, want fail closed with a retryable ErrStoreUnavailable", ran, err)
	}
	if !errors.Is(err, errDown) {
		t.Fatalf("the store's error is not in the chain: %v", err)
	}
	if env.meter.get(idempotency.OutcomeStoreError) != 1 {
		t.Fatalf("store_error count %d", env.meter.get(idempotency.OutcomeStoreError))
	}
}

func TestDoStoreFailureFailOpen(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.FailOpen = true })
	env.fault.set(&env.fault.claimErr, func() error { return errDown })
	v, err := idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) { return 8, nil })
	if err != nil || v != 8 {
		t.Fatalf("fail open: %d %v, want fn to run", v, err)
	}
}

func TestDoCompleteFailureReturnsValue(t *testing.T) {
	env := newExec(t, nil)
	env.fault.set(&env.fault.compErr, func() error { return errDown })
	v, err := idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) { return 4, nil })
	if err != nil || v != 4 {
		t.Fatalf("Complete failing after fn succeeded: %d %v, want fn's value", v, err)
	}
	// The key stays claimed until the lease expires: duplicates are held off.
	_, err = idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) { return 5, nil })
	if !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("duplicate right after an unrecorded success: %v, want ErrInProgress", err)
	}
}

// The calls that end an operation run without the caller's cancellation
// but not without bound: against a store that no longer answers (a
// partition without a reset) Complete and Release give up after the
// lease, when the store could no longer accept them, and Do returns as it
// does when the store fails them.
func TestDoEndingCallsBoundedByLease(t *testing.T) {
	const lease = 200 * time.Millisecond // real time: the bound of a store call is a context deadline
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		fn   func(context.Context) (int, error)
		hang func(*unreachableStore)
		op   string
	}{
		{"complete", func(context.Context) (int, error) { return 1, nil }, func(s *unreachableStore) { s.complete = true }, "complete"},
		{"release after an error", func(context.Context) (int, error) { return 0, boom }, func(s *unreachableStore) { s.release = true }, "release"},
		{"release after a panic", func(context.Context) (int, error) { panic(boom) }, func(s *unreachableStore) { s.release = true }, "release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			us := &unreachableStore{entered: make(chan enteredCall, 1)}
			tc.hang(us)
			env := newExec(t, func(c *idempotency.Config) {
				c.Lease = lease
				us.Store = c.Store
				c.Store = us
			})
			// The caller goes away while fn runs: the record must still be
			// written, so the caller's cancellation does not end the call.
			ctx, cancel := context.WithCancel(context.Background())
			type outcome struct {
				v     int
				err   error
				panic any
			}
			out := make(chan outcome, 1)
			go func() {
				var o outcome
				defer func() { o.panic = recover(); out <- o }()
				o.v, o.err = idempotency.Do(ctx, env.ex, k1, "fp", func(c context.Context) (int, error) {
					cancel()
					return tc.fn(c)
				})
			}()
			var o outcome
			select {
			case o = <-out:
			case <-time.After(2 * time.Second): // 10 leases: a hang guard, not a timing assertion
				t.Fatalf("Do still blocked 2 s later: %s is not bounded", tc.op)
			}
			checkBounded(t, <-us.entered, lease)
			switch tc.op {
			case "complete": // fn ran; the failure to record is logged and counted
				if o.err != nil || o.v != 1 {
					t.Fatalf("Do: %d %v, want fn's value and nil error", o.v, o.err)
				}
			default:
				if got := o.panic; got != nil {
					if got != boom {
						t.Fatalf("panic %v, want fn's", got)
					}
				} else if !errors.Is(o.err, boom) {
					t.Fatalf("Do: %v, want fn's error", o.err)
				}
			}
			if n := env.meter.get(idempotency.OutcomeStoreError); n != 1 {
				t.Fatalf("store_error count %d, want 1", n)
			}
		})
	}
}

// A value the store refuses as too large: the caller gets it, and
// duplicates a permanent conflict, never a second run.
func TestDoResultTooLargeToStore(t *testing.T) {
	clk := storetest.NewFakeClock(epoch)
	store := newMemory(t, idempotency.MemoryConfig{Clock: clk, MaxBytes: 16 << 10, MaxEntries: 16, Shards: 1})
	ex, err := idempotency.New(idempotency.Config{Store: store, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 32<<10)
	runs := 0
	fn := func(context.Context) (string, error) { runs++; return big, nil }
	ctx := context.Background()
	if v, err := idempotency.Do(ctx, ex, k1, "fp", fn); err != nil || v != big {
		t.Fatalf("first call: %d bytes, %v; want its value", len(v), err)
	}
	for range 2 {
		_, err := idempotency.Do(ctx, ex, k1, "fp", fn)
		var ce *contract.Error
		if !errors.As(err, &ce) || ce.Kind != contract.KindConflict || ce.Code != "idempotency.result_not_stored" || contract.Retryable(err) {
			t.Fatalf("duplicate: %v, want a permanent conflict idempotency.result_not_stored", err)
		}
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times", runs)
	}
}

// A MemoryStore shard whose room is held by running claims refuses a value
// that would fit in an empty one as too large (KindTooLarge, as for a
// value over the shard's budget): Do records that the call ran, and a
// duplicate after every lease ran out gets the permanent conflict, never a
// second run.
func TestDoResultRefusedBesideLiveClaims(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewFakeClock(epoch)
	const maxBytes = 64 << 10
	s := newMemory(t, idempotency.MemoryConfig{MaxBytes: maxBytes, MaxEntries: 100, Shards: 1, Clock: clk})
	big := strings.Repeat("f", maxBytes/4)
	for i := range 3 {
		k := idempotency.Key{Scope: "s", Key: "live" + string(rune('0'+i))}
		if c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: big, Lease: time.Minute, Retention: time.Hour}); err != nil || c.Status != idempotency.Claimed {
			t.Fatal(c.Status, err)
		}
	}
	ex, err := idempotency.New(idempotency.Config{Store: s, Clock: clk, Lease: time.Minute, Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	key := idempotency.Key{Scope: "s", Key: "pay"}
	runs := 0
	value := strings.Repeat("r", maxBytes/8) // fits an empty shard, not this one
	charge := func(context.Context) (string, error) { runs++; return value, nil }
	if v, err := idempotency.Do(ctx, ex, key, "fp", charge); err != nil || v != value {
		t.Fatalf("first call: %d bytes, %v; want its value", len(v), err)
	}
	clk.Advance(2 * time.Minute) // every lease has run out
	_, err = idempotency.Do(ctx, ex, key, "fp", charge)
	var ce *contract.Error
	if runs != 1 || !errors.As(err, &ce) || ce.Code != "idempotency.result_not_stored" || contract.Retryable(err) {
		t.Fatalf("duplicate: %v after %d runs, want one run and a permanent conflict idempotency.result_not_stored", err, runs)
	}
}

// When the store refuses even the record that the call ran, the key stays
// held for the retention period, as a record would have been: duplicates
// get ErrInProgress, never a second run, until the key would have expired
// anyway.
func TestDoNotStoredRecordRefusedToo(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Lease, c.Retention, c.Heartbeat = time.Minute, time.Hour, -1 })
	env.fault.set(&env.fault.compErr, func() error {
		return contract.New(contract.KindTooLarge, "test.complete", "no room for anything")
	})
	ctx := context.Background()
	runs := 0
	fn := func(context.Context) (int, error) { runs++; return 7, nil }
	if v, err := idempotency.Do(ctx, env.ex, k1, "fp", fn); err != nil || v != 7 {
		t.Fatalf("first call: %d %v, want its value", v, err)
	}
	if n := env.meter.get(idempotency.OutcomeStoreError); n != 1 {
		t.Fatalf("store errors counted: %d, want 1", n)
	}
	for _, wait := range []time.Duration{0, 2 * time.Minute, 50 * time.Minute} {
		env.clk.Advance(wait)
		if _, err := idempotency.Do(ctx, env.ex, k1, "fp", fn); !errors.Is(err, idempotency.ErrInProgress) || runs != 1 {
			t.Fatalf("duplicate %v into the retention period: %v after %d runs, want ErrInProgress and one run", env.clk.Now().Sub(epoch), err, runs)
		}
	}
	env.clk.Advance(10 * time.Minute) // past the retention: the key is new again, as any record's would be
	env.fault.set(&env.fault.compErr, nil)
	if v, err := idempotency.Do(ctx, env.ex, k1, "fp", fn); err != nil || v != 7 || runs != 2 {
		t.Fatalf("after the retention: %d %v runs %d, want a fresh run", v, err, runs)
	}
}

func TestDoCanceledContext(t *testing.T) {
	env := newExec(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	_, err := idempotency.Do(ctx, env.ex, k1, "fp", func(context.Context) (int, error) { ran = true; return 1, nil })
	if ran || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: ran=%v err=%v", ran, err)
	}
}

func TestConfigValidation(t *testing.T) {
	s := newMemory(t, idempotency.MemoryConfig{})
	tests := []struct {
		cfg   idempotency.Config
		field string
	}{
		{idempotency.Config{}, "Config.Store"},
		{idempotency.Config{Store: s, Lease: -1}, "Config.Lease"},
		{idempotency.Config{Store: s, Lease: 2}, "Config.Lease"}, // Heartbeat Lease/3 would be 0: no renewal
		{idempotency.Config{Store: s, Lease: time.Millisecond - 1}, "Config.Lease"},
		{idempotency.Config{Store: s, Retention: -1}, "Config.Retention"},
		{idempotency.Config{Store: s, Lease: time.Hour, Retention: time.Minute}, "Config.Retention"},
		{idempotency.Config{Store: s, PollInterval: time.Second, MaxPollInterval: time.Millisecond}, "Config.MaxPollInterval"},
		{idempotency.Config{Store: s, Lease: time.Second, Heartbeat: time.Second}, "Config.Heartbeat"},
		{idempotency.Config{Store: s, Duplicate: 9}, "Config.Duplicate"},
	}
	for _, tc := range tests {
		_, err := idempotency.New(tc.cfg)
		e := contract.As(err)
		if !errors.Is(err, contract.ErrInvalid) || e.Code != "config.invalid" || !strings.Contains(e.Detail, tc.field) {
			t.Fatalf("%+v: %v, want config.invalid naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := idempotency.New(idempotency.Config{Store: s}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if _, err := idempotency.New(idempotency.Config{Store: s, Lease: idempotency.MinLease}); err != nil {
		t.Fatalf("Lease MinLease: %v", err)
	}
	// Dedup shares the executor's validation.
	if _, err := idempotency.NewDedup(idempotency.Config{Store: s, Lease: 2}); !errors.Is(err, contract.ErrInvalid) || !strings.Contains(contract.As(err).Detail, "Config.Lease") {
		t.Fatalf("Dedup with a 2ns lease: %v, want config.invalid naming Config.Lease", err)
	}
}

func TestDoExposesIncreasingFencingTokens(t *testing.T) {
	for _, hb := range []time.Duration{0, -1} {
		env := newExec(t, func(c *idempotency.Config) { c.Heartbeat = hb })
		ctx := context.Background()
		if _, ok := idempotency.Token(ctx); ok {
			t.Fatal("Token outside an operation")
		}
		var tokens []uint64
		for i := range 3 {
			_, _ = idempotency.Do(ctx, env.ex, k1, "fp", func(ctx context.Context) (int, error) {
				tok, ok := idempotency.Token(ctx)
				if !ok {
					t.Fatal("no token inside the operation")
				}
				tokens = append(tokens, tok)
				if i < 2 {
					return 0, errors.New("retryable") // released: the next call re-claims
				}
				return 1, nil
			})
		}
		if len(tokens) != 3 || tokens[0] >= tokens[1] || tokens[1] >= tokens[2] {
			t.Fatalf("heartbeat %v: tokens %v, want 3 strictly increasing", hb, tokens)
		}
	}
}

// A claim the store refuses as too large (a key longer than a MemoryStore
// shard can hold: an event id from a broker, a long Idempotency-Key) is no
// failure of the store: retrying cannot help, and running the operation
// unprotected is not what FailOpen is for. It is reported as the
// permanent too-large error it is, never as a retryable ErrStoreUnavailable.
func TestClaimRefusedAsTooLargeIsNotStoreUnavailable(t *testing.T) {
	huge := strings.Repeat("k", 8<<10)
	for _, failOpen := range []bool{false, true} {
		store := newMemory(t, idempotency.MemoryConfig{MaxBytes: 4 << 10})
		ran := false
		ex, err := idempotency.New(idempotency.Config{Store: store, FailOpen: failOpen})
		if err != nil {
			t.Fatal(err)
		}
		_, err = idempotency.Do(context.Background(), ex, idempotency.Key{Scope: "s", Key: huge}, "fp", func(context.Context) (int, error) { ran = true; return 1, nil })
		if ran || !errors.Is(err, contract.ErrTooLarge) || errors.Is(err, idempotency.ErrStoreUnavailable) || contract.Retryable(err) {
			t.Fatalf("FailOpen %v: Do: ran=%v err=%v, want fn not run and a permanent too-large error", failOpen, ran, err)
		}
		d, err := idempotency.NewDedup(idempotency.Config{Store: store, FailOpen: failOpen})
		if err != nil {
			t.Fatal(err)
		}
		dup, err := d.Handle(context.Background(), "src", huge, func(context.Context) error { ran = true; return nil })
		if ran || dup || !errors.Is(err, contract.ErrTooLarge) || contract.Retryable(err) {
			t.Fatalf("FailOpen %v: Dedup: ran=%v duplicate=%v err=%v, want fn not run and a permanent too-large error", failOpen, ran, dup, err)
		}
		mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
			Config: idempotency.Config{Store: store, FailOpen: failOpen}, MaxKeyLength: len(huge),
			Scope: func(*http.Request) (string, error) { return "s", nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/pay", nil)
		req.Header.Set(idempotency.HeaderKey, huge)
		mw.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true })).ServeHTTP(w, req)
		if ran || w.Code != http.StatusRequestEntityTooLarge || w.Header().Get("Retry-After") != "" {
			t.Fatalf("FailOpen %v: Middleware: ran=%v status %d Retry-After %q, want the handler not run and 413", failOpen, ran, w.Code, w.Header().Get("Retry-After"))
		}
	}
}

// FailOpen is for a claim the store cannot decide. A duplicate waiting on
// a key it already saw in progress knows the operation is running: a store
// failure while it polls must not make it run the operation alongside the
// owner, but fail closed.
func TestDoWaitFailOpenStoreFailsWhileWaitingDoesNotRun(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.Duplicate = idempotency.Wait; c.FailOpen = true })
	release := make(chan struct{})
	started, done, _, _ := startBlocked(env, k1, release, 1, nil)
	<-started
	dupDone := make(chan struct{})
	var ran atomic.Bool
	var gotErr error
	go func() {
		defer close(dupDone)
		_, gotErr = idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) {
			ran.Store(true)
			return 2, nil
		})
	}()
	waitFor(t, "the duplicate to poll", func() bool { return env.clk.Waiters() >= 2 })
	env.fault.set(&env.fault.claimErr, func() error { return errDown })
	advanceUntil(t, env.clk, 10*time.Millisecond, dupDone)
	if ran.Load() {
		t.Fatal("the duplicate ran the operation alongside the owner it saw in progress")
	}
	if !errors.Is(gotErr, idempotency.ErrStoreUnavailable) || !errors.Is(gotErr, errDown) {
		t.Fatalf("store failing while waiting: %v, want ErrStoreUnavailable wrapping the store's error", gotErr)
	}
	close(release)
	<-done
}

// An empty Key.Key is a caller's bug (an unset field, a missing header
// read as ""), not a key: were it claimed, every call without a key would
// share one record, and the first caller's result would be replayed to
// all the others. Do refuses it as the middleware refuses an empty header:
// ErrKeyInvalid, not retryable, and neither fn nor the store is called.
func TestDoEmptyKeyIsInvalid(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) { c.FailOpen = true })
	claims := 0
	env.fault.set(&env.fault.claimErr, func() error { claims++; return nil })
	for _, scope := range []string{"tenant-1", ""} {
		ran := false
		v, err := idempotency.Do(context.Background(), env.ex, idempotency.Key{Scope: scope, Key: ""}, "fp", func(context.Context) (int, error) { ran = true; return 7, nil })
		if ran || v != 0 {
			t.Fatalf("scope %q, empty key: fn ran (value %d)", scope, v)
		}
		if !errors.Is(err, idempotency.ErrKeyInvalid) || contract.KindOf(err) != contract.KindInvalid || contract.Retryable(err) {
			t.Fatalf("scope %q, empty key: err = %v (kind %v), want a non-retryable ErrKeyInvalid", scope, err, contract.KindOf(err))
		}
		if ce := contract.As(err); ce.Op != "idempotency.do" || !strings.Contains(ce.Detail, "empty") {
			t.Fatalf("scope %q, empty key: op %q detail %q, want op idempotency.do and a detail saying the key is empty", scope, ce.Op, ce.Detail)
		}
	}
	if claims != 0 {
		t.Fatalf("the store was asked to claim an empty key %d times", claims)
	}
	// An empty scope with a key is a single-caller service's key: it runs.
	v, err := idempotency.Do(context.Background(), env.ex, idempotency.Key{Key: "k"}, "fp", func(context.Context) (int, error) { return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("empty scope, key k: %d %v, want fn to run", v, err)
	}
}

// The log hash of a key frames the scope by its length: scopes and keys
// may hold any byte, NUL included, and two (scope, key) pairs that split
// the same bytes differently are two records, which the logs must not
// confuse.
func TestLogKeyHashTellsScopeFromKey(t *testing.T) {
	env := newExec(t, nil)
	hashOf := func(k idempotency.Key) string {
		t.Helper()
		env.logs.Reset()
		if _, err := idempotency.Do(context.Background(), env.ex, k, "fp", func(context.Context) (int, error) { return 1, nil }); err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(bytes.TrimSpace(env.logs.Bytes()), &rec); err != nil {
			t.Fatalf("one JSON record expected, got %q: %v", env.logs.String(), err)
		}
		h, _ := rec[idempotency.KeyHash].(string)
		if len(h) != 12 {
			t.Fatalf("%s = %q, want 12 hex digits", idempotency.KeyHash, h)
		}
		return h
	}
	pairs := [][2]idempotency.Key{
		{{Scope: "a\x00b", Key: "c"}, {Scope: "a", Key: "b\x00c"}},
		{{Scope: "ab", Key: "c"}, {Scope: "a", Key: "bc"}},
		{{Scope: "", Key: "\x00x"}, {Scope: "\x00", Key: "x"}},
	}
	for _, p := range pairs {
		if h0, h1 := hashOf(p[0]), hashOf(p[1]); h0 == h1 {
			t.Errorf("%q and %q are logged with the same hash %s", p[0], p[1], h0)
		}
	}
	if h0, h1 := hashOf(k1), hashOf(k1); h0 != h1 {
		t.Errorf("one key logged with two hashes: %s, %s", h0, h1)
	}
}
