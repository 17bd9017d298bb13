// Package storetest is a conformance suite for idempotency.Store
// implementations, in the spirit of testing/fstest and testing/slogtest.
//
// A store proves itself with one test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) {
//			s := newMyStore(t) // a fresh store (or a fresh key prefix) per call
//			return s, nil      // nil Clock: the store runs on real time
//		})
//	}
//
// # Time
//
// Lease expiry, renewal and retention need time to pass. A store driven by
// an injectable clock returns a Clock whose Advance moves that clock (see
// FakeClock); the suite then never sleeps. A store on real time (Redis,
// PostgreSQL) returns a nil Clock: the suite uses short real leases
// (RealLease) and sleeps. The suite is the only place in sadpath that sleeps
// on real time in tests, because a real server's clock cannot be faked.
//
// # What is checked
//
// Every subtest gets its own store from newStore and uses keys under a random
// scope prefix, so stores shared between subtests or test binaries do not
// collide. The subtests check the semantics documented on idempotency.Store:
// one winner among 64 concurrent claimers, of a fresh key and of one
// claimable again (released, or its lease expired); lease expiry, re-claim and
// fencing (a late owner's Complete, Release and Renew fail with
// idempotency.ErrLeaseLost and change nothing); strictly increasing tokens
// per key across release, re-claim and the expiry of the record (an owner
// stalled past its record's retention is fenced off too); fingerprint
// mismatch while in progress and once completed; byte-exact replay of
// status, headers and body (a header with 5,000 values too; a status
// outside [0, 999] refused as invalid); isolation of stored values from
// the caller's slices; retention expiry, counted from the completion (a
// long operation's result must not expire early);
// re-claim of an expired lease by another payload; renewal, past the
// record's retention too (a record must not go while a
// renewed lease runs); 1 MiB values; keys and scopes with odd bytes (NUL, newline,
// invalid UTF-8, 1 KiB, separators that could make scope and key collide);
// scope isolation; invalid requests; and canceled contexts.
//
// # Exactly once under faults
//
// ExactlyOnce is the second half of a store's proof: thousands of
// concurrent requests with duplicates, spread over several instances of the
// store, while the test injects faults of its own (killed connections, a
// restarted server). It counts every effect and fails unless each ran
// exactly once and every result survived.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// Clock lets time pass for a store under test. Advance must return once the
// store observes d more time: a fake clock moves at once.
type Clock interface {
	Advance(d time.Duration)
}

// RealLease is the lease the suite uses for stores on real time (nil Clock)
// in the subtests that wait for a lease or a retention to run out. It is
// short so the suite stays fast (those subtests also run in parallel), and
// long enough that a loaded machine does not expire a lease between two
// consecutive store calls.
const RealLease = time.Second

// SteadyLease is the lease of the subtests that must never see a lease run
// out (concurrency, large values …): a loaded machine or the race detector
// can stretch them over seconds.
const SteadyLease = time.Minute

// sleepClock is the Clock used when newStore returns nil.
type sleepClock struct{}

func (sleepClock) Advance(d time.Duration) { time.Sleep(d) }

type harness struct {
	t      *testing.T
	store  idempotency.Store
	clock  Clock
	real   bool
	lease  time.Duration
	slack  time.Duration // added to waits that must cross a deadline
	prefix string
}

func newHarness(t *testing.T, newStore func(t *testing.T) (idempotency.Store, Clock), timed bool) *harness {
	t.Helper()
	s, c := newStore(t)
	if s == nil {
		t.Fatal("storetest: newStore returned a nil Store")
	}
	lease := SteadyLease
	if timed {
		lease = RealLease
	}
	h := &harness{t: t, store: s, clock: c, lease: lease, slack: RealLease / 2}
	if c == nil {
		h.clock, h.real = sleepClock{}, true
	} else {
		// A fake clock: the same durations, crossed exactly.
		h.slack = time.Millisecond
	}
	h.prefix = "storetest/" + randomHex() + "/"
	return h
}

// randomHex is 16 random hex digits: a prefix no other run uses.
func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (h *harness) key(name string) idempotency.Key {
	return idempotency.Key{Scope: h.prefix + "scope", Key: name}
}

func (h *harness) req(k idempotency.Key, fp string) idempotency.ClaimRequest {
	return idempotency.ClaimRequest{Key: k, Fingerprint: fp, Lease: h.lease, Retention: 10 * h.lease}
}

func (h *harness) ctx() context.Context { return h.t.Context() }

func (h *harness) claim(req idempotency.ClaimRequest) idempotency.Claim {
	h.t.Helper()
	c, err := h.store.Claim(h.ctx(), req)
	if err != nil {
		h.t.Fatalf("Claim(%q): unexpected error: %v", req.Key, err)
	}
	return c
}

func (h *harness) mustClaim(req idempotency.ClaimRequest) uint64 {
	h.t.Helper()
	c := h.claim(req)
	if c.Status != idempotency.Claimed {
		h.t.Fatalf("Claim(%q): status %v, want claimed", req.Key, c.Status)
	}
	if c.Token == 0 {
		h.t.Fatalf("Claim(%q): claimed with token 0; tokens start above 0", req.Key)
	}
	return c.Token
}

