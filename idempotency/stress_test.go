package idempotency_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// TestExactlyOnceUnderFaults is the proof of the package's promise: 64
// goroutines × 2,000 requests, 30 % of them duplicates of earlier keys,
// random handler latency, random handler failures (500, 429, panics) and
// random client cancellations, through two middlewares (fail fast and wait)
// sharing one store. Afterwards every key is retried once more without
// faults, and the test checks that each key's effect ran exactly once, that
// every successful answer for a key (fresh or replayed) is byte-identical,
// and that no key was lost.
func TestExactlyOnceUnderFaults(t *testing.T) {
	workers, perWorker := 64, 2000
	if testing.Short() {
		perWorker = 200
	}
	store := newMemory(t, idempotency.MemoryConfig{MaxEntries: 1 << 20, MaxBytes: 512 << 20})

	var (
		effects sync.Map // key -> *atomic.Int32: committed effects
		seq     atomic.Int64
		calm    atomic.Bool // set after the storm: no more injected faults
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		rnd := rand.IntN(100)
		if calm.Load() {
			rnd = 50 // no latency, no failure
		}
		switch { // latency, sometimes long enough for duplicates to meet it in flight
		case rnd < 2:
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		case rnd < 20:
			for range rand.IntN(20) {
				runtime.Gosched()
			}
		}
		switch {
		case rnd%17 == 0:
			w.WriteHeader(http.StatusInternalServerError) // failed before any effect
			return
		case rnd%29 == 0:
			w.WriteHeader(http.StatusTooManyRequests)
			return
		case rnd%41 == 0:
			panic(http.ErrAbortHandler)
		}
		if r.Context().Err() != nil { // the client went away before the effect
			w.WriteHeader(499)
			return
		}
		c, _ := effects.LoadOrStore(key, new(atomic.Int32))
		c.(*atomic.Int32).Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "effect %d for %s", seq.Add(1), key)
	})
	mk := func(p idempotency.DuplicatePolicy) http.Handler {
		mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{
			Config: idempotency.Config{Store: store, Lease: 10 * time.Second, Duplicate: p, PollInterval: 100 * time.Microsecond, MaxPollInterval: 2 * time.Millisecond},
			Scope:  func(r *http.Request) (string, error) { return r.Header.Get("X-Tenant"), nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		return mw.Wrap(handler)
	}
	failFast, wait := mk(idempotency.FailFast), mk(idempotency.Wait)

	var (
		mu        sync.Mutex
		keys      []string              // every key used so far
		answers   = map[string]string{} // key -> the one successful body
		fresh     = map[string]int{}    // key -> non-replayed successes
		mismatch  atomic.Int32
		conflicts atomic.Int32
		replays   atomic.Int32
	)
	tenantOf := func(key string) string { return "tenant-" + key[len(key)-1:] }
	send := func(h http.Handler, key string, cancel bool) {
		ctx := context.Background()
		if cancel {
			c, stop := context.WithCancel(ctx)
			if rand.IntN(2) == 0 {
				stop() // canceled before it starts
			} else {
				time.AfterFunc(time.Duration(rand.IntN(100))*time.Microsecond, stop)
			}
			defer stop()
			ctx = c
		}
		r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/payments", strings.NewReader(`{"key":"`+key+`"}`))
		r.Header.Set("Idempotency-Key", key)
		r.Header.Set("X-Tenant", tenantOf(key))
		w := httptest.NewRecorder()
		func() {
			defer func() {
				if p := recover(); p != nil && p != http.ErrAbortHandler {
					panic(p)
				}
			}()
			h.ServeHTTP(w, r)
		}()
		switch w.Code {
		case http.StatusCreated:
			replayed := w.Header().Get(idempotency.HeaderReplayed) == "true"
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := answers[key]; ok && prev != w.Body.String() {
				t.Errorf("key %s: answer %q differs from %q", key, w.Body, prev)
			}
			answers[key] = w.Body.String()
			if replayed {
				replays.Add(1)
			} else {
				fresh[key]++
			}
		case http.StatusUnprocessableEntity:
			mismatch.Add(1)
		case http.StatusConflict:
			conflicts.Add(1)
		}
	}

	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := failFast
			if g%2 == 1 {
				h = wait
			}
			for i := range perWorker {
				var key string
				mu.Lock()
				if len(keys) > 0 && rand.IntN(100) < 30 {
					// Half the duplicates hit a recent key, likely still in flight.
					if n := len(keys); rand.IntN(2) == 0 {
						key = keys[n-1-rand.IntN(min(n, 128))]
					} else {
						key = keys[rand.IntN(n)]
					}
				} else {
					key = fmt.Sprintf("k-%d-%d", g, i)
					keys = append(keys, key)
				}
				mu.Unlock()
				send(h, key, rand.IntN(100) < 5)
			}
		}()
	}
	wg.Wait()
	calm.Store(true)
	// Nothing lost: one clean retry per key must end in its one result.
	for _, key := range keys {
		send(failFast, key, false)
		send(wait, key, false)
	}
	if t.Failed() {
		return
	}
	for _, key := range keys {
		v, ok := effects.Load(key)
		if !ok {
			t.Fatalf("key %s: no effect after a clean retry: lost", key)
		}
		if n := v.(*atomic.Int32).Load(); n != 1 {
			t.Fatalf("key %s: effect ran %d times", key, n)
		}
		if fresh[key] != 1 {
			t.Fatalf("key %s: %d non-replayed successes, want 1", key, fresh[key])
		}
	}
	if mismatch.Load() != 0 {
		t.Fatalf("%d spurious 422s", mismatch.Load())
	}
	t.Logf("%d keys, %d requests, %d replays, %d conflicts (409)", len(keys), workers*perWorker+2*len(keys), replays.Load(), conflicts.Load())
}
