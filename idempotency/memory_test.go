package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
)

func newMemory(t testing.TB, cfg idempotency.MemoryConfig) *idempotency.MemoryStore {
	t.Helper()
	s, err := idempotency.NewMemoryStore(cfg)
	if err != nil {
		t.Fatalf("NewMemoryStore: %v", err)
	}
	return s
}

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) {
		clk := storetest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		return newMemory(t, idempotency.MemoryConfig{Clock: clk}), clk
	})
}

func TestMemoryStoreConformanceSharded(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) {
		clk := storetest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		return newMemory(t, idempotency.MemoryConfig{Clock: clk, Shards: 8, MaxBytes: 64 << 20}), clk
	})
}

// The suite with a degenerate hash, so that most keys share one: records
// with colliding hashes must stay apart.
func TestMemoryStoreConformanceCollidingHashes(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) {
		clk := storetest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		s := newMemory(t, idempotency.MemoryConfig{Clock: clk, Shards: 4, MaxBytes: 64 << 20})
		idempotency.SetMemoryHash(s, func(k idempotency.Key) uint64 { return uint64(len(k.Key) % 3) })
		return s, clk
	})
}

func TestMemoryStoreCollisionsEvictAndExpire(t *testing.T) {
	clk := storetest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newMemory(t, idempotency.MemoryConfig{Clock: clk, MaxEntries: 8})
	idempotency.SetMemoryHash(s, func(idempotency.Key) uint64 { return 7 })
	ctx := context.Background()
	claim := func(k string, lease time.Duration) idempotency.Claim {
		t.Helper()
		c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: idempotency.Key{Scope: "s", Key: k}, Fingerprint: "fp", Lease: lease, Retention: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range 20 { // 20 keys through 8 slots, all on one hash: eviction unlinks from the middle of the chain
		k := strconv.Itoa(i)
		c := claim(k, time.Second)
		if c.Status != idempotency.Claimed {
			t.Fatalf("key %s: %v", k, c.Status)
		}
		if err := s.Complete(ctx, idempotency.Key{Scope: "s", Key: k}, c.Token, idempotency.Result{Body: []byte(k)}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if s.Len() != 8 {
		t.Fatalf("Len %d, want 8", s.Len())
	}
	for i := range 20 {
		k := strconv.Itoa(i)
		r, err := s.Get(ctx, idempotency.Key{Scope: "s", Key: k})
		switch {
		case i < 12 && !errors.Is(err, idempotency.ErrNotFound):
			t.Fatalf("key %s: evicted record found: %v %v", k, r, err)
		case i >= 12 && (err != nil || string(r.Result.Body) != k):
			t.Fatalf("key %s: %+v %v", k, r, err)
		}
	}
	clk.Advance(2 * time.Hour)
	if c := claim("new", time.Second); c.Status != idempotency.Claimed || s.Len() != 1 {
		t.Fatalf("after expiry: %v, Len %d", c.Status, s.Len())
	}
}

// The suite on the real clock, as Redis and PostgreSQL stores run it.
func TestMemoryStoreConformanceRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps on real time")
	}
	storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) {
		return newMemory(t, idempotency.MemoryConfig{}), nil
	})
}

func TestMemoryConfigValidation(t *testing.T) {
	tests := []struct {
		cfg   idempotency.MemoryConfig
		field string
	}{
		{idempotency.MemoryConfig{MaxEntries: -1}, "MemoryConfig.MaxEntries"},
		{idempotency.MemoryConfig{MaxBytes: -5}, "MemoryConfig.MaxBytes"},
		{idempotency.MemoryConfig{Shards: 3}, "MemoryConfig.Shards"},
		{idempotency.MemoryConfig{Shards: -2}, "MemoryConfig.Shards"},
		{idempotency.MemoryConfig{Shards: 16, MaxEntries: 8}, "MemoryConfig.MaxEntries"},
		{idempotency.MemoryConfig{Shards: 1, MaxEntries: 1 << 31, MaxBytes: 1 << 40}, "MemoryConfig.MaxEntries"}, // a shard's heap indexes records with int32
		{idempotency.MemoryConfig{MaxBytes: 100}, "MemoryConfig.MaxBytes"},
	}
	for _, tc := range tests {
		_, err := idempotency.NewMemoryStore(tc.cfg)
		if !errors.Is(err, contract.ErrInvalid) {
			t.Fatalf("%+v: %v, want contract.ErrInvalid", tc.cfg, err)
		}
		if e := contract.As(err); e.Code != "config.invalid" || !strings.Contains(e.Detail, tc.field) {
			t.Fatalf("%+v: code %q detail %q, want config.invalid naming %s", tc.cfg, e.Code, e.Detail, tc.field)
		}
	}
}

