package redisstore

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

func claimReq(key, fp string, lease time.Duration) idempotency.ClaimRequest {
	return idempotency.ClaimRequest{Key: idempotency.Key{Scope: "tenant-a", Key: key}, Fingerprint: fp, Lease: lease, Retention: time.Hour}
}

func TestLifecycle(t *testing.T) {
	s := newStore(t, newClient(t, "redisstore-test"), testPrefix(t))
	ctx := context.Background()
	req := claimReq("order-1", "fp1", 10*time.Second)

	c, err := s.Claim(ctx, req)
	if err != nil || c.Status != idempotency.Claimed || c.Token == 0 {
		t.Fatalf("first claim = %+v, %v", c, err)
	}
	dup, err := s.Claim(ctx, req)
	if err != nil || dup.Status != idempotency.InProgress || dup.Token != c.Token || dup.LeaseRemaining <= 0 || dup.LeaseRemaining > 10*time.Second {
		t.Fatalf("duplicate in flight = %+v, %v", dup, err)
	}
	other := req
	other.Fingerprint = "fp2"
	if mm, err := s.Claim(ctx, other); err != nil || mm.Status != idempotency.Mismatch {
		t.Fatalf("other payload in flight = %+v, %v", mm, err)
	}
	if err := s.Complete(ctx, req.Key, c.Token+1, idempotency.Result{}); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("complete with a wrong token = %v", err)
	}
	res := idempotency.Result{StatusCode: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"id":1}`)}
	if err := s.Complete(ctx, req.Key, c.Token, res); err != nil {
		t.Fatal(err)
	}
	rp, err := s.Claim(ctx, req)
	if err != nil || rp.Status != idempotency.Completed || rp.Token != c.Token || rp.Result == nil ||
		rp.Result.StatusCode != 201 || !bytes.Equal(rp.Result.Body, res.Body) || rp.Result.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("replay = %+v, %v", rp, err)
	}
	if mm, err := s.Claim(ctx, other); err != nil || mm.Status != idempotency.Mismatch {
		t.Fatalf("other payload after completion = %+v, %v", mm, err)
	}
	rec, err := s.Get(ctx, req.Key)
	if err != nil || rec.State != idempotency.StateCompleted || rec.Fingerprint != "fp1" || rec.Token != c.Token || rec.Key != req.Key || rec.Result == nil {
		t.Fatalf("Get = %+v, %v", rec, err)
	}
	if err := s.Release(ctx, req.Key, c.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("release of a completed record = %v", err)
	}
	// Retention is the key's TTL, read back with PTTL.
	pttl, err := s.client.PTTL(ctx, s.redisKey(recordID(req.Key))).Result()
	if err != nil || pttl <= 59*time.Minute || pttl > time.Hour {
		t.Fatalf("PTTL after completion = %v, %v; want about the retention (1h)", pttl, err)
	}
}

func TestReleaseThenReclaimIncreasesToken(t *testing.T) {
	s := newStore(t, newClient(t, "redisstore-test"), testPrefix(t))
	ctx := context.Background()
	req := claimReq("k", "fp", 10*time.Second)
	var last uint64
	for i := range 5 {
		c, err := s.Claim(ctx, req)
		if err != nil || c.Status != idempotency.Claimed || c.Token <= last {
			t.Fatalf("round %d: claim = %+v, %v (previous token %d)", i, c, err, last)
		}
		last = c.Token
		if err := s.Release(ctx, req.Key, c.Token); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, req.Key, c.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Fatalf("second release = %v", err)
		}
		rec, err := s.Get(ctx, req.Key)
		if err != nil || rec.State != idempotency.StateReleased || rec.Token != c.Token {
			t.Fatalf("after release: %+v, %v", rec, err)
		}
		if err := s.Complete(ctx, req.Key, c.Token, idempotency.Result{}); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Fatalf("complete after release = %v", err)
		}
	}
	// A released key is claimable with any fingerprint.
	other := req
	other.Fingerprint = "changed"
	if c, err := s.Claim(ctx, other); err != nil || c.Status != idempotency.Claimed {
		t.Fatalf("claim released key with another fingerprint = %+v, %v", c, err)
	}
}

func TestLeaseExpiryAndRenew(t *testing.T) {
	s := newStore(t, newClient(t, "redisstore-test"), testPrefix(t))
	ctx := context.Background()
	req := claimReq("k", "fp", 150*time.Millisecond)
	a, err := s.Claim(ctx, req)
	if err != nil || a.Status != idempotency.Claimed {
		t.Fatal(a, err)
	}
	if err := s.Renew(ctx, req.Key, a.Token, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	rec, _ := s.Get(ctx, req.Key)
	if rec.LeaseRemaining < time.Second {
		t.Fatalf("renewed lease remaining %v", rec.LeaseRemaining)
	}
	if err := s.Renew(ctx, req.Key, a.Token, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Integration test against a real server clock: waiting is the only way.
	time.Sleep(250 * time.Millisecond)
	rec, err = s.Get(ctx, req.Key)
	if err != nil || rec.State != idempotency.StateInProgress || rec.LeaseRemaining > 0 {
		t.Fatalf("expired lease: %+v, %v", rec, err)
	}
	if err := s.Renew(ctx, req.Key, a.Token, time.Second); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("renew after expiry = %v", err)
	}
	if err := s.Complete(ctx, req.Key, a.Token, idempotency.Result{}); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("complete after expiry = %v", err)
	}
	b, err := s.Claim(ctx, req)
	if err != nil || b.Status != idempotency.Claimed || b.Token <= a.Token {
		t.Fatalf("reclaim after expiry = %+v, %v", b, err)
	}
	// The stale owner is fenced off; the new one completes.
	if err := s.Complete(ctx, req.Key, a.Token, idempotency.Result{Body: []byte("stale")}); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("stale owner complete = %v", err)
	}
	if err := s.Complete(ctx, req.Key, b.Token, idempotency.Result{Body: []byte("fresh")}); err != nil {
		t.Fatal(err)
	}
	rec, _ = s.Get(ctx, req.Key)
	if string(rec.Result.Body) != "fresh" {
		t.Fatalf("stored %q", rec.Result.Body)
	}
}

// TestStaleOwnerFencedAfterRecordLoss: a stalled owner's record is gone —
// its TTL ran out, or Redis evicted or lost it — and another caller claims
// the key again. The new token is larger than the stale owner's (tokens do
// not restart at 1 with a new hash), so the stale owner can neither
// complete, release nor renew the new owner's claim.
func TestStaleOwnerFencedAfterRecordLoss(t *testing.T) {
	for _, loss := range []string{"ttl expiry", "eviction"} {
		t.Run(loss, func(t *testing.T) {
			c := newClient(t, "redisstore-test")
			s := newStore(t, c, testPrefix(t))
			ctx := context.Background()
			req := claimReq("k", "fp", 50*time.Millisecond)
			req.Retention = 50 * time.Millisecond // the key's TTL: 2 × Lease = 100 ms
			a, err := s.Claim(ctx, req)
			if err != nil || a.Status != idempotency.Claimed {
				t.Fatal(a, err)
			}
			rkey := s.redisKey(recordID(req.Key))
			if loss == "eviction" {
				if err := c.Del(ctx, rkey).Err(); err != nil {
					t.Fatal(err)
				}
			} else {
				// Integration test against a real server clock: waiting is the only way.
				time.Sleep(250 * time.Millisecond)
			}
			if n, err := c.Exists(ctx, rkey).Result(); err != nil || n != 0 {
				t.Fatalf("record still there (%d), %v", n, err)
			}
			req.Lease, req.Retention = time.Minute, time.Minute
			b, err := s.Claim(ctx, req)
			if err != nil || b.Status != idempotency.Claimed {
				t.Fatal(b, err)
			}
			if b.Token <= a.Token {
				t.Fatalf("new owner's token %d after the stale owner's %d; tokens must keep increasing after the record is gone", b.Token, a.Token)
			}
			if err := s.Complete(ctx, req.Key, a.Token, idempotency.Result{Body: []byte("stale")}); !errors.Is(err, idempotency.ErrLeaseLost) {
				t.Fatalf("stale owner Complete = %v", err)
			}
			if err := s.Release(ctx, req.Key, a.Token); !errors.Is(err, idempotency.ErrLeaseLost) {
				t.Fatalf("stale owner Release = %v", err)
			}
			if err := s.Renew(ctx, req.Key, a.Token, time.Hour); !errors.Is(err, idempotency.ErrLeaseLost) {
				t.Fatalf("stale owner Renew = %v", err)
			}
			rec, err := s.Get(ctx, req.Key)
			if err != nil || rec.State != idempotency.StateInProgress || rec.Token != b.Token || rec.LeaseRemaining > time.Minute {
				t.Fatalf("after the stale owner's calls: %+v, %v; want the new owner's claim unchanged", rec, err)
			}
			// The hash stores the token as the decimal digits the owner calls compare.
			if tf, err := c.HGet(ctx, rkey, "t").Result(); err != nil || tf != strconv.FormatUint(b.Token, 10) {
				t.Fatalf("stored token %q, %v; want %d", tf, err, b.Token)
			}
			if err := s.Complete(ctx, req.Key, b.Token, idempotency.Result{Body: []byte("fresh")}); err != nil {
				t.Fatal(err)
			}
			if rec, _ := s.Get(ctx, req.Key); rec.Result == nil || string(rec.Result.Body) != "fresh" {
				t.Fatalf("stored %+v", rec.Result)
			}
		})
	}
}

// TestTokenOfLegacyRecordGrows: a record whose token was counted from 1 (by
// an earlier version) is claimed again with a larger token.
func TestTokenOfLegacyRecordGrows(t *testing.T) {
	c := newClient(t, "redisstore-test")
	s := newStore(t, c, testPrefix(t))
	ctx := context.Background()
	req := claimReq("k", "fp", time.Second)
	rkey := s.redisKey(recordID(req.Key))
	if err := c.HSet(ctx, rkey, "v", "1", "s", "3", "t", "7", "f", "fp", "k", "3600000").Err(); err != nil {
		t.Fatal(err)
	}
	c.Expire(ctx, rkey, time.Hour)
	cl, err := s.Claim(ctx, req)
	if err != nil || cl.Status != idempotency.Claimed || cl.Token <= 7 {
		t.Fatalf("claim over a legacy record = %+v, %v", cl, err)
	}
	if err := s.Release(ctx, req.Key, 7); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("legacy token Release = %v", err)
	}
	if err := s.Complete(ctx, req.Key, cl.Token, idempotency.Result{}); err != nil {
		t.Fatal(err)
	}
}

// TestHugeDurationsAreCapped: a Lease or Retention near math.MaxInt64
// ("forever") is taken as 100 years. It used to overflow the conversion to
// milliseconds: the completed record vanished at once and a duplicate ran
// again.
func TestHugeDurationsAreCapped(t *testing.T) {
	c := newClient(t, "redisstore-test")
	s := newStore(t, c, testPrefix(t))
	ctx := context.Background()
	const century = 100 * 365 * 24 * time.Hour
	for _, d := range []time.Duration{math.MaxInt64, math.MaxInt64 - time.Millisecond + 1, century + time.Nanosecond} {
		if got := ms(d); got != ms(century) {
			t.Fatalf("ms(%d) = %d, want %d", d, got, ms(century))
		}
	}

	req := claimReq("forever", "fp", time.Second)
	req.Retention = math.MaxInt64
	a, err := s.Claim(ctx, req)
	if err != nil || a.Status != idempotency.Claimed {
		t.Fatal(a, err)
	}
	if err := s.Complete(ctx, req.Key, a.Token, idempotency.Result{Body: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	dup, err := s.Claim(ctx, req)
	if err != nil || dup.Status != idempotency.Completed || dup.Token != a.Token || dup.Result == nil || string(dup.Result.Body) != "done" {
		t.Fatalf("duplicate after completion = %+v, %v; want completed", dup, err)
	}
	if pttl, err := c.PTTL(ctx, s.redisKey(recordID(req.Key))).Result(); err != nil || pttl < century-time.Hour || pttl > century {
		t.Fatalf("PTTL %v, %v; want 100 years", pttl, err)
	}

	// A lease as long: held, renewable, reported without overflow.
	req = claimReq("forever-lease", "fp", math.MaxInt64)
	req.Retention = math.MaxInt64
	b, err := s.Claim(ctx, req)
	if err != nil || b.Status != idempotency.Claimed {
		t.Fatal(b, err)
	}
	dup, err = s.Claim(ctx, req)
	if err != nil || dup.Status != idempotency.InProgress || dup.LeaseRemaining < century-time.Hour || dup.LeaseRemaining > century {
		t.Fatalf("duplicate in flight = %+v, %v; want in progress for 100 years", dup, err)
	}
	if err := s.Renew(ctx, req.Key, b.Token, math.MaxInt64); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Get(ctx, req.Key); err != nil || rec.LeaseRemaining < century-time.Hour || rec.LeaseRemaining > century {
		t.Fatalf("after Renew: %+v, %v", rec, err)
	}
	if err := s.Complete(ctx, req.Key, b.Token, idempotency.Result{Body: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	if dup, err := s.Claim(ctx, req); err != nil || dup.Status != idempotency.Completed {
		t.Fatalf("duplicate after completion = %+v, %v", dup, err)
	}
}

func TestOpaqueKeysAndScopes(t *testing.T) {
	c := newClient(t, "redisstore-test")
	prefix := testPrefix(t)
	s := newStore(t, c, prefix)
	ctx := context.Background()
	keys := []idempotency.Key{
		{Scope: "", Key: ""},
		{Scope: "a", Key: "bc"},
		{Scope: "ab", Key: "c"}, // must differ from {a, bc}
		{Scope: "t", Key: "}{weird{"},
		{Scope: "t\x00", Key: "\xff\xfe\x00"},
		{Scope: "t", Key: strings.Repeat("long", 1<<16)},
	}
	for i, k := range keys {
		req := idempotency.ClaimRequest{Key: k, Fingerprint: "fp", Lease: time.Second, Retention: time.Minute}
		cl, err := s.Claim(ctx, req)
		if err != nil || cl.Status != idempotency.Claimed {
			t.Fatalf("key %d: %+v, %v", i, cl, err)
		}
		if err := s.Complete(ctx, k, cl.Token, idempotency.Result{Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		rec, err := s.Get(ctx, k)
		if err != nil || rec.Result == nil || !bytes.Equal(rec.Result.Body, []byte{byte(i)}) {
			t.Fatalf("key %d: %+v, %v", i, rec, err)
		}
	}
	// Scopes isolate: the same key in another scope is a different record.
	if _, err := s.Get(ctx, idempotency.Key{Scope: "b", Key: "bc"}); !errors.Is(err, idempotency.ErrNotFound) {
		t.Fatalf("other scope: %v", err)
	}
	// Every Redis key is prefix + {hash}: fixed size, one hash slot.
	got, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil || len(got) != len(keys) {
		t.Fatalf("keys %v, %v", got, err)
	}
	for _, k := range got {
		rest := strings.TrimPrefix(k, prefix)
		if len(rest) != 45 || rest[0] != '{' || rest[44] != '}' {
			t.Fatalf("key %q is not prefix{sha256}", k)
		}
	}
}

func TestPrefixesIsolate(t *testing.T) {
	c := newClient(t, "redisstore-test")
	a := newStore(t, c, testPrefix(t))
	b := newStore(t, c, testPrefix(t))
	ctx := context.Background()
	req := claimReq("same", "fp", time.Second)
	if cl, err := a.Claim(ctx, req); err != nil || cl.Status != idempotency.Claimed {
		t.Fatal(cl, err)
	}
	if cl, err := b.Claim(ctx, req); err != nil || cl.Status != idempotency.Claimed {
		t.Fatalf("other prefix saw the claim: %+v, %v", cl, err)
	}
}

func TestGetNotFound(t *testing.T) {
	s := newStore(t, newClient(t, "redisstore-test"), testPrefix(t))
	_, err := s.Get(context.Background(), idempotency.Key{Key: "nope"})
	if !errors.Is(err, idempotency.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if err := s.Complete(context.Background(), idempotency.Key{Key: "nope"}, 1, idempotency.Result{}); !errors.Is(err, idempotency.ErrLeaseLost) {
		t.Fatalf("complete unknown key = %v", err)
	}
}

func TestCanceledContext(t *testing.T) {
	s := newStore(t, newClient(t, "redisstore-test"), testPrefix(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Claim(ctx, claimReq("k", "fp", time.Second))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, contract.ErrCanceled) {
		t.Fatalf("err = %v; want canceled", err)
	}
}

func TestCorruptRecordIsInternal(t *testing.T) {
	c := newClient(t, "redisstore-test")
	s := newStore(t, c, testPrefix(t))
	ctx := context.Background()
	req := claimReq("k", "fp", time.Second)
	cl, _ := s.Claim(ctx, req)
	if err := s.Complete(ctx, req.Key, cl.Token, idempotency.Result{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	c.HSet(ctx, s.redisKey(recordID(req.Key)), "r", "\x07garbage")
	_, err := s.Claim(ctx, req)
	if !errors.Is(err, contract.ErrInternal) || contract.Retryable(err) {
		t.Fatalf("corrupt record: %v; want non-retryable internal", err)
	}
	c.Set(ctx, s.redisKey(recordID(idempotency.Key{Key: "str"})), "not a hash", 0)
	_, err = s.Get(ctx, idempotency.Key{Key: "str"})
	if !errors.Is(err, contract.ErrInternal) {
		t.Fatalf("wrong type: %v", err)
	}
}

func TestRoundTrips(t *testing.T) {
	c := newClient(t, "redisstore-test")
	s := newStore(t, c, testPrefix(t))
	ctx := context.Background()
	// Load the scripts once: the very first EVALSHA of a process may meet
	// NOSCRIPT and fall back to EVAL.
	warm := claimReq("warm", "fp", time.Second)
	wc, _ := s.Claim(ctx, warm)
	_ = s.Complete(ctx, warm.Key, wc.Token, idempotency.Result{})
	_, _ = s.Get(ctx, warm.Key)

	h := &countingHook{}
	c.AddHook(h)
	req := claimReq("fresh", "fp", time.Second)
	cl, err := s.Claim(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, req.Key, cl.Token, idempotency.Result{Body: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	if n := h.n.Swap(0); n != 2 {
		t.Fatalf("fresh key took %d round trips, want 2", n)
	}
	if rp, err := s.Claim(ctx, req); err != nil || rp.Status != idempotency.Completed {
		t.Fatal(rp, err)
	}
	if n := h.n.Swap(0); n != 1 {
		t.Fatalf("replay took %d round trips, want 1", n)
	}
}