func (h *harness) expectStatus(req idempotency.ClaimRequest, want idempotency.ClaimStatus) idempotency.Claim {
	h.t.Helper()
	c := h.claim(req)
	if c.Status != want {
		h.t.Fatalf("Claim(%q): status %v, want %v", req.Key, c.Status, want)
	}
	return c
}

func (h *harness) get(k idempotency.Key) idempotency.Record {
	h.t.Helper()
	r, err := h.store.Get(h.ctx(), k)
	if err != nil {
		h.t.Fatalf("Get(%q): unexpected error: %v", k, err)
	}
	if r.Key != k {
		h.t.Fatalf("Get(%q): record key %q", k, r.Key)
	}
	return r
}

func (h *harness) expectLeaseLost(op string, err error) {
	h.t.Helper()
	if !errors.Is(err, idempotency.ErrLeaseLost) {
		h.t.Fatalf("%s: got %v, want an error matching idempotency.ErrLeaseLost", op, err)
	}
}

func sampleResult(tag string) idempotency.Result {
	return idempotency.Result{
		StatusCode: 201,
		Header: http.Header{
			"Content-Type": {"application/json"},
			"X-Multi":      {"one", "two", ""},
			"Location":     {"/payments/" + tag},
		},
		// NUL, invalid UTF-8, CRLF: stored and replayed byte for byte.
		Body: []byte("{\"id\":\"" + tag + "\"}\x00\xff\xfe\r\n"),
	}
}

func sameResult(t *testing.T, what string, got *idempotency.Result, want idempotency.Result) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: result is nil", what)
	}
	if got.StatusCode != want.StatusCode {
		t.Fatalf("%s: status %d, want %d", what, got.StatusCode, want.StatusCode)
	}
	if !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("%s: body differs: got %d bytes %.64q, want %d bytes %.64q", what, len(got.Body), got.Body, len(want.Body), want.Body)
	}
	if len(got.Header) == 0 && len(want.Header) == 0 {
		return
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("%s: header %v, want %v", what, got.Header, want.Header)
	}
}

// Run runs the conformance suite as subtests of t. newStore is called once
// per subtest and returns the store to test and the Clock that drives it, or
// a nil Clock for a store on real time. Stores may be shared between calls:
// the suite never reuses a key across subtests.
func Run(t *testing.T, newStore func(t *testing.T) (idempotency.Store, Clock)) {
	tests := []struct {
		name  string
		fn    func(*harness)
		timed bool // lets leases or retention run out: a short lease, parallel on real time
	}{
		{"ClaimFresh", testClaimFresh, false},
		{"GetNotFound", testGetNotFound, false},
		{"ConcurrentClaimOneWinner", testConcurrentClaim, false},
		{"ConcurrentKeys", testConcurrentKeys, false},
		{"ConcurrentReclaimOneWinner", testConcurrentReclaim, true},
		{"CompleteReplay", testCompleteReplay, false},
		{"ValuesAreCopied", testValuesAreCopied, false},
		{"OpaqueResult", testOpaqueResult, false},
		{"ResultShapes", testResultShapes, false},
		{"Mismatch", testMismatch, false},
		{"ReleaseAndReclaim", testReleaseAndReclaim, false},
		{"UnknownOwner", testUnknownOwner, false},
		{"CompletedIsFinal", testCompletedIsFinal, false},
		{"LeaseExpiryFencing", testLeaseExpiryFencing, true},
		{"ExpiredLeaseCannotComplete", testExpiredLeaseCannotComplete, true},
		{"Renew", testRenew, true},
		{"Retention", testRetention, true},
		{"RetentionFromCompletion", testRetentionFromCompletion, true},
		{"RenewPastRetention", testRenewPastRetention, true},
		{"ExpiredLeaseAnyPayload", testExpiredLeaseAnyPayload, true},
		{"LargeValue", testLargeValue, false},
		{"OddKeys", testOddKeys, false},
		{"ScopeIsolation", testScopeIsolation, false},
		{"InvalidRequest", testInvalidRequest, false},
		{"CanceledContext", testCanceledContext, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newStore, tc.timed)
			if tc.timed && h.real {
				t.Parallel() // their sleeps overlap
			}
			tc.fn(h)
		})
	}
}

func testClaimFresh(h *harness) {
	k := h.key("fresh")
	tok := h.mustClaim(h.req(k, "fp"))
	c := h.expectStatus(h.req(k, "fp"), idempotency.InProgress)
	if c.Token != tok {
		h.t.Fatalf("InProgress token %d, want the owner's %d", c.Token, tok)
	}
	if c.LeaseRemaining <= 0 || c.LeaseRemaining > h.lease {
		h.t.Fatalf("InProgress LeaseRemaining %v, want in (0, %v]", c.LeaseRemaining, h.lease)
	}
	r := h.get(k)
	if r.State != idempotency.StateInProgress || r.Token != tok || r.Fingerprint != "fp" {
		h.t.Fatalf("Get: %+v, want in progress with token %d and fingerprint fp", r, tok)
	}
	if r.LeaseRemaining <= 0 || r.LeaseRemaining > h.lease {
		h.t.Fatalf("Get: LeaseRemaining %v, want in (0, %v]", r.LeaseRemaining, h.lease)
	}
	if r.Result != nil {
		h.t.Fatalf("Get: in-progress record has a result: %+v", r.Result)
	}
}