func claimN(t *testing.T, s idempotency.Store, scope string, n int, lease time.Duration, complete bool) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		k := idempotency.Key{Scope: scope, Key: fmt.Sprint(i)}
		c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: lease, Retention: time.Hour + time.Duration(i)*time.Minute})
		if err != nil || c.Status != idempotency.Claimed {
			t.Fatalf("claim %d: %v %v", i, c.Status, err)
		}
		if complete {
			if err := s.Complete(ctx, k, c.Token, idempotency.Result{Body: []byte("r")}); err != nil {
				t.Fatalf("complete %d: %v", i, err)
			}
		}
	}
}

func TestMemoryStoreEvictsOldestExpiringFirst(t *testing.T) {
	clk := storetest.NewFakeClock(time.Unix(0, 0))
	s := newMemory(t, idempotency.MemoryConfig{MaxEntries: 10, Clock: clk})
	claimN(t, s, "a", 10, time.Minute, true) // key i expires at 1h+i min
	clk.Advance(30 * time.Minute)
	claimN(t, s, "b", 3, time.Minute, true) // b/i expires at 1h30+i min: evicts a/0, a/1, a/2
	if got := s.Len(); got != 10 {
		t.Fatalf("Len %d, want 10", got)
	}
	ctx := context.Background()
	for i := range 10 {
		_, err := s.Get(ctx, idempotency.Key{Scope: "a", Key: fmt.Sprint(i)})
		if evicted := i < 3; evicted != errors.Is(err, idempotency.ErrNotFound) {
			t.Fatalf("a/%d: Get error %v; want evicted=%v", i, err, evicted)
		}
	}
}

func TestMemoryStoreNeverEvictsInProgress(t *testing.T) {
	clk := storetest.NewFakeClock(time.Unix(0, 0))
	s := newMemory(t, idempotency.MemoryConfig{MaxEntries: 4, Clock: clk})
	claimN(t, s, "busy", 3, time.Minute, false)
	claimN(t, s, "done", 1, time.Minute, true)
	ctx := context.Background()
	// Full: the completed record goes, the live claims stay.
	claimN(t, s, "new", 1, time.Minute, false)
	_, err := s.Claim(ctx, idempotency.ClaimRequest{Key: idempotency.Key{Scope: "x", Key: "y"}, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
	if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
		t.Fatalf("claim into a store full of live claims: %v, want retryable unavailable", err)
	}
	for i := range 3 {
		r, err := s.Get(ctx, idempotency.Key{Scope: "busy", Key: fmt.Sprint(i)})
		if err != nil || r.State != idempotency.StateInProgress {
			t.Fatalf("live claim busy/%d evicted: %v %v", i, r, err)
		}
	}
	// Once leases expire, those claims are evictable.
	clk.Advance(time.Minute)
	claimN(t, s, "later", 4, time.Minute, false)
}

func TestMemoryStoreByteBound(t *testing.T) {
	clk := storetest.NewFakeClock(time.Unix(0, 0))
	const maxBytes = 64 << 10
	s := newMemory(t, idempotency.MemoryConfig{MaxBytes: maxBytes, Clock: clk})
	ctx := context.Background()
	body := make([]byte, 4<<10)
	for i := range 200 {
		k := idempotency.Key{Scope: "s", Key: fmt.Sprint(i)}
		c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
		if err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
		// A response: a result with StatusCode 0 is Do's, counted twice
		// for the decoded value replays may keep with it.
		if err := s.Complete(ctx, k, c.Token, idempotency.Result{StatusCode: 200, Body: body}); err != nil {
			t.Fatalf("complete %d: %v", i, err)
		}
		if b := s.Bytes(); b > maxBytes {
			t.Fatalf("after %d results: %d bytes held, bound %d", i+1, b, maxBytes)
		}
	}
	if n := s.Len(); n < 10 || n > 16 {
		t.Fatalf("Len %d: want the 4 KiB results that fit in 64 KiB", n)
	}
	// A result over the whole budget is refused; the owner keeps its lease.
	k := idempotency.Key{Scope: "s", Key: "huge"}
	c, _ := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Minute, Retention: time.Hour})
	err := s.Complete(ctx, k, c.Token, idempotency.Result{Body: make([]byte, maxBytes)})
	if !errors.Is(err, contract.ErrTooLarge) {
		t.Fatalf("Complete over the budget: %v, want contract.ErrTooLarge", err)
	}
	if err := s.Release(ctx, k, c.Token); err != nil {
		t.Fatalf("Release after a refused Complete: %v", err)
	}
}

