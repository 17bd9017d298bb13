//go:build !race

package idempotency_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

// Allocation budgets of the hot paths (exact counts; run without -race,
// which allocates on its own).

func TestAllocDoReplay(t *testing.T) {
	ex := memoExec(t, nil)
	ctx := context.Background()
	fn := func(context.Context) (payment, error) { return payment{ID: "pay_1", Amount: 1}, nil }
	for range 3 { // run, first replay, second replay (memoizes)
		if _, err := idempotency.Do(ctx, ex, k1, "fp", fn); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = idempotency.Do(ctx, ex, k1, "fp", fn) }); n != 0 {
		t.Fatalf("replay of a plain value: %v allocs, want 0", n)
	}
}

func TestAllocDoFreshKey(t *testing.T) {
	for _, tc := range []struct {
		heartbeat bool
		max       float64
	}{{true, 7}, {false, 5}} { // the memoized replay value shares the allocation of the box handed to the codec; its strings take one more (detachStrings)
		cfg := idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{MaxEntries: 1 << 16, MaxBytes: 1 << 28})}
		if !tc.heartbeat {
			cfg.Heartbeat = -1
		}
		ex, err := idempotency.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		keys := benchKeys(2000)
		i := 0
		fn := func(context.Context) (payment, error) { return payment{ID: "pay_1", Amount: 1}, nil }
		// Map and heap growth are amortized into the average.
		n := testing.AllocsPerRun(1000, func() {
			_, _ = idempotency.Do(ctx, ex, keys[i], "fp", fn)
			i++
		})
		t.Logf("fresh key (heartbeat %v): %v allocs", tc.heartbeat, n)
		if n > tc.max {
			t.Fatalf("fresh key (heartbeat %v): %v allocs, want <= %v", tc.heartbeat, n, tc.max)
		}
	}
}

// A replay allocates no more than the trivial handler it replays for.
func TestAllocMiddlewareReplay(t *testing.T) {
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
		Config: idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{})},
		Scope:  callerScope,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/payments", nil)
	r.Header.Set("Idempotency-Key", `"k-1"`)
	r.Header.Set("X-Caller", "tenant-1")
	rd := bytes.NewReader(benchBody)
	r.Body = io.NopCloser(rd)
	serveOnce := func(h interface {
		ServeHTTP(w http.ResponseWriter, r *http.Request)
	}) func() {
		return func() {
			rd.Reset(benchBody)
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	direct := serveOnce(trivialHandler())
	replay := serveOnce(mw.Wrap(trivialHandler()))
	for range 3 {
		replay()
	}
	d, m := testing.AllocsPerRun(1000, direct), testing.AllocsPerRun(1000, replay)
	t.Logf("replay %v allocs, trivial handler %v", m, d)
	if m > d {
		t.Fatalf("replay %v allocs, trivial handler %v", m, d)
	}
}
