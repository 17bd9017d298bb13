package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
)

type modelClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *modelClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *modelClock) AfterFunc(time.Duration, func()) Timer { panic("unused") }
func (c *modelClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type modelRecord struct {
	state      RecordState
	token      uint64
	fp         string
	leaseUntil time.Time
	expiry     time.Time
	result     Result
}

// checkShards verifies the internal invariants of every shard.
func checkShards(t *testing.T, s *MemoryStore, step int) {
	t.Helper()
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		n := 0
		var sum int64
		for h, head := range sh.entries {
			if head == nil || head.prev != nil {
				t.Fatalf("step %d shard %d: bad chain head for %d", step, si, h)
			}
			seen := map[Key]bool{}
			for e := head; e != nil; e = e.next {
				n++
				if e.hash != h || h&s.mask != uint64(si) {
					t.Fatalf("step %d: entry %v in wrong chain/shard", step, e.key)
				}
				if seen[e.key] {
					t.Fatalf("step %d: key %v twice in a chain", step, e.key)
				}
				seen[e.key] = true
				if e.next != nil && e.next.prev != e {
					t.Fatalf("step %d: broken back link after %v", step, e.key)
				}
				if int(e.idx) < 0 || int(e.idx) >= len(sh.byExp) || sh.byExp[e.idx].e != e {
					t.Fatalf("step %d: entry %v not at its heap index %d", step, e.key, e.idx)
				}
				want := entryOverhead + int64(len(e.key.Scope)+len(e.key.Key)+len(e.fp))
				if e.state == StateCompleted {
					want += resultSize(&e.result)
				}
				if e.size != want {
					t.Fatalf("step %d: entry %v size %d, want %d", step, e.key, e.size, want)
				}
				sum += e.size
			}
		}
		if n != sh.n || n != len(sh.byExp) {
			t.Fatalf("step %d shard %d: chains hold %d, n=%d, heap=%d", step, si, n, sh.n, len(sh.byExp))
		}
		if sum != sh.bytes {
			t.Fatalf("step %d shard %d: bytes %d, sum of sizes %d", step, si, sh.bytes, sum)
		}
		if sh.bytes > sh.maxBytes || sh.n > sh.maxEntries {
			t.Fatalf("step %d shard %d: %d bytes / %d entries over %d / %d", step, si, sh.bytes, sh.n, sh.maxBytes, sh.maxEntries)
		}
		for i := 1; i < len(sh.byExp); i++ {
			if sh.byExp[(i-1)/heapArity].at > sh.byExp[i].at {
				t.Fatalf("step %d: heap order broken at %d", step, i)
			}
		}
		sh.mu.Unlock()
	}
}

// TestMemoryStoreModel runs random Claim, Complete, Release, Renew, Get and
// clock steps over a tiny two-shard store with colliding hashes, growing
// and shrinking fingerprints and results with headers, and checks after
// every step the shards' internal invariants (chains, heap, sizes, bounds)
// and the answers against a simple model: a running claim is never
// evicted, tokens increase per key, owners' calls succeed exactly when the
// model says they own the key.
func TestMemoryStoreModel(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { memoryStoreModel(t, seed) })
	}
}

func memoryStoreModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	var stats struct{ evicted, refused, claimed int }
	defer func() { t.Logf("claimed %d, refused %d, evicted %d", stats.claimed, stats.refused, stats.evicted) }()
	clk := &modelClock{now: time.Unix(1000, 0)}
	s, err := NewMemoryStore(MemoryConfig{MaxEntries: 8, MaxBytes: 2 * 1600, Shards: 2, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s.testHash = func(k Key) uint64 { return uint64(len(k.Key) % 4) } // long chains, two per shard
	ctx := context.Background()
	var keys []Key
	for i := range 14 {
		keys = append(keys, Key{Scope: "s" + fmt.Sprint(i%2), Key: strings.Repeat("k", 1+i%5) + fmt.Sprint(i)})
	}
	model := map[Key]*modelRecord{}
	issued := map[Key][]uint64{}
	fps := []string{"a", "b", strings.Repeat("f", 200), strings.Repeat("g", 500)}
	sync1 := func(step int, k Key) {
		now := clk.Now()
		r, err := s.Get(ctx, k)
		m := model[k]
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("step %d: Get %v: %v", step, k, err)
			}
			if m != nil {
				if m.state == StateInProgress && now.Before(m.leaseUntil) {
					t.Fatalf("step %d: running claim %v (token %d) evicted", step, k, m.token)
				}
				if now.Before(m.expiry) {
					stats.evicted++
				}
				delete(model, k)
			}
			return
		}
		if m == nil {
			t.Fatalf("step %d: store holds %v the model lost: %+v", step, k, r)
		}
		if !now.Before(m.expiry) {
			t.Fatalf("step %d: %v visible after its expiry", step, k)
		}
		if r.State != m.state || r.Token != m.token || r.Fingerprint != m.fp {
			t.Fatalf("step %d: %v is %v/%d/%q, model %v/%d/%q", step, k, r.State, r.Token, r.Fingerprint, m.state, m.token, m.fp)
		}
		if m.state == StateCompleted && (r.Result == nil || !bytes.Equal(r.Result.Body, m.result.Body) || r.Result.StatusCode != m.result.StatusCode) {
			t.Fatalf("step %d: %v result differs", step, k)
		}
	}
	pickToken := func(k Key) uint64 {
		if ts := issued[k]; len(ts) > 0 && rng.IntN(5) > 0 {
			if m := model[k]; m != nil && rng.IntN(2) == 0 {
				return m.token
			}
			return ts[rng.IntN(len(ts))]
		}
		return rng.Uint64N(100)
	}
	isOwner := func(k Key, tok uint64) bool {
		m := model[k]
		return m != nil && m.state == StateInProgress && m.token == tok && clk.Now().Before(m.leaseUntil)
	}
	for step := range 3000 {
		k := keys[rng.IntN(len(keys))]
		for _, kk := range keys {
			sync1(step, kk)
		}
		now := clk.Now()
		switch op := rng.IntN(20); {
		case op < 7:
			fp := fps[rng.IntN(len(fps))]
			lease := time.Duration(1+rng.IntN(5)) * time.Minute
			ret := lease + time.Duration(rng.IntN(10))*time.Minute
			c, err := s.Claim(ctx, ClaimRequest{Key: k, Fingerprint: fp, Lease: lease, Retention: ret})
			m := model[k]
			if err != nil {
				stats.refused++
				if !errors.Is(err, contract.ErrUnavailable) && !errors.Is(err, contract.ErrTooLarge) {
					t.Fatalf("step %d: claim: %v", step, err)
				}
				if m != nil && (m.state == StateCompleted || (m.state == StateInProgress && now.Before(m.leaseUntil))) {
					t.Fatalf("step %d: claim of a live record failed: %v", step, err)
				}
				break
			}
			switch {
			case m != nil && m.state == StateCompleted:
				want := Completed
				if m.fp != fp {
					want = Mismatch
				}
				if c.Status != want {
					t.Fatalf("step %d: claim of completed: %v want %v", step, c.Status, want)
				}
			case m != nil && m.state == StateInProgress && now.Before(m.leaseUntil):
				want := InProgress
				if m.fp != fp {
					want = Mismatch
				}
				if c.Status != want {
					t.Fatalf("step %d: claim of running: %v want %v", step, c.Status, want)
				}
			default:
				if c.Status != Claimed {
					t.Fatalf("step %d: claim of free key: %v", step, c.Status)
				}
				for _, old := range issued[k] {
					if c.Token <= old {
						t.Fatalf("step %d: token %d for %v not above earlier %d", step, c.Token, k, old)
					}
				}
				stats.claimed++
				issued[k] = append(issued[k], c.Token)
				model[k] = &modelRecord{state: StateInProgress, token: c.Token, fp: fp, leaseUntil: now.Add(lease), expiry: now.Add(ret)}
			}
		case op < 11:
			tok := pickToken(k)
			res := Result{Body: bytes.Repeat([]byte("x"), rng.IntN(900))}
			if rng.IntN(3) == 0 {
				res.StatusCode = 200
				res.Header = http.Header{"Content-Type": {"application/json"}}
			}
			owner := isOwner(k, tok)
			err := s.Complete(ctx, k, tok, res)
			switch {
			case err == nil:
				if !owner {
					t.Fatalf("step %d: non-owner completed", step)
				}
				m := model[k]
				m.state, m.result = StateCompleted, res
				// retention from completion
				m.expiry = now.Add(m.expiry.Sub(m.expiry)) // placeholder, fixed below
				m.expiry = now.Add(storedRetention(s, k))
			case errors.Is(err, ErrLeaseLost):
				if owner {
					t.Fatalf("step %d: owner got lease lost on complete", step)
				}
			case errors.Is(err, contract.ErrTooLarge) || errors.Is(err, contract.ErrUnavailable):
				if !owner {
					t.Fatalf("step %d: non-owner got %v", step, err)
				}
			default:
				t.Fatalf("step %d: complete: %v", step, err)
			}
		case op < 13:
			tok := pickToken(k)
			owner := isOwner(k, tok)
			err := s.Release(ctx, k, tok)
			if (err == nil) != owner {
				t.Fatalf("step %d: release owner=%v err=%v", step, owner, err)
			}
			if err == nil {
				m := model[k]
				m.state, m.leaseUntil = StateReleased, now
				m.expiry = now.Add(storedRetention(s, k))
			}
		case op < 16:
			tok := pickToken(k)
			owner := isOwner(k, tok)
			lease := time.Duration(1+rng.IntN(20)) * time.Minute
			err := s.Renew(ctx, k, tok, lease)
			if (err == nil) != owner {
				t.Fatalf("step %d: renew owner=%v err=%v", step, owner, err)
			}
			if err == nil {
				m := model[k]
				m.leaseUntil = now.Add(lease)
				if m.leaseUntil.After(m.expiry) {
					m.expiry = m.leaseUntil
				}
			}
		default:
			clk.advance(time.Duration(rng.IntN(180)) * time.Second)
		}
		checkShards(t, s, step)
	}
}

// storedRetention reads the retention the store keeps for k (set at claim).
func storedRetention(s *MemoryStore, k Key) time.Duration {
	sh, h := s.locate(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.find(h, k).retention
}