// A claim or completion the store must refuse evicts nothing: completed
// records are what stops a duplicate from running again, and dropping them
// for a request that fails anyway would only invite second executions.
func TestMemoryStoreRefusalEvictsNothing(t *testing.T) {
	ctx := context.Background()
	req := func(k, fp string) idempotency.ClaimRequest {
		return idempotency.ClaimRequest{Key: idempotency.Key{Scope: "s", Key: k}, Fingerprint: fp, Lease: time.Minute, Retention: time.Hour}
	}
	const maxBytes = 64 << 10
	setup := func(t *testing.T) (*idempotency.MemoryStore, *storetest.FakeClock) {
		clk := storetest.NewFakeClock(time.Unix(0, 0))
		s := newMemory(t, idempotency.MemoryConfig{MaxBytes: maxBytes, MaxEntries: 100, Shards: 1, Clock: clk})
		for i := range 10 {
			k := strconv.Itoa(i)
			c, err := s.Claim(ctx, req(k, "fp"))
			if err != nil || c.Status != idempotency.Claimed {
				t.Fatal(c.Status, err)
			}
			if err := s.Complete(ctx, req(k, "").Key, c.Token, idempotency.Result{Body: []byte("done")}); err != nil {
				t.Fatal(err)
			}
		}
		return s, clk
	}
	stillCompleted := func(t *testing.T, s *idempotency.MemoryStore) {
		t.Helper()
		if n := s.Len(); n < 10 {
			t.Errorf("Len %d after a refused request, want the 10 completed records kept", n)
		}
		for i := range 10 {
			if c, err := s.Claim(ctx, req(strconv.Itoa(i), "fp")); err != nil || c.Status != idempotency.Completed {
				t.Fatalf("duplicate of completed key %d: %v %v, want completed", i, c.Status, err)
			}
		}
		if b := s.Bytes(); b > maxBytes {
			t.Errorf("Bytes %d over the bound %d", b, maxBytes)
		}
	}

	t.Run("claim larger than the shard", func(t *testing.T) {
		s, _ := setup(t)
		_, err := s.Claim(ctx, req("huge", strings.Repeat("f", maxBytes)))
		if !errors.Is(err, contract.ErrTooLarge) || contract.Retryable(err) {
			t.Fatalf("oversize claim: %v, want a permanent contract.ErrTooLarge", err)
		}
		stillCompleted(t, s)
	})
	t.Run("released key re-claimed with a fingerprint too large", func(t *testing.T) {
		s, _ := setup(t)
		c, err := s.Claim(ctx, req("r", "fp"))
		if err != nil || c.Status != idempotency.Claimed {
			t.Fatal(c.Status, err)
		}
		if err := s.Release(ctx, req("r", "").Key, c.Token); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Claim(ctx, req("r", strings.Repeat("f", maxBytes))); !errors.Is(err, contract.ErrTooLarge) {
			t.Fatalf("re-claim over the budget: %v, want contract.ErrTooLarge", err)
		}
		stillCompleted(t, s)
		// A re-claim that fits once older records go evicts them, and
		// stays within the bound.
		if c, err := s.Claim(ctx, req("r", strings.Repeat("f", maxBytes/2))); err != nil || c.Status != idempotency.Claimed {
			t.Fatalf("re-claim within the budget: %v %v", c.Status, err)
		}
		if b := s.Bytes(); b > maxBytes {
			t.Fatalf("Bytes %d over the bound %d after a re-claim", b, maxBytes)
		}
	})
	t.Run("room held by live claims", func(t *testing.T) {
		s, _ := setup(t)
		// Live claims take most of the budget; what is left, with every
		// completed record evicted, is still too little for the next one.
		big := strings.Repeat("f", maxBytes/4)
		for i := range 3 {
			if c, err := s.Claim(ctx, req("live"+strconv.Itoa(i), big)); err != nil || c.Status != idempotency.Claimed {
				t.Fatalf("live claim %d: %v %v", i, c.Status, err)
			}
		}
		before := s.Len()
		_, err := s.Claim(ctx, req("next", big))
		if !errors.Is(err, contract.ErrUnavailable) || !contract.Retryable(err) {
			t.Fatalf("claim into a shard held by live claims: %v, want retryable unavailable", err)
		}
		if n := s.Len(); n != before {
			t.Fatalf("the refused claim evicted %d records", before-n)
		}
	})
	// Completing with a result that cannot fit beside the live claims fails
	// as the doc says, with KindTooLarge: the executor then records that
	// the operation ran instead of leaving its key to run again. The owner
	// keeps its lease.
	t.Run("result beside live claims", func(t *testing.T) {
		s, _ := setup(t)
		big := strings.Repeat("f", maxBytes/4)
		for i := range 3 {
			if c, err := s.Claim(ctx, req("live"+strconv.Itoa(i), big)); err != nil || c.Status != idempotency.Claimed {
				t.Fatalf("live claim %d: %v %v", i, c.Status, err)
			}
		}
		k := req("pay", "").Key
		c, err := s.Claim(ctx, req("pay", "fp"))
		if err != nil || c.Status != idempotency.Claimed {
			t.Fatal(c.Status, err)
		}
		before := s.Len()
		err = s.Complete(ctx, k, c.Token, idempotency.Result{StatusCode: 200, Body: make([]byte, maxBytes/4)})
		if !errors.Is(err, contract.ErrTooLarge) || contract.As(err).Code != "idempotency.result_too_large" {
			t.Fatalf("Complete of a result that cannot fit beside live claims: %v (kind %v), want KindTooLarge idempotency.result_too_large", err, contract.KindOf(err))
		}
		if n := s.Len(); n != before {
			t.Fatalf("the refused completion evicted %d records", before-n)
		}
		stillCompleted(t, s)
		if err := s.Complete(ctx, k, c.Token, idempotency.Result{StatusCode: 409, Body: []byte("not stored")}); err != nil {
			t.Fatalf("the owner's Complete of a small result after the refusal: %v", err)
		}
	})
}

