package storetest_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

// retentionFromClaim is a broken Store: it forgets a record Retention
// after its claim, as a store that sets the record's expiry at the claim
// and not again at the completion would; with restart, it sets it again
// at the completion and the release, but never makes it follow a renewed
// lease. It keeps everything else of the MemoryStore it wraps, by moving a
// forgotten key to a fresh generation.
type retentionFromClaim struct {
	*idempotency.MemoryStore
	clk       *storetest.FakeClock
	restart   bool
	mu        sync.Mutex
	gen       map[idempotency.Key]int
	end       map[idempotency.Key]time.Time     // when the current generation is forgotten
	retention map[idempotency.Key]time.Duration // of the current generation's claim
}

func newRetentionFromClaim(t *testing.T, restart bool) (idempotency.Store, storetest.Clock) {
	clk := storetest.NewFakeClock(time.Unix(0, 0))
	m, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clk, Shards: 1}) // one token counter for every generation
	if err != nil {
		t.Fatal(err)
	}
	return &retentionFromClaim{MemoryStore: m, clk: clk, restart: restart, gen: map[idempotency.Key]int{},
		end: map[idempotency.Key]time.Time{}, retention: map[idempotency.Key]time.Duration{}}, clk
}

// restartRetention counts k's retention again from now, after a
// successful Complete or Release, when s.restart.
func (s *retentionFromClaim) restartRetention(k idempotency.Key, err error) error {
	if err == nil && s.restart {
		s.mu.Lock()
		s.end[k] = s.clk.Now().Add(s.retention[k])
		s.mu.Unlock()
	}
	return err
}

// inner returns the wrapped store's key for k, forgetting k once its time is up.
func (s *retentionFromClaim) inner(k idempotency.Key) idempotency.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end, ok := s.end[k]; ok && !s.clk.Now().Before(end) {
		delete(s.end, k)
		s.gen[k]++
	}
	return idempotency.Key{Scope: k.Scope, Key: k.Key + "\x00" + strconv.Itoa(s.gen[k])}
}

func (s *retentionFromClaim) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	k := req.Key
	req.Key = s.inner(k)
	c, err := s.MemoryStore.Claim(ctx, req)
	if err == nil && c.Status == idempotency.Claimed {
		s.mu.Lock()
		s.end[k] = s.clk.Now().Add(req.Retention)
		s.retention[k] = req.Retention
		s.mu.Unlock()
	}
	return c, err
}

func (s *retentionFromClaim) Complete(ctx context.Context, k idempotency.Key, tok uint64, r idempotency.Result) error {
	return s.restartRetention(k, s.MemoryStore.Complete(ctx, s.inner(k), tok, r))
}

func (s *retentionFromClaim) Release(ctx context.Context, k idempotency.Key, tok uint64) error {
	return s.restartRetention(k, s.MemoryStore.Release(ctx, s.inner(k), tok))
}

func (s *retentionFromClaim) Renew(ctx context.Context, k idempotency.Key, tok uint64, d time.Duration) error {
	return s.MemoryStore.Renew(ctx, s.inner(k), tok, d)
}

func (s *retentionFromClaim) Get(ctx context.Context, k idempotency.Key) (idempotency.Record, error) {
	r, err := s.MemoryStore.Get(ctx, s.inner(k))
	r.Key = k
	return r, err
}

// mismatchOnExpired is a broken Store: a claim meeting a record in
// progress under another fingerprint answers Mismatch even when the
// owner's lease has expired, so a crashed attempt holds its key against
// every other payload for the whole retention.
type mismatchOnExpired struct{ *idempotency.MemoryStore }

func (s mismatchOnExpired) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	if r, err := s.Get(ctx, req.Key); err == nil && r.State == idempotency.StateInProgress && r.Fingerprint != req.Fingerprint {
		return idempotency.Claim{Status: idempotency.Mismatch, Token: r.Token}, nil
	}
	return s.MemoryStore.Claim(ctx, req)
}

// TestSuiteCatchesMismatchOnExpiredLease runs the suite, in a child
// process, against mismatchOnExpired. The suite must fail it.
func TestSuiteCatchesMismatchOnExpiredLease(t *testing.T) {
	suiteMustFail(t, "TestSuiteCatchesMismatchOnExpiredLease", "ExpiredLeaseAnyPayload", func(t *testing.T) (idempotency.Store, storetest.Clock) {
		clk := storetest.NewFakeClock(time.Unix(0, 0))
		m, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		return mismatchOnExpired{m}, clk
	})
}

