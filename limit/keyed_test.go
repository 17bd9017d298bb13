package limit

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

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
	if k.maxKeys != DefaultMaxKeys || k.idle != DefaultIdleTimeout || len(k.shards) != 16 {
		t.Errorf("max keys %d idle %v shards %d", k.maxKeys, k.idle, len(k.shards))
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
		if n := k.Len(); n != maxKeys {
			t.Fatalf("MaxKeys %d: Len %d after 20000 keys, want MaxKeys: a full limiter forgets one key per new key", maxKeys, n)
		}
		checkKeyCount(t, k)
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

// TestKeyedLimiterDoesNotPinTheKeysBuffer: a key cut out of a large string
// (a tenant id sliced from a 1 MiB request body or header buffer) was
// stored as given, so every tracked key kept its whole backing array alive:
// the default 10,000 keys could pin 10 GB, not the ~4 MB MaxKeys promises.
// A new key is now copied; the lookup of a tracked key still copies
// nothing (TestAllocKeyedLimiterTrackedKey).
func TestKeyedLimiterDoesNotPinTheKeysBuffer(t *testing.T) {
	const keys, size = 32, 1 << 20
	k, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: limittest.NewClock(epoch)}, MaxKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range keys {
		body := "tenant-" + strconv.Itoa(100000+i) + ";" + strings.Repeat("x", size)
		key := body[:13] // the tenant id
		if err := k.Take(ctx, key); err != nil {
			t.Fatal(err)
		}
		wantErr(t, k.Take(ctx, body[:13]), contract.KindRateLimited, "") // the same key, found again
		lo := uintptr(unsafe.Pointer(unsafe.StringData(body)))
		inBody := func(s string) bool {
			p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
			return p >= lo && p < lo+uintptr(len(body))
		}
		s := &k.shards[maphash.String(k.seed1, key)&k.mask]
		s.mu.Lock()
		for mk, e := range s.m {
			if mk == key && (inBody(mk) || inBody(e.key)) {
				t.Errorf("key %q is stored in its caller's 1 MiB buffer", key)
			}
		}
		s.mu.Unlock()
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Errorf("%d keys of 13 bytes retain %d MiB: each keeps its 1 MiB buffer alive", k.Len(), grown>>20)
	}
	runtime.KeepAlive(k)
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

// shardKeys returns n keys with the given prefix that land in shard i.
func shardKeys(k *KeyedLimiter, i uint64, prefix string, n int) []string {
	var keys []string
	for j := 0; len(keys) < n; j++ {
		key := prefix + strconv.Itoa(j)
		if maphash.String(k.seed1, key)&k.mask == i {
			keys = append(keys, key)
		}
	}
	return keys
}

// tracked reports whether key (at most maxKeyBytes long) is tracked, without
// touching it.
func tracked(k *KeyedLimiter, key string) bool {
	s := &k.shards[maphash.String(k.seed1, key)&k.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key] != nil
}

// checkKeyCount asserts, with no call in flight, that the count of places
// taken is the number of keys in the shards, at most MaxKeys, and that each
// shard's list holds exactly its map's keys.
func checkKeyCount(t *testing.T, k *KeyedLimiter) {
	t.Helper()
	total := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		n := 0
		for e := s.head; e != nil; e = e.next {
			if s.m[e.key] != e || (e.next == nil) != (e == s.tail) {
				t.Errorf("shard %d: list out of step with its map at %q", i, e.key)
				break
			}
			n++
		}
		if n != len(s.m) {
			t.Errorf("shard %d: %d keys in its list, %d in its map", i, n, len(s.m))
		}
		total += len(s.m)
		s.mu.Unlock()
	}
	if got := k.keys.Load(); got != int64(total) || got > k.maxKeys {
		t.Errorf("key count %d, shards hold %d keys, MaxKeys %d", got, total, k.maxKeys)
	}
}

