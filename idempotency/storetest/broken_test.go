package storetest_test

import (
	"context"
	"os"
	"os/exec"
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
// and not again at the completion would. It keeps everything else of the
// MemoryStore it wraps, by moving a forgotten key to a fresh generation.
type retentionFromClaim struct {
	*idempotency.MemoryStore
	clk *storetest.FakeClock
	mu  sync.Mutex
	gen map[idempotency.Key]int
	end map[idempotency.Key]time.Time // when the current generation is forgotten
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
		s.mu.Unlock()
	}
	return c, err
}

func (s *retentionFromClaim) Complete(ctx context.Context, k idempotency.Key, tok uint64, r idempotency.Result) error {
	return s.MemoryStore.Complete(ctx, s.inner(k), tok, r)
}

func (s *retentionFromClaim) Release(ctx context.Context, k idempotency.Key, tok uint64) error {
	return s.MemoryStore.Release(ctx, s.inner(k), tok)
}

func (s *retentionFromClaim) Renew(ctx context.Context, k idempotency.Key, tok uint64, d time.Duration) error {
	return s.MemoryStore.Renew(ctx, s.inner(k), tok, d)
}

func (s *retentionFromClaim) Get(ctx context.Context, k idempotency.Key) (idempotency.Record, error) {
	r, err := s.MemoryStore.Get(ctx, s.inner(k))
	r.Key = k
	return r, err
}

// TestSuiteCatchesRetentionFromClaim runs the suite, in a child process,
// against a store that keeps results for Retention from the claim rather
// than from the completion: a long operation's result expires early and
// its retry runs it again. The suite must fail it.
func TestSuiteCatchesRetentionFromClaim(t *testing.T) {
	if os.Getenv("STORETEST_BROKEN_STORE") == "1" {
		storetest.Run(t, func(t *testing.T) (idempotency.Store, storetest.Clock) {
			clk := storetest.NewFakeClock(time.Unix(0, 0))
			m, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{Clock: clk, Shards: 1}) // one token counter for every generation
			if err != nil {
				t.Fatal(err)
			}
			return &retentionFromClaim{MemoryStore: m, clk: clk, gen: map[idempotency.Key]int{}, end: map[idempotency.Key]time.Time{}}, clk
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCatchesRetentionFromClaim$", "-test.v")
	cmd.Env = append(os.Environ(), "STORETEST_BROKEN_STORE=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the suite passed a store that counts retention from the claim:\n%s", out)
	}
	if strings.Count(string(out), "--- FAIL: TestSuiteCatchesRetentionFromClaim/") != 1 ||
		!strings.Contains(string(out), "--- FAIL: TestSuiteCatchesRetentionFromClaim/RetentionFromCompletion") {
		t.Fatalf("want exactly the RetentionFromCompletion subtest to fail:\n%s", out)
	}
}