func TestMemoryStoreExpiryFreesSpace(t *testing.T) {
	clk := storetest.NewFakeClock(time.Unix(0, 0))
	s := newMemory(t, idempotency.MemoryConfig{MaxEntries: 100, Clock: clk})
	claimN(t, s, "a", 50, time.Minute, true)
	clk.Advance(24 * time.Hour)
	claimN(t, s, "b", 1, time.Minute, false) // a write drops the expired records
	if n := s.Len(); n != 1 {
		t.Fatalf("Len %d after every record expired and one claim, want 1", n)
	}
}

// Many goroutines over a small sharded store: bounds hold and every
// operation answers consistently, under -race.
func TestMemoryStoreConcurrentBounded(t *testing.T) {
	s := newMemory(t, idempotency.MemoryConfig{MaxEntries: 2048, MaxBytes: 16 << 20, Shards: 8})
	var wg sync.WaitGroup
	ctx := context.Background()
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				k := idempotency.Key{Scope: "c", Key: fmt.Sprint((g*7919 + i) % 3000)}
				c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Minute})
				if err != nil {
					if errors.Is(err, contract.ErrUnavailable) {
						continue
					}
					t.Errorf("claim: %v", err)
					return
				}
				if c.Status != idempotency.Claimed {
					continue
				}
				if i%3 == 0 {
					err = s.Release(ctx, k, c.Token)
				} else {
					err = s.Complete(ctx, k, c.Token, idempotency.Result{StatusCode: 200, Body: []byte(k.Key)})
				}
				if err != nil {
					t.Errorf("finish %v: %v", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := s.Len(); n > 2048 {
		t.Fatalf("Len %d over MaxEntries 2048", n)
	}
	for i := range 3000 {
		k := idempotency.Key{Scope: "c", Key: fmt.Sprint(i)}
		r, err := s.Get(ctx, k)
		if err != nil {
			continue
		}
		if r.State == idempotency.StateCompleted && string(r.Result.Body) != k.Key {
			t.Fatalf("%v holds %q", k, r.Result.Body)
		}
	}
}

func TestMemoryShardsFillCacheLines(t *testing.T) {
	if strconv.IntSize != 64 {
		t.Skip("padding computed for 64-bit platforms")
	}
	if idempotency.MemShardSize%64 != 0 {
		t.Fatalf("a shard is %d bytes, not a multiple of a 64-byte cache line", idempotency.MemShardSize)
	}
}

// TestMemoryStoreBytesTrackHeap checks that MaxBytes bounds what the store
// really holds: the bytes it accounts for its records stay within a few
// percent of what they add to the Go heap, for results with and without a
// header map (a header map costs ~400 bytes, more than a small body). The
// accounting may err on the safe side, but not by much: a bound that
// counts too little lets the heap grow past it, one that counts too much
// keeps fewer records than it could.
func TestMemoryStoreBytesTrackHeap(t *testing.T) {
	const n = 50_000
	body := []byte(`{"amount":1250,"currency":"EUR","to":"acc_42"}`)
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"body only", nil},
		{"body and Content-Type", http.Header{"Content-Type": {"application/json"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkBytesTrackHeap(t, n, func(s *idempotency.MemoryStore) {
				ctx := context.Background()
				for i := range n {
					k := idempotency.Key{Scope: "tenant-1", Key: "5f0c9a7e-2a51-4f0e-9d1e-" + strconv.Itoa(100_000_000_000+i)}
					c, err := s.Claim(ctx, idempotency.ClaimRequest{Key: k, Fingerprint: idempotency.Fingerprint([]byte(k.Key)), Lease: time.Minute, Retention: time.Hour})
					if err != nil {
						t.Fatal(err)
					}
					if err := s.Complete(ctx, k, c.Token, idempotency.Result{StatusCode: 201, Header: tc.header.Clone(), Body: body}); err != nil {
						t.Fatal(err)
					}
				}
			})
		})
	}
}

