package limit

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/limit/limittest"
	"golang.org/x/time/rate"
)

func TestNewKeyedLimiterRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg   KeyedConfig
		field string
	}{
		{KeyedConfig{}, "KeyedConfig.Limiter.Rate"},
		{KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: -2}}, "KeyedConfig.Limiter.Burst"},
		{KeyedConfig{Limiter: LimiterConfig{Rate: 1}, MaxKeys: -1}, "KeyedConfig.MaxKeys"},
		{KeyedConfig{Limiter: LimiterConfig{Rate: 1}, IdleTimeout: -1}, "KeyedConfig.IdleTimeout"},
		// Refill time 100/1s = 100s: forgetting a key after 1 minute would hand it tokens.
		{KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 100}, IdleTimeout: time.Minute}, "KeyedConfig.IdleTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			k, err := NewKeyedLimiter(tt.cfg)
			if k != nil {
				t.Fatalf("got a limiter for %+v", tt.cfg)
			}
			wantInvalid(t, err, tt.field)
		})
	}
}

func TestKeyedLimiterDefaults(t *testing.T) {
	k, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1}})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range k.shards {
		total += k.shards[i].max
	}
	if total != DefaultMaxKeys || k.idle != DefaultIdleTimeout || len(k.shards) != 16 {
		t.Errorf("max keys %d idle %v shards %d", total, k.idle, len(k.shards))
	}
	// A slow refill raises the default idle timeout to the refill time.
	k, _ = NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: rate.Every(time.Minute), Burst: 60}})
	if k.idle != time.Hour {
		t.Errorf("idle = %v, want the 1h refill time", k.idle)
	}
}

// In Wait mode a reservation puts a bucket up to Rate×MaxWait tokens in
// debt, so it refills in Burst/Rate + MaxWait, not Burst/Rate: IdleTimeout =
// Burst/Rate was accepted, and evicting the indebted key forgave its debt.
func TestKeyedLimiterIdleTimeoutCountsWaitDebt(t *testing.T) {
	wait := LimiterConfig{Rate: 1, Burst: 1, Mode: Wait, MaxWait: time.Second}
	k, err := NewKeyedLimiter(KeyedConfig{Limiter: wait, MaxKeys: 10, IdleTimeout: time.Second})
	if k != nil {
		t.Fatal("IdleTimeout = Burst/Rate accepted in Wait mode")
	}
	wantInvalid(t, err, "KeyedConfig.IdleTimeout")
	if !strings.Contains(err.Error(), "Burst/Rate + MaxWait, the bucket refill time 2s") {
		t.Errorf("err = %q, want it to give the rule and the 2s refill time", err)
	}

	// The smallest accepted IdleTimeout keeps the indebted key.
	clk := limittest.NewClock(epoch)
	wait.Clock = clk
	k, err = NewKeyedLimiter(KeyedConfig{Limiter: wait, MaxKeys: 10, IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := k.Take(ctx, "a"); err != nil { // spends the only token
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- k.Take(ctx, "a") }() // reserves the token due at +1s
	clk.BlockUntilTimers(1)
	clk.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Millisecond)
	// Bucket "a" holds 0.001 tokens: its next token is due in 999ms. A new
	// key in the same (single) shard must not evict it as idle.
	if err := k.Take(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Millisecond) // too short to wait 999ms
	defer cancel()
	if err := k.Take(dctx, "a"); err == nil {
		t.Fatal("key a got a token 1ms after its last one was due (rate 1/s, burst 1): its debt was forgiven")
	}

	// Reject mode never borrows: Burst/Rate is enough there.
	if _, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1}, IdleTimeout: time.Second}); err != nil {
		t.Errorf("Reject mode, IdleTimeout = Burst/Rate: %v", err)
	}
}