func testGetNotFound(h *harness) {
	_, err := h.store.Get(h.ctx(), h.key("never-claimed"))
	if !errors.Is(err, idempotency.ErrNotFound) {
		h.t.Fatalf("Get of an unknown key: %v, want an error matching idempotency.ErrNotFound", err)
	}
	if !errors.Is(err, contract.ErrNotFound) {
		h.t.Fatalf("Get of an unknown key: %v, want an error matching contract.ErrNotFound", err)
	}
}

func testConcurrentClaim(h *harness) {
	h.raceClaims("a fresh key", h.req(h.key("race"), "fp"), 0)
}

// raceClaims has n goroutines claim req at once and checks that exactly
// one wins, with a token above after, and that every other claimer is told
// in progress with the winner's token. It returns the winner's token.
func (h *harness) raceClaims(what string, req idempotency.ClaimRequest, after uint64) uint64 {
	h.t.Helper()
	const n = 64
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		claims = make([]idempotency.Claim, n)
		errs   = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			claims[i], errs[i] = h.store.Claim(h.ctx(), req)
		}()
	}
	close(start)
	wg.Wait()
	winners, token := 0, uint64(0)
	for i := range n {
		if errs[i] != nil {
			h.t.Fatalf("%s: claimer %d: %v", what, i, errs[i])
		}
		if claims[i].Status == idempotency.Claimed {
			winners++
			token = claims[i].Token
		}
	}
	if winners != 1 {
		h.t.Fatalf("%s: %d of %d concurrent claimers won, want exactly 1", what, winners, n)
	}
	if token <= after {
		h.t.Fatalf("%s: the winner's token %d, want > %d", what, token, after)
	}
	for i, c := range claims {
		if c.Status != idempotency.Claimed && (c.Status != idempotency.InProgress || c.Token != token) {
			h.t.Fatalf("%s: claimer %d: %v token %d, want in_progress with the winner's token %d", what, i, c.Status, c.Token, token)
		}
	}
	return token
}

// testConcurrentReclaim: a key that becomes claimable again — released
// after a failure, or left with an expired lease by a crashed owner — is
// won by exactly one of many concurrent claimers, as a fresh key is. A
// store that decides "claimable" on one read and takes the key on a later
// write lets two retries (or two crash recoveries) run the operation at
// once, with two valid tokens.
func testConcurrentReclaim(h *harness) {
	k := h.key("reclaim-race")
	steady := idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: SteadyLease, Retention: 10 * SteadyLease}
	tok := h.mustClaim(steady)
	for round := range 3 {
		if err := h.store.Release(h.ctx(), k, tok); err != nil {
			h.t.Fatalf("Release: %v", err)
		}
		tok = h.raceClaims(fmt.Sprintf("re-claim after a release (round %d)", round), steady, tok)
	}
	if err := h.store.Release(h.ctx(), k, tok); err != nil {
		h.t.Fatalf("Release: %v", err)
	}
	// A crashed owner: its short lease runs out, then the recoveries race
	// (with leases that cannot run out while they do).
	crashed := h.mustClaim(h.req(k, "fp"))
	h.clock.Advance(h.lease + h.slack)
	tok = h.raceClaims("re-claim after the lease expired", steady, crashed)
	h.expectLeaseLost("crashed owner's Complete", h.store.Complete(h.ctx(), k, crashed, sampleResult("late")))
	if err := h.store.Complete(h.ctx(), k, tok, sampleResult("winner")); err != nil {
		h.t.Fatalf("winner's Complete: %v", err)
	}
	c := h.expectStatus(steady, idempotency.Completed)
	sameResult(h.t, "winner's result", c.Result, sampleResult("winner"))
}