// TestMemoryStoreBytesTrackHeapThroughDoAndMiddleware is
// TestMemoryStoreBytesTrackHeap for records written by Do and by the
// middleware, each replayed twice, so that the memos replays attach (a
// decoded value, replay headers) are on the heap too: a value whose
// strings are as large as its encoding (a document) is held twice, once
// encoded in the record and once in its memo. The executors renew no
// leases: the heartbeat's sweep timer, armed by a call, would keep an
// executor and its store on the heap for a while after a case ends, into
// the next case's measurement.
func TestMemoryStoreBytesTrackHeapThroughDoAndMiddleware(t *testing.T) {
	key := func(i int) idempotency.Key {
		return idempotency.Key{Scope: "tenant-1", Key: "5f0c9a7e-2a51-4f0e-9d1e-" + strconv.Itoa(100_000_000_000+i)}
	}
	type payment struct {
		ID     string `json:"id"`
		Amount int64  `json:"amount"`
	}
	create := func(context.Context) (payment, error) { return payment{ID: "pay_1", Amount: 100}, nil }
	type document struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	text := strings.Repeat("x", 8<<10)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"pay_1","status":"created"}`))
	})
	for _, tc := range []struct {
		name string
		n    int
		run  func(s *idempotency.MemoryStore) func(i int)
	}{
		{"Do", 20_000, func(s *idempotency.MemoryStore) func(int) {
			ex, err := idempotency.New(idempotency.Config{Store: s, Heartbeat: -1})
			if err != nil {
				t.Fatal(err)
			}
			return func(i int) {
				k := key(i)
				for range 3 {
					if _, err := idempotency.Do(context.Background(), ex, k, idempotency.Fingerprint([]byte(k.Key)), create); err != nil {
						t.Fatal(err)
					}
				}
			}
		}},
		// The value's strings are fresh heap, as a value built from a
		// request or a database row has: the memo seeded at completion
		// keeps them.
		{"Do, 8 KiB strings", 1_000, func(s *idempotency.MemoryStore) func(int) {
			ex, err := idempotency.New(idempotency.Config{Store: s, Heartbeat: -1})
			if err != nil {
				t.Fatal(err)
			}
			return func(i int) {
				k := key(i)
				for range 3 {
					if _, err := idempotency.Do(context.Background(), ex, k, idempotency.Fingerprint([]byte(k.Key)), func(context.Context) (document, error) {
						return document{ID: "doc_" + strconv.Itoa(i), Text: strings.Clone(text)}, nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}},
		// The value's strings are cut from a larger one (an upstream
		// response read whole, an id sliced from a document): the memo
		// seeded at completion must hold them, not the whole text.
		{"Do, strings cut from 8 KiB", 1_000, func(s *idempotency.MemoryStore) func(int) {
			ex, err := idempotency.New(idempotency.Config{Store: s, Heartbeat: -1})
			if err != nil {
				t.Fatal(err)
			}
			return func(i int) {
				k := key(i)
				for range 3 {
					if _, err := idempotency.Do(context.Background(), ex, k, idempotency.Fingerprint([]byte(k.Key)), func(context.Context) (document, error) {
						resp := strings.Clone(text)
						return document{ID: resp[:8], Text: resp[100:160]}, nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}},
		// The same for a stored error's detail (Config.StoreError).
		{"Do, stored error detail cut from 8 KiB", 1_000, func(s *idempotency.MemoryStore) func(int) {
			ex, err := idempotency.New(idempotency.Config{Store: s, Heartbeat: -1, StoreError: func(error) bool { return true }})
			if err != nil {
				t.Fatal(err)
			}
			return func(i int) {
				k := key(i)
				for range 3 {
					_, err := idempotency.Do(context.Background(), ex, k, idempotency.Fingerprint([]byte(k.Key)), func(context.Context) (document, error) {
						resp := strings.Clone(text)
						return document{}, contract.New(contract.KindInvalid, "upstream", resp[:60]).WithCode(resp[60:68])
					})
					if !errors.Is(err, contract.ErrInvalid) {
						t.Fatal(err)
					}
				}
			}
		}},
		// A type Do does not seed (its JSON is not exact: the tag drops a
		// field), so the memo is decoded at the second replay.
		{"Do, 8 KiB strings, decoded", 1_000, func(s *idempotency.MemoryStore) func(int) {
			type note struct {
				ID    string `json:"id"`
				Text  string `json:"text"`
				Draft string `json:"-"`
			}
			ex, err := idempotency.New(idempotency.Config{Store: s, Heartbeat: -1})
			if err != nil {
				t.Fatal(err)
			}
			return func(i int) {
				k := key(i)
				for range 3 {
					if _, err := idempotency.Do(context.Background(), ex, k, idempotency.Fingerprint([]byte(k.Key)), func(context.Context) (note, error) {
						return note{ID: "doc_" + strconv.Itoa(i), Text: text}, nil
					}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}},
		{"Middleware", 20_000, func(s *idempotency.MemoryStore) func(int) {
			mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{Config: idempotency.Config{Store: s, Heartbeat: -1}, Scope: callerScope})
			if err != nil {
				t.Fatal(err)
			}
			h := mw.Wrap(handler)
			return func(i int) {
				for range 3 {
					r := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(`{"amount":1250}`))
					r.Header.Set("Idempotency-Key", `"`+key(i).Key+`"`)
					r.Header.Set("X-Caller", "tenant-1")
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != http.StatusCreated {
						t.Fatalf("status %d", w.Code)
					}
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkBytesTrackHeap(t, tc.n, func(s *idempotency.MemoryStore) {
				run := tc.run(s)
				for i := range tc.n {
					run(i)
				}
			})
		})
	}
}

// checkBytesTrackHeap has fill write n records into a new MemoryStore and
// fails unless the bytes the store accounts for them are 0.85–1.5× what
// they add to the Go heap (after a collection).
func checkBytesTrackHeap(t *testing.T, n int, fill func(s *idempotency.MemoryStore)) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newMemory(t, idempotency.MemoryConfig{MaxEntries: 1 << 20, MaxBytes: 1 << 32})
	fill(s)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	accounted := float64(s.Bytes())
	t.Logf("per record: heap %.0f B, accounted %.0f B", heap/float64(n), accounted/float64(n))
	if accounted < 0.85*heap || accounted > 1.5*heap {
		t.Errorf("accounted %.0f B per record, heap %.0f B: the MaxBytes bound does not follow the heap", accounted/float64(n), heap/float64(n))
	}
	runtime.KeepAlive(s)
}