// The default IdleTimeout covers the Wait-mode refill time, without
// overflowing when Burst/Rate or MaxWait is huge.
func TestKeyedLimiterDefaultIdleTimeoutInWaitMode(t *testing.T) {
	const forever = time.Duration(1<<63 - 1)
	tests := []struct {
		cfg  LimiterConfig
		idle time.Duration
	}{
		{LimiterConfig{Rate: 1, Mode: Wait}, DefaultIdleTimeout},
		{LimiterConfig{Rate: 100, Burst: 200, Mode: Wait, MaxWait: time.Minute}, DefaultIdleTimeout},
		{LimiterConfig{Rate: 1, Burst: 1, Mode: Wait, MaxWait: DefaultIdleTimeout}, DefaultIdleTimeout + time.Second},
		{LimiterConfig{Rate: rate.Every(time.Minute), Burst: 60, Mode: Wait, MaxWait: time.Minute}, time.Hour + time.Minute},
		{LimiterConfig{Rate: 1, Burst: 1, Mode: Wait, MaxWait: forever}, forever},
		{LimiterConfig{Rate: 1e-300, Burst: 1, Mode: Wait, MaxWait: time.Hour}, forever},
		{LimiterConfig{Rate: rate.Inf, Mode: Wait, MaxWait: time.Hour}, DefaultIdleTimeout}, // never limited: no debt
		{LimiterConfig{Rate: rate.Limit(math.Inf(1)), Mode: Wait, MaxWait: time.Hour}, DefaultIdleTimeout},
	}
	for _, tt := range tests {
		k, err := NewKeyedLimiter(KeyedConfig{Limiter: tt.cfg})
		if err != nil {
			t.Errorf("%+v: %v", tt.cfg, err)
			continue
		}
		if k.idle != tt.idle {
			t.Errorf("%+v: idle = %v, want %v", tt.cfg, k.idle, tt.idle)
		}
		if k, err := NewKeyedLimiter(KeyedConfig{Limiter: tt.cfg, IdleTimeout: tt.idle}); err != nil || k.idle != tt.idle {
			t.Errorf("%+v, IdleTimeout %v: %v", tt.cfg, tt.idle, err)
		}
	}
}

func TestKeyedLimiterKeysAreIndependent(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 2, Clock: clk}})
	ctx := context.Background()
	for range 2 {
		if err := k.Take(ctx, "tenant-a"); err != nil {
			t.Fatal(err)
		}
	}
	e := wantErr(t, k.Take(ctx, "tenant-a"), contract.KindRateLimited, CodeRateLimited)
	if e.RetryAfter != time.Second {
		t.Errorf("RetryAfter = %v, want 1s", e.RetryAfter)
	}
	for range 2 {
		if err := k.Take(ctx, "tenant-b"); err != nil {
			t.Fatalf("tenant-b limited by tenant-a: %v", err)
		}
	}
	if err := k.Take(ctx, ""); err != nil {
		t.Fatalf("empty key: %v", err)
	}
	if k.Len() != 3 {
		t.Fatalf("Len = %d, want 3", k.Len())
	}
}

func TestKeyedLimiterBoundedKeys(t *testing.T) {
	for _, maxKeys := range []int{1, 3, 100, 1000, 5000} {
		clk := limittest.NewClock(epoch)
		k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Clock: clk}, MaxKeys: maxKeys})
		for i := range 20000 {
			_ = k.Take(context.Background(), "client-"+strconv.Itoa(i))
			if i%997 == 0 && k.Len() > maxKeys {
				t.Fatalf("MaxKeys %d: Len %d after %d keys", maxKeys, k.Len(), i+1)
			}
		}
		if n := k.Len(); n > maxKeys || n < maxKeys/2 {
			t.Fatalf("MaxKeys %d: Len %d, want at most MaxKeys and not far below", maxKeys, n)
		}
	}
}

func TestKeyedLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: clk}, MaxKeys: 3})
	ctx := context.Background()
	_ = k.Take(ctx, "a") // a spent
	_ = k.Take(ctx, "b")
	_ = k.Take(ctx, "c")
	wantErr(t, k.Take(ctx, "a"), contract.KindRateLimited, "") // a is now most recent
	_ = k.Take(ctx, "d")                                       // evicts b, the least recently used
	if k.Len() != 3 {
		t.Fatalf("Len = %d, want 3", k.Len())
	}
	wantErr(t, k.Take(ctx, "a"), contract.KindRateLimited, "") // a kept its empty bucket
	if err := k.Take(ctx, "b"); err != nil {                   // b was forgotten: fresh bucket
		t.Fatalf("b should have been evicted and start full: %v", err)
	}
}

func TestKeyedLimiterForgetsIdleKeys(t *testing.T) {
	clk := limittest.NewClock(epoch)
	// MaxKeys 10: one shard, so every key shares one LRU list.
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: clk}, MaxKeys: 10, IdleTimeout: time.Minute})
	_ = k.Take(context.Background(), "old")
	clk.Advance(30 * time.Second)
	_ = k.Take(context.Background(), "young")
	clk.Advance(31 * time.Second)
	_ = k.Take(context.Background(), "new") // old idle 61s > 1m: dropped; young idle 31s: kept
	if k.Len() != 2 {
		t.Fatalf("Len = %d, want 2 (old forgotten)", k.Len())
	}
	s := &k.shards[0]
	if _, ok := s.m["old"]; ok {
		t.Fatal("idle key still tracked")
	}
	if _, ok := s.m["young"]; !ok {
		t.Fatal("recent key forgotten")
	}
}

func TestKeyedLimiterLongKeysAreHashed(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: clk}, MaxKeys: 10})
	prefix := strings.Repeat("x", 1<<20)
	ctx := context.Background()
	if err := k.Take(ctx, prefix+"1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Take(ctx, prefix+"2"); err != nil {
		t.Fatalf("distinct long keys share a bucket: %v", err)
	}
	wantErr(t, k.Take(ctx, prefix+"1"), contract.KindRateLimited, "")
	for key := range k.shards[0].m {
		if len(key) > maxKeyBytes {
			t.Fatalf("stored a %d-byte key", len(key))
		}
	}
}

// TestKeyedLimiterExactlyBurstPerKey: at a frozen instant, goroutines racing
// over many keys get exactly Burst passes per key.
func TestKeyedLimiterExactlyBurstPerKey(t *testing.T) {
	const keys, burst = 200, 3
	clk := limittest.NewClock(epoch)
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: burst, Clock: clk}, MaxKeys: 4096})
	var passed [keys]atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys * 2 {
				key := (i + g*7) % keys
				err := k.Take(context.Background(), "k"+strconv.Itoa(key))
				if err == nil {
					passed[key].Add(1)
				} else if !errors.Is(err, contract.ErrRateLimited) {
					t.Errorf("unexpected %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for i := range passed {
		if n := passed[i].Load(); n != burst {
			t.Fatalf("key %d: %d passes, want exactly %d", i, n, burst)
		}
	}
}

// TestKeyedLimiterSweepsIdleKeysAcrossShards: with 16 shards, idle keys in
// shards that receive no new key are still dropped, by the round-robin
// sweep that every new key performs.
func TestKeyedLimiterSweepsIdleKeysAcrossShards(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, _ := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: clk}, IdleTimeout: time.Minute})
	if len(k.shards) != 16 {
		t.Fatalf("%d shards, want 16", len(k.shards))
	}
	for i := range 64 {
		_ = k.Take(context.Background(), "old-"+strconv.Itoa(i))
	}
	clk.Advance(2 * time.Minute)
	for i := range 32 { // two round-robin passes over the 16 shards
		_ = k.Take(context.Background(), "new-"+strconv.Itoa(i))
	}
	if n := k.Len(); n != 32 {
		t.Fatalf("Len = %d, want 32: idle keys left behind in quiet shards", n)
	}
}