// testConcurrentKeys runs claim/complete/release cycles on many keys from
// many goroutines at once, and checks every key ends with its own result.
func testConcurrentKeys(h *harness) {
	const workers, keys = 16, 8
	var wg sync.WaitGroup
	errc := make(chan error, workers*keys)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				k := h.key(fmt.Sprintf("w%d/k%d", w, i))
				ctx := h.ctx()
				c, err := h.store.Claim(ctx, h.req(k, "fp"))
				if err != nil || c.Status != idempotency.Claimed {
					errc <- fmt.Errorf("claim %v: %v %v", k, c.Status, err)
					return
				}
				if err := h.store.Release(ctx, k, c.Token); err != nil {
					errc <- fmt.Errorf("release %v: %v", k, err)
					return
				}
				c, err = h.store.Claim(ctx, h.req(k, "fp"))
				if err != nil || c.Status != idempotency.Claimed {
					errc <- fmt.Errorf("re-claim %v: %v %v", k, c.Status, err)
					return
				}
				if err := h.store.Complete(ctx, k, c.Token, sampleResult(k.Key)); err != nil {
					errc <- fmt.Errorf("complete %v: %v", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		h.t.Fatal(err)
	}
	for w := range workers {
		for i := range keys {
			k := h.key(fmt.Sprintf("w%d/k%d", w, i))
			c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
			sameResult(h.t, k.Key, c.Result, sampleResult(k.Key))
		}
	}
}

func testCompleteReplay(h *harness) {
	k := h.key("replay")
	tok := h.mustClaim(h.req(k, "fp"))
	want := sampleResult("replay")
	if err := h.store.Complete(h.ctx(), k, tok, want); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
	for i := range 3 {
		c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
		sameResult(h.t, fmt.Sprintf("replay %d", i), c.Result, want)
		if c.Token != tok {
			h.t.Fatalf("Completed token %d, want %d", c.Token, tok)
		}
	}
	r := h.get(k)
	if r.State != idempotency.StateCompleted || r.Token != tok || r.Fingerprint != "fp" {
		h.t.Fatalf("Get: %+v, want completed with token %d", r, tok)
	}
	sameResult(h.t, "Get", r.Result, want)
}

// testValuesAreCopied checks that a store keeps its own copy: changing the
// slices passed to Complete or returned by Claim/Get changes nothing stored.
func testValuesAreCopied(h *harness) {
	k := h.key("copied")
	tok := h.mustClaim(h.req(k, "fp"))
	in := sampleResult("copied")
	if err := h.store.Complete(h.ctx(), k, tok, in); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
	in.Body[0] = 'X'
	in.Header.Set("Content-Type", "text/evil")
	in.Header["X-Multi"][0] = "evil"

	want := sampleResult("copied")
	c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
	sameResult(h.t, "after the caller changed its input", c.Result, want)
	c.Result.Body[0] = 'Y'
	c.Result.Header.Set("Location", "/evil")
	r := h.get(k)
	sameResult(h.t, "after the caller changed a replay", r.Result, want)
	r.Result.Body[1] = 'Z'
	c = h.expectStatus(h.req(k, "fp"), idempotency.Completed)
	sameResult(h.t, "after the caller changed a Get", c.Result, want)
}

func testOpaqueResult(h *harness) {
	for _, body := range [][]byte{nil, []byte("42"), {0}} {
		k := h.key(fmt.Sprintf("opaque-%x", body))
		tok := h.mustClaim(h.req(k, "fp"))
		want := idempotency.Result{Body: body}
		if err := h.store.Complete(h.ctx(), k, tok, want); err != nil {
			h.t.Fatalf("Complete: %v", err)
		}
		c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
		sameResult(h.t, "opaque", c.Result, want)
	}
}

// testResultShapes: a header with thousands of values is replayed as it
// was stored; a status code outside [0, 999] is refused as invalid, and
// the owner keeps its claim.
func testResultShapes(h *harness) {
	ctx := h.ctx()
	vals := make([]string, 5000)
	for i := range vals {
		vals[i] = fmt.Sprint(i)
	}
	k := h.key("many-values")
	tok := h.mustClaim(h.req(k, "fp"))
	want := idempotency.Result{StatusCode: 200, Header: http.Header{"Link": vals}, Body: []byte("ok")}
	if err := h.store.Complete(ctx, k, tok, want); err != nil {
		h.t.Fatalf("Complete of a header with %d values: %v", len(vals), err)
	}
	c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
	sameResult(h.t, "a header with many values", c.Result, want)
	for _, status := range []int{-1, 1000} {
		k := h.key(fmt.Sprint("status", status))
		tok := h.mustClaim(h.req(k, "fp"))
		if err := h.store.Complete(ctx, k, tok, idempotency.Result{StatusCode: status}); !errors.Is(err, contract.ErrInvalid) {
			h.t.Fatalf("Complete with status %d: %v, want contract.ErrInvalid", status, err)
		}
		h.expectStatus(h.req(k, "fp"), idempotency.InProgress)
	}
}

func testMismatch(h *harness) {
	k := h.key("mismatch")
	tok := h.mustClaim(h.req(k, "fp-a"))
	c := h.expectStatus(h.req(k, "fp-b"), idempotency.Mismatch)
	if c.Result != nil {
		h.t.Fatalf("Mismatch while in progress carries a result: %+v", c.Result)
	}
	// The mismatching claim changed nothing.
	if r := h.get(k); r.Fingerprint != "fp-a" || r.State != idempotency.StateInProgress || r.Token != tok {
		h.t.Fatalf("after a mismatch, Get: %+v", r)
	}
	if err := h.store.Complete(h.ctx(), k, tok, sampleResult("a")); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
	c = h.expectStatus(h.req(k, "fp-b"), idempotency.Mismatch)
	if c.Result != nil {
		h.t.Fatalf("Mismatch on a completed key leaks the stored result to another payload")
	}
	h.expectStatus(h.req(k, ""), idempotency.Mismatch)
	c = h.expectStatus(h.req(k, "fp-a"), idempotency.Completed)
	sameResult(h.t, "original payload after a mismatch", c.Result, sampleResult("a"))
}

func testReleaseAndReclaim(h *harness) {
	k := h.key("release")
	prev := uint64(0)
	for i := range 5 {
		// A released key is claimable again, by any payload: the failed
		// attempt left no result to protect.
		tok := h.mustClaim(h.req(k, fmt.Sprintf("fp-%d", i%2)))
		if tok <= prev {
			h.t.Fatalf("round %d: token %d after %d; tokens must strictly increase per key", i, tok, prev)
		}
		prev = tok
		if err := h.store.Release(h.ctx(), k, tok); err != nil {
			h.t.Fatalf("Release: %v", err)
		}
		r := h.get(k)
		if r.State != idempotency.StateReleased || r.Token != tok {
			h.t.Fatalf("after Release, Get: %+v, want released with token %d", r, tok)
		}
		h.expectLeaseLost("Release twice", h.store.Release(h.ctx(), k, tok))
		h.expectLeaseLost("Complete after Release", h.store.Complete(h.ctx(), k, tok, sampleResult("late")))
		h.expectLeaseLost("Renew after Release", h.store.Renew(h.ctx(), k, tok, h.lease))
	}
	tok := h.mustClaim(h.req(k, "fp-final"))
	if tok <= prev {
		h.t.Fatalf("final token %d after %d", tok, prev)
	}
	if err := h.store.Complete(h.ctx(), k, tok, sampleResult("final")); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
	c := h.expectStatus(h.req(k, "fp-final"), idempotency.Completed)
	sameResult(h.t, "after releases", c.Result, sampleResult("final"))
}

func testUnknownOwner(h *harness) {
	ctx := h.ctx()
	k := h.key("unknown")
	h.expectLeaseLost("Complete of an unknown key", h.store.Complete(ctx, k, 1, sampleResult("x")))
	h.expectLeaseLost("Release of an unknown key", h.store.Release(ctx, k, 1))
	h.expectLeaseLost("Renew of an unknown key", h.store.Renew(ctx, k, 1, h.lease))
	if _, err := h.store.Get(ctx, k); !errors.Is(err, idempotency.ErrNotFound) {
		h.t.Fatalf("owner calls on an unknown key created a record: Get: %v", err)
	}
	tok := h.mustClaim(h.req(k, "fp"))
	for _, wrong := range []uint64{0, tok - 1, tok + 1, ^uint64(0)} {
		if wrong == tok {
			continue
		}
		h.expectLeaseLost("Complete with a wrong token", h.store.Complete(ctx, k, wrong, sampleResult("x")))
		h.expectLeaseLost("Release with a wrong token", h.store.Release(ctx, k, wrong))
		h.expectLeaseLost("Renew with a wrong token", h.store.Renew(ctx, k, wrong, h.lease))
	}
	if r := h.get(k); r.State != idempotency.StateInProgress || r.Token != tok {
		h.t.Fatalf("wrong tokens changed the record: %+v", r)
	}
}

// testCompletedIsFinal checks that once completed, not even the owner can
// overwrite, release (delete the stored result) or renew the record.
func testCompletedIsFinal(h *harness) {
	ctx := h.ctx()
	k := h.key("final")
	tok := h.mustClaim(h.req(k, "fp"))
	want := sampleResult("first")
	if err := h.store.Complete(ctx, k, tok, want); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
	h.expectLeaseLost("second Complete", h.store.Complete(ctx, k, tok, sampleResult("second")))
	h.expectLeaseLost("Release after Complete", h.store.Release(ctx, k, tok))
	h.expectLeaseLost("Renew after Complete", h.store.Renew(ctx, k, tok, h.lease))
	c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
	sameResult(h.t, "completed record", c.Result, want)
}

func testLeaseExpiryFencing(h *harness) {
	ctx := h.ctx()
	k := h.key("fencing")
	old := h.mustClaim(h.req(k, "fp"))
	h.expectStatus(h.req(k, "fp"), idempotency.InProgress)

	h.clock.Advance(h.lease + h.slack)
	r := h.get(k)
	if r.State != idempotency.StateInProgress || r.Token != old || r.LeaseRemaining > 0 {
		h.t.Fatalf("after the lease expired, Get: %+v, want in progress with token %d and LeaseRemaining <= 0", r, old)
	}
	// An expired lease is claimable: crash recovery.
	cur := h.mustClaim(h.req(k, "fp"))
	if cur <= old {
		h.t.Fatalf("re-claim after expiry: token %d, want > %d", cur, old)
	}
	// The late owner can change nothing.
	h.expectLeaseLost("late owner's Complete", h.store.Complete(ctx, k, old, sampleResult("late")))
	h.expectLeaseLost("late owner's Release", h.store.Release(ctx, k, old))
	h.expectLeaseLost("late owner's Renew", h.store.Renew(ctx, k, old, h.lease))
	r = h.get(k)
	if r.State != idempotency.StateInProgress || r.Token != cur || r.LeaseRemaining <= 0 {
		h.t.Fatalf("after the late owner's calls, Get: %+v, want in progress with token %d", r, cur)
	}
	want := sampleResult("new-owner")
	if err := h.store.Complete(ctx, k, cur, want); err != nil {
		h.t.Fatalf("new owner's Complete: %v", err)
	}
	h.expectLeaseLost("late owner's Complete after the new owner's", h.store.Complete(ctx, k, old, sampleResult("late")))
	c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
	sameResult(h.t, "new owner's result", c.Result, want)
	if c.Token != cur {
		h.t.Fatalf("completed token %d, want %d", c.Token, cur)
	}
}

func testExpiredLeaseCannotComplete(h *harness) {
	ctx := h.ctx()
	k := h.key("expired-complete")
	tok := h.mustClaim(h.req(k, "fp"))
	h.clock.Advance(h.lease + h.slack)
	// Nobody re-claimed, but the lease is gone: completing now could race a
	// re-claimer, so it must fail.
	h.expectLeaseLost("Complete after the lease expired", h.store.Complete(ctx, k, tok, sampleResult("late")))
	h.expectLeaseLost("Renew after the lease expired", h.store.Renew(ctx, k, tok, h.lease))
	if r := h.get(k); r.State != idempotency.StateInProgress || r.Result != nil {
		h.t.Fatalf("after a late Complete, Get: %+v", r)
	}
	tok2 := h.mustClaim(h.req(k, "fp"))
	if tok2 <= tok {
		h.t.Fatalf("token %d after %d", tok2, tok)
	}
}

func testRenew(h *harness) {
	ctx := h.ctx()
	k := h.key("renew")
	tok := h.mustClaim(h.req(k, "fp"))
	h.clock.Advance(h.lease / 2)
	// Renew extends the lease to 3*lease from now: well past the original.
	if err := h.store.Renew(ctx, k, tok, 3*h.lease); err != nil {
		h.t.Fatalf("Renew: %v", err)
	}
	h.clock.Advance(h.lease + h.slack) // past the original lease
	c := h.expectStatus(h.req(k, "fp"), idempotency.InProgress)
	if c.Token != tok || c.LeaseRemaining <= 0 {
		h.t.Fatalf("after Renew, a claimer sees %+v, want in progress owned by %d", c, tok)
	}
	if err := h.store.Renew(ctx, k, tok, h.lease); err != nil {
		h.t.Fatalf("second Renew: %v", err)
	}
	h.clock.Advance(h.lease + h.slack)
	// Lost: someone else claims; the owner learns it on its next heartbeat.
	cur := h.mustClaim(h.req(k, "fp"))
	if cur <= tok {
		h.t.Fatalf("token %d after %d", cur, tok)
	}
	h.expectLeaseLost("Renew after losing the lease", h.store.Renew(ctx, k, tok, h.lease))
	if r := h.get(k); r.Token != cur || r.State != idempotency.StateInProgress {
		h.t.Fatalf("a lost owner's Renew changed the record: %+v", r)
	}
	if err := h.store.Complete(ctx, k, cur, sampleResult("renewed")); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
}

func testRetention(h *harness) {
	ctx := h.ctx()
	k := h.key("retention")
	req := h.req(k, "fp")
	req.Retention = 2 * h.lease
	tok := h.mustClaim(req)
	if err := h.store.Complete(ctx, k, tok, sampleResult("kept")); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
	h.clock.Advance(h.lease)
	c := h.expectStatus(req, idempotency.Completed)
	sameResult(h.t, "within retention", c.Result, sampleResult("kept"))

	h.clock.Advance(h.lease + h.slack) // past the retention counted from Complete
	if _, err := h.store.Get(ctx, k); !errors.Is(err, idempotency.ErrNotFound) {
		h.t.Fatalf("Get after retention: %v, want ErrNotFound", err)
	}
	// The key is new again; a different payload is not a mismatch any more.
	req.Fingerprint = "fp-other"
	h.mustClaim(req)

	// A claim abandoned in progress also goes away after its retention.
	k2 := h.key("retention-abandoned")
	req2 := h.req(k2, "fp")
	req2.Retention = 2 * h.lease
	stale := h.mustClaim(req2)
	h.clock.Advance(2*h.lease + h.slack)
	if _, err := h.store.Get(ctx, k2); !errors.Is(err, idempotency.ErrNotFound) {
		h.t.Fatalf("Get of an abandoned claim after retention: %v, want ErrNotFound", err)
	}
	// Its owner, stalled past the record's lifetime, is fenced off all the
	// same: the next claim's token is greater, though the record that
	// carried the old one is gone, and the stale owner can change nothing.
	cur := h.mustClaim(h.req(k2, "fp"))
	if cur <= stale {
		h.t.Fatalf("claim after the record expired: token %d, want > the stale owner's %d", cur, stale)
	}
	h.expectLeaseLost("stale owner's Complete after its record expired", h.store.Complete(ctx, k2, stale, sampleResult("stale")))
	h.expectLeaseLost("stale owner's Release after its record expired", h.store.Release(ctx, k2, stale))
	h.expectLeaseLost("stale owner's Renew after its record expired", h.store.Renew(ctx, k2, stale, h.lease))
	if r := h.get(k2); r.State != idempotency.StateInProgress || r.Token != cur {
		h.t.Fatalf("after the stale owner's calls, Get: %+v, want in progress with token %d", r, cur)
	}
}

// testRetentionFromCompletion: a result is kept for the claim's Retention
// counted from its completion, not from the claim. An operation that ran
// long (its lease renewed) must not see its result expire early, when a
// retry would run it a second time.
func testRetentionFromCompletion(h *harness) {
	ctx := h.ctx()
	k := h.key("retention-from-completion")
	req := h.req(k, "fp")
	req.Retention = 4 * h.lease
	tok := h.mustClaim(req)
	if err := h.store.Renew(ctx, k, tok, 3*h.lease); err != nil {
		h.t.Fatalf("Renew: %v", err)
	}
	h.clock.Advance(5 * h.lease / 2)
	want := sampleResult("late")
	if err := h.store.Complete(ctx, k, tok, want); err != nil {
		h.t.Fatalf("Complete: %v", err)
	}
	// Past the retention counted from the claim, within the one counted
	// from the completion.
	h.clock.Advance(5 * h.lease / 2)
	c := h.expectStatus(req, idempotency.Completed)
	sameResult(h.t, "within the retention counted from completion", c.Result, want)
}

// testRenewPastRetention: a lease renewed past the record's retention
// keeps the record, in progress, until the lease ends: a record dropped
// under a running lease would let a duplicate claim the key and run the
// operation a second time (the executor renews for Retention to hold a key
// whose result it could not store).
func testRenewPastRetention(h *harness) {
	ctx := h.ctx()
	k := h.key("renew-past-retention")
	req := h.req(k, "fp")
	req.Retention = 2 * h.lease
	tok := h.mustClaim(req)
	h.clock.Advance(h.lease / 2)
	if err := h.store.Renew(ctx, k, tok, 3*h.lease); err != nil {
		h.t.Fatalf("Renew: %v", err)
	}
	h.clock.Advance(2 * h.lease) // past the retention counted from the claim, within the lease
	c := h.expectStatus(req, idempotency.InProgress)
	if c.Token != tok {
		h.t.Fatalf("in progress with token %d, want the owner's %d", c.Token, tok)
	}
	if err := h.store.Complete(ctx, k, tok, sampleResult("held")); err != nil {
		h.t.Fatalf("Complete within the renewed lease: %v", err)
	}
}

// testExpiredLeaseAnyPayload: a claim whose owner's lease expired (the
// owner crashed) is won by the next claimer whatever its payload, as a
// released one is: the crashed attempt left no result to protect, and a
// store answering Mismatch would hold the key against every retry with
// another payload for the whole retention.
func testExpiredLeaseAnyPayload(h *harness) {
	k := h.key("expired-any-payload")
	old := h.mustClaim(h.req(k, "fp-a"))
	h.clock.Advance(h.lease + h.slack)
	cur := h.mustClaim(h.req(k, "fp-b"))
	if cur <= old {
		h.t.Fatalf("re-claim after expiry: token %d, want > %d", cur, old)
	}
	if r := h.get(k); r.State != idempotency.StateInProgress || r.Fingerprint != "fp-b" || r.Token != cur {
		h.t.Fatalf("after the re-claim, Get: %+v, want in progress with fingerprint fp-b and token %d", r, cur)
	}
	h.expectStatus(h.req(k, "fp-a"), idempotency.Mismatch)
}

func testLargeValue(h *harness) {
	k := h.key("large")
	tok := h.mustClaim(h.req(k, "fp"))
	body := make([]byte, 1<<20)
	for i := range body {
		body[i] = byte(i*7 + i>>8)
	}
	want := idempotency.Result{
		StatusCode: 200,
		Header:     http.Header{"X-Large": {strings.Repeat("h", 8<<10)}},
		Body:       body,
	}
	if err := h.store.Complete(h.ctx(), k, tok, want); err != nil {
		h.t.Fatalf("Complete of a 1 MiB result: %v", err)
	}
	c := h.expectStatus(h.req(k, "fp"), idempotency.Completed)
	sameResult(h.t, "1 MiB result", c.Result, want)
}

// oddKeys are pairs that a store joining scope and key naively (with ":"
// or "/") would confuse, plus bytes that break text encodings.
func oddKeys(prefix string) []idempotency.Key {
	return []idempotency.Key{
		{Scope: prefix + "a:b", Key: "c"},
		{Scope: prefix + "a", Key: "b:c"},
		{Scope: prefix + "a/b", Key: "c"},
		{Scope: prefix + "a", Key: "b/c"},
		{Scope: prefix + "a", Key: "b\x00c"},
		{Scope: prefix + "a\x00b", Key: "c"},
		{Scope: prefix + "nl", Key: "line\nbreak\r\n"},
		{Scope: prefix + "utf8", Key: "clé-🔑-ключ"},
		{Scope: prefix + "bad-utf8", Key: "\xff\xfe\xc0"},
		{Scope: prefix + "space", Key: " "},
		{Scope: prefix + "space", Key: "  "},
		{Scope: prefix + "quote", Key: `"';--`},
		{Scope: prefix + "long", Key: strings.Repeat("k", 1024)},
		{Scope: prefix + "long", Key: strings.Repeat("k", 1023) + "K"},
		{Scope: prefix + strings.Repeat("s", 1024), Key: "k"},
		{Scope: prefix + "glob", Key: "*"},
		{Scope: prefix + "glob", Key: "?[a]%_"},
		{Scope: prefix, Key: "a:b:c"},
	}
}

func testOddKeys(h *harness) {
	keys := oddKeys(h.prefix)
	toks := make([]uint64, len(keys))
	for i, k := range keys {
		toks[i] = h.mustClaim(h.req(k, fmt.Sprintf("fp-%d", i)))
	}
	for i, k := range keys {
		if err := h.store.Complete(h.ctx(), k, toks[i], idempotency.Result{Body: fmt.Appendf(nil, "body-%d", i)}); err != nil {
			h.t.Fatalf("Complete(%q): %v", k, err)
		}
	}
	for i, k := range keys {
		c := h.expectStatus(h.req(k, fmt.Sprintf("fp-%d", i)), idempotency.Completed)
		sameResult(h.t, fmt.Sprintf("key %q", k), c.Result, idempotency.Result{Body: fmt.Appendf(nil, "body-%d", i)})
		r := h.get(k)
		if r.Fingerprint != fmt.Sprintf("fp-%d", i) {
			h.t.Fatalf("Get(%q): fingerprint %q, want fp-%d", k, r.Fingerprint, i)
		}
	}
	// Odd fingerprints are opaque bytes too.
	k := h.key("odd-fingerprint")
	fp := "\x00\n" + strings.Repeat("f", 512) + "\xff"
	h.mustClaim(h.req(k, fp))
	h.expectStatus(h.req(k, fp), idempotency.InProgress)
	h.expectStatus(h.req(k, fp[:len(fp)-1]), idempotency.Mismatch)
}

func testScopeIsolation(h *harness) {
	ctx := h.ctx()
	a := idempotency.Key{Scope: h.prefix + "tenant-a", Key: "same-key"}
	b := idempotency.Key{Scope: h.prefix + "tenant-b", Key: "same-key"}
	ta := h.mustClaim(h.req(a, "fp-a"))
	// Another scope's claim with the same key and another payload is not a
	// mismatch and not in progress: it is a different key.
	tb := h.mustClaim(h.req(b, "fp-b"))
	if err := h.store.Complete(ctx, a, ta, sampleResult("a")); err != nil {
		h.t.Fatalf("Complete a: %v", err)
	}
	h.expectLeaseLost("scope b's token on scope a", h.store.Release(ctx, a, tb))
	if r := h.get(b); r.State != idempotency.StateInProgress || r.Fingerprint != "fp-b" {
		h.t.Fatalf("scope b after scope a completed: %+v", r)
	}
	if err := h.store.Complete(ctx, b, tb, sampleResult("b")); err != nil {
		h.t.Fatalf("Complete b: %v", err)
	}
	ca := h.expectStatus(h.req(a, "fp-a"), idempotency.Completed)
	sameResult(h.t, "scope a", ca.Result, sampleResult("a"))
	cb := h.expectStatus(h.req(b, "fp-b"), idempotency.Completed)
	sameResult(h.t, "scope b", cb.Result, sampleResult("b"))
	c := idempotency.Key{Scope: h.prefix + "tenant-c", Key: "same-key"}
	if _, err := h.store.Get(ctx, c); !errors.Is(err, idempotency.ErrNotFound) {
		h.t.Fatalf("Get in a third scope: %v, want ErrNotFound", err)
	}
}

func testInvalidRequest(h *harness) {
	k := h.key("invalid")
	bad := []idempotency.ClaimRequest{
		{Key: k, Fingerprint: "fp", Lease: 0, Retention: time.Hour},
		{Key: k, Fingerprint: "fp", Lease: -time.Second, Retention: time.Hour},
		{Key: k, Fingerprint: "fp", Lease: time.Hour, Retention: time.Minute},
	}
	for _, req := range bad {
		_, err := h.store.Claim(h.ctx(), req)
		if !errors.Is(err, contract.ErrInvalid) {
			h.t.Fatalf("Claim with lease %v retention %v: %v, want an error matching contract.ErrInvalid", req.Lease, req.Retention, err)
		}
	}
	if _, err := h.store.Get(h.ctx(), k); !errors.Is(err, idempotency.ErrNotFound) {
		h.t.Fatalf("an invalid claim created a record: Get: %v", err)
	}
	tok := h.mustClaim(h.req(k, "fp"))
	if err := h.store.Renew(h.ctx(), k, tok, 0); !errors.Is(err, contract.ErrInvalid) {
		h.t.Fatalf("Renew with lease 0: %v, want an error matching contract.ErrInvalid", err)
	}
}

func canceledErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, contract.ErrCanceled)
}