// TestKeyedLimiterKeepsKeysBelowMaxKeys: MaxKeys was split evenly over the
// shards, each forgetting its least recently used key once it held
// MaxKeys/shards, so with MaxKeys 1024 (16 shards of 64) the 65th key of
// one shard evicted the first, whose spent bucket came back full: a rate
// limit bypass with 65 keys in use. Keys are now forgotten only when the
// limiter as a whole is full.
func TestKeyedLimiterKeepsKeysBelowMaxKeys(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, err := NewKeyedLimiter(KeyedConfig{
		Limiter: LimiterConfig{Rate: rate.Every(time.Hour), Burst: 1, Clock: clk},
		MaxKeys: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.shards) != 16 {
		t.Fatalf("%d shards, want 16", len(k.shards))
	}
	ctx := context.Background()
	keys := shardKeys(k, 0, "client-", 200) // 200 keys of one shard, 1024 places
	for _, key := range keys {
		if err := k.Take(ctx, key); err != nil {
			t.Fatalf("first take of %s: %v", key, err)
		}
	}
	for _, key := range keys {
		wantErr(t, k.Take(ctx, key), contract.KindRateLimited, CodeRateLimited) // spent for the next hour
	}
	if k.Len() != len(keys) {
		t.Errorf("Len = %d, want %d", k.Len(), len(keys))
	}
	checkKeyCount(t, k)
}

// TestKeyedLimiterFullForgetsLeastRecentlyUsedOfAllShards: once the limiter
// is full, a new key forgets the least recently used key of the whole
// limiter, not of its own shard: a shard left empty or small while others
// filled up gets its places back from them, rather than being capped at
// the size it had (its own recent keys would be forgotten in turn, a
// bypass while fewer than MaxKeys keys are in use).
func TestKeyedLimiterFullForgetsLeastRecentlyUsedOfAllShards(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, err := NewKeyedLimiter(KeyedConfig{
		Limiter: LimiterConfig{Rate: rate.Every(time.Hour), Burst: 1, Clock: clk},
		MaxKeys: 256,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.shards) != 4 {
		t.Fatalf("%d shards, want 4", len(k.shards))
	}
	ctx := context.Background()
	// Fill the limiter from shards 3, 2 and 1 in turn, one second apart, so
	// the least recently used key moves from shard to shard.
	var old []string
	s1, s2, s3 := shardKeys(k, 1, "old-", 86), shardKeys(k, 2, "old-", 86), shardKeys(k, 3, "old-", 86)
	for i := 0; len(old) < 256; i++ {
		old = append(old, s3[i], s2[i], s1[i])
	}
	old = old[:256]
	for _, key := range old {
		_ = k.Take(ctx, key)
		clk.Advance(time.Second)
	}
	fresh := shardKeys(k, 0, "new-", 5)
	for i, key := range fresh { // shard 0 empty, then holding only recent keys
		if err := k.Take(ctx, key); err != nil {
			t.Fatalf("first take of %s: %v", key, err)
		}
		clk.Advance(time.Second)
		for j, o := range old[:i+2] {
			if got, want := tracked(k, o), j > i; got != want {
				t.Errorf("after %d new keys: old key #%d tracked %v, want %v", i+1, j+1, got, want)
			}
		}
	}
	for _, key := range fresh {
		wantErr(t, k.Take(ctx, key), contract.KindRateLimited, CodeRateLimited) // none forgotten
	}
	if k.Len() != 256 {
		t.Errorf("Len = %d, want 256", k.Len())
	}
	checkKeyCount(t, k)
}

// TestKeyedLimiterFullWaitsForABusyShard: a new key of an empty shard in a
// full limiter whose every key is in a shard locked by another call waits
// for that lock (it does not block on it while holding its own, which could
// deadlock) and then forgets that shard's least recently used key.
func TestKeyedLimiterFullWaitsForABusyShard(t *testing.T) {
	clk := limittest.NewClock(epoch)
	k, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1, Burst: 1, Clock: clk}, MaxKeys: 128})
	if err != nil {
		t.Fatal(err)
	}
	old := shardKeys(k, 1, "old-", 128)
	for _, key := range old {
		_ = k.Take(context.Background(), key)
		clk.Advance(time.Millisecond)
	}
	s1 := &k.shards[1]
	s1.mu.Lock() // another call holds shard 1
	done := make(chan error, 1)
	go func() { done <- k.Take(context.Background(), shardKeys(k, 0, "new-", 1)[0]) }()
	// Wait, without sleeping, until it holds its own shard: it is then
	// looking for a key to forget, and every one is in shard 1.
	for s0 := &k.shards[0]; s0.mu.TryLock(); {
		s0.mu.Unlock()
		runtime.Gosched()
	}
	select {
	case err := <-done:
		t.Fatalf("new key added while every key was locked away: %v", err)
	default:
	}
	s1.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if tracked(k, old[0]) || !tracked(k, old[1]) {
		t.Errorf("old key #1 tracked %v, #2 tracked %v; want the least recently used forgotten", tracked(k, old[0]), tracked(k, old[1]))
	}
	checkKeyCount(t, k)
}

// TestKeyedLimiterConcurrentKeysStayWithinMaxKeys: goroutines adding keys
// to a full limiter, some keeping to one shard (emptied by idle timeouts,
// so new keys there take places from other shards), others spread over
// all, while the clock moves: the limiter never holds more than MaxKeys,
// its count matches its shards, and nothing deadlocks.
func TestKeyedLimiterConcurrentKeysStayWithinMaxKeys(t *testing.T) {
	const maxKeys = 256 // 4 shards
	clk := limittest.NewClock(epoch)
	k, err := NewKeyedLimiter(KeyedConfig{
		Limiter:     LimiterConfig{Rate: 1, Burst: 1, Clock: clk},
		MaxKeys:     maxKeys,
		IdleTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.shards) != 4 {
		t.Fatalf("%d shards, want 4", len(k.shards))
	}
	perShard := make([][]string, len(k.shards))
	for i := range perShard {
		perShard[i] = shardKeys(k, uint64(i), "s"+strconv.Itoa(i)+"-", 300)
	}
	var wg sync.WaitGroup
	var over atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				var key string
				if g%2 == 0 {
					shard := (g/2 + i/500) % len(perShard) // keeps to one shard, then moves on
					key = perShard[shard][(i*7+g)%300]
				} else {
					key = "any-" + strconv.Itoa((i*13+g*101)%5000)
				}
				_ = k.Take(context.Background(), key)
				if n := k.Len(); n > maxKeys {
					over.Store(int64(n))
				}
				if g == 1 && i%100 == 0 {
					clk.Advance(300 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if n := over.Load(); n != 0 {
		t.Errorf("Len %d > MaxKeys %d", n, maxKeys)
	}
	checkKeyCount(t, k)
}