// TestSuiteCatchesRetentionFromClaim runs the suite, in a child process,
// against a store that keeps results for Retention from the claim rather
// than from the completion: a long operation's result expires early and
// its retry runs it again. The suite must fail it.
func TestSuiteCatchesRetentionFromClaim(t *testing.T) {
	suiteMustFail(t, "TestSuiteCatchesRetentionFromClaim", "RetentionFromCompletion", func(t *testing.T) (idempotency.Store, storetest.Clock) {
		return newRetentionFromClaim(t, false)
	})
}

// TestSuiteCatchesRecordDroppedUnderRenewedLease runs the suite, in a
// child process, against a store that drops a record at its retention
// although a renewal extended the lease past it: a duplicate then claims
// the key while the owner still runs. The suite must fail it.
func TestSuiteCatchesRecordDroppedUnderRenewedLease(t *testing.T) {
	suiteMustFail(t, "TestSuiteCatchesRecordDroppedUnderRenewedLease", "RenewPastRetention", func(t *testing.T) (idempotency.Store, storetest.Clock) {
		return newRetentionFromClaim(t, true)
	})
}

// suiteMustFail runs the suite against the stores of newStore in a child
// process running test, and checks that the subtest sub fails.
func suiteMustFail(t *testing.T, test, sub string, newStore func(t *testing.T) (idempotency.Store, storetest.Clock)) {
	if os.Getenv("STORETEST_BROKEN_STORE") == test {
		storetest.Run(t, newStore)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), "STORETEST_BROKEN_STORE="+test)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the suite passed the broken store:\n%s", out)
	}
	if !strings.Contains(string(out), "--- FAIL: "+test+"/"+sub+" ") {
		t.Fatalf("want the %s subtest to fail:\n%s", sub, out)
	}
}

// checkThenClaim is a broken Store: a claim that finds the key claimable
// again (released, or its lease expired) takes it on a later write, without
// checking again, as a store that reads a row and then updates it
// unconditionally would. It moves the key to a fresh generation of the
// MemoryStore it wraps, which every such claimer wins: concurrent retries
// of a released key all run the operation, each with a valid token.
type checkThenClaim struct {
	*idempotency.MemoryStore
	mu  sync.Mutex
	gen map[idempotency.Key]int
}

func (s *checkThenClaim) inner(k idempotency.Key, next bool) idempotency.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	if next {
		s.gen[k]++
	}
	return idempotency.Key{Scope: k.Scope, Key: k.Key + "\x00" + strconv.Itoa(s.gen[k])}
}

func (s *checkThenClaim) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	k := req.Key
	r, err := s.MemoryStore.Get(ctx, s.inner(k, false))
	claimable := err == nil && (r.State == idempotency.StateReleased || (r.State == idempotency.StateInProgress && r.LeaseRemaining <= 0))
	if claimable {
		runtime.Gosched() // the window between the read and the write
	}
	req.Key = s.inner(k, claimable)
	return s.MemoryStore.Claim(ctx, req)
}

func (s *checkThenClaim) Complete(ctx context.Context, k idempotency.Key, tok uint64, r idempotency.Result) error {
	return s.MemoryStore.Complete(ctx, s.inner(k, false), tok, r)
}

func (s *checkThenClaim) Release(ctx context.Context, k idempotency.Key, tok uint64) error {
	return s.MemoryStore.Release(ctx, s.inner(k, false), tok)
}

func (s *checkThenClaim) Renew(ctx context.Context, k idempotency.Key, tok uint64, d time.Duration) error {
	return s.MemoryStore.Renew(ctx, s.inner(k, false), tok, d)
}

func (s *checkThenClaim) Get(ctx context.Context, k idempotency.Key) (idempotency.Record, error) {
	r, err := s.MemoryStore.Get(ctx, s.inner(k, false))
	r.Key = k
	return r, err
}

// TestSuiteCatchesCheckThenClaim runs the suite, in a child process,
// against a store whose re-claim of a released or expired key is not
// atomic: several concurrent claimers win it. The suite must fail it.
func TestSuiteCatchesCheckThenClaim(t *testing.T) {
	suiteMustFail(t, "TestSuiteCatchesCheckThenClaim", "ConcurrentReclaimOneWinner", func(t *testing.T) (idempotency.Store, storetest.Clock) {
		clk := storetest.NewFakeClock(time.Unix(0, 0))
		m, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clk, Shards: 1}) // one token counter for every generation
		if err != nil {
			t.Fatal(err)
		}
		return &checkThenClaim{MemoryStore: m, gen: map[idempotency.Key]int{}}, clk
	})
}