func testCanceledContext(h *harness) {
	ctx, cancel := context.WithCancel(h.ctx())
	cancel()
	k := h.key("canceled")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := h.store.Claim(ctx, h.req(k, "fp")); !canceledErr(err) {
			h.t.Errorf("Claim with a canceled context: %v, want context.Canceled or KindCanceled", err)
		}
		if err := h.store.Complete(ctx, k, 1, sampleResult("x")); !canceledErr(err) {
			h.t.Errorf("Complete with a canceled context: %v", err)
		}
		if err := h.store.Release(ctx, k, 1); !canceledErr(err) {
			h.t.Errorf("Release with a canceled context: %v", err)
		}
		if err := h.store.Renew(ctx, k, 1, h.lease); !canceledErr(err) {
			h.t.Errorf("Renew with a canceled context: %v", err)
		}
		if _, err := h.store.Get(ctx, k); !canceledErr(err) {
			h.t.Errorf("Get with a canceled context: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("store calls with a canceled context did not return within 10s")
	}
	if h.t.Failed() {
		return
	}
	// A claim that failed on a canceled context must not hold the key.
	if _, err := h.store.Get(h.ctx(), k); !errors.Is(err, idempotency.ErrNotFound) {
		h.t.Fatalf("a canceled Claim created a record: Get: %v", err)
	}
	h.mustClaim(h.req(k, "fp"))
}
