//go:build !race

package limit

// Allocation counts are only meaningful without the race detector, so these
// tests are built only without it (go test -run Alloc, no -race).

import (
	"context"
	"testing"
	"time"
)

// TestAllocKeyedLimiterTrackedKey: a call for a key already tracked, the hot
// path, allocates nothing, in a full limiter too (the count of keys is only
// touched by new keys).
func TestAllocKeyedLimiterTrackedKey(t *testing.T) {
	for _, maxKeys := range []int{1, 1024} {
		k, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Rate: 1e12, Burst: 1 << 30}, MaxKeys: maxKeys, IdleTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		keys := shardKeys(k, 0, "tenant-", maxKeys) // fill the limiter
		for _, key := range keys {
			if err := k.Take(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
		key := keys[len(keys)/2]
		if n := testing.AllocsPerRun(1000, func() { _ = k.Take(ctx, key) }); n != 0 {
			t.Errorf("MaxKeys %d: %v allocs for a tracked key, want 0", maxKeys, n)
		}
	}
}
