package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// claimCounter counts the claims that reach the store.
type claimCounter struct {
	idempotency.Store
	n atomic.Int32
}

func (c *claimCounter) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	c.n.Add(1)
	return c.Store.Claim(ctx, req)
}

// TestNestedDoSameKeyFailsAtOnce: a Do inside the function of a Do with the
// same key and store can only meet its own claim in progress. Under Wait
// it used to wait for itself until its context ended; under FailFast it got
// a retryable ErrInProgress. Either way it now fails at once with
// ErrNestedCall, without a store call, however deep the nesting.
func TestNestedDoSameKeyFailsAtOnce(t *testing.T) {
	for _, policy := range []idempotency.DuplicatePolicy{idempotency.FailFast, idempotency.Wait} {
		for _, heartbeat := range []time.Duration{0, -1} {
			for _, wrapped := range []bool{false, true} { // the in-process store's own path, or any other store's
				name := fmt.Sprintf("policy=%d/heartbeat=%v/wrapped=%v", policy, heartbeat, wrapped)
				t.Run(name, func(t *testing.T) {
					var store idempotency.Store = newMemory(t, idempotency.MemoryConfig{})
					counter := &claimCounter{Store: store}
					if wrapped {
						store = counter
					}
					// Two executors on the same store: the key is the
					// store's, whichever executor claimed it.
					outer, err := idempotency.New(idempotency.Config{Store: store, Duplicate: policy, Heartbeat: heartbeat})
					if err != nil {
						t.Fatal(err)
					}
					inner, err := idempotency.New(idempotency.Config{Store: store, Duplicate: policy, Heartbeat: heartbeat})
					if err != nil {
						t.Fatal(err)
					}
					other := idempotency.Key{Scope: k1.Scope, Key: "another-key"}
					// Bounded so that a regression fails rather than hangs.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					for _, ex := range []*idempotency.Executor{outer, inner} {
						var nestedErr error
						claimsBefore := counter.n.Load()
						_, _ = idempotency.Do(ctx, outer, k1, "fp", func(ctx context.Context) (int, error) {
							// Through another key's operation and a derived context.
							return idempotency.Do(ctx, inner, other, "fp", func(ctx context.Context) (int, error) {
								ctx = context.WithValue(ctx, struct{ name string }{"layer"}, 1)
								claimsInside := counter.n.Load()
								_, nestedErr = idempotency.Do(ctx, ex, k1, "fp", func(context.Context) (int, error) {
									t.Error("the nested call ran its function")
									return 0, nil
								})
								if wrapped && counter.n.Load() != claimsInside {
									t.Error("the nested call reached the store")
								}
								return 0, nestedErr
							})
						})
						if ctx.Err() != nil {
							t.Fatalf("the nested call waited for its context to end: %v", nestedErr)
						}
						var ce *contract.Error
						if !errors.Is(nestedErr, idempotency.ErrNestedCall) || !errors.As(nestedErr, &ce) ||
							ce.Kind != contract.KindInternal || contract.Retryable(nestedErr) {
							t.Fatalf("nested call: err %v; want ErrNestedCall, KindInternal, not retryable", nestedErr)
						}
						if errors.Is(nestedErr, idempotency.ErrInProgress) {
							t.Fatalf("nested call: err %v also matches ErrInProgress", nestedErr)
						}
						if wrapped && counter.n.Load()-claimsBefore != 2 {
							t.Fatalf("%d claims, want 2 (the outer operations')", counter.n.Load()-claimsBefore)
						}
					}
				})
			}
		}
	}
}

// TestNestedDoOtherKeyOrStoreRuns: only the same key on the same store is a
// nested call; and a context that outlived its operation is not nested any
// more: a call with it replays.
func TestNestedDoOtherKeyOrStoreRuns(t *testing.T) {
	for _, heartbeat := range []time.Duration{0, -1} {
		cfg := idempotency.Config{Duplicate: idempotency.Wait, Heartbeat: heartbeat}
		cfg.Store = newMemory(t, idempotency.MemoryConfig{})
		ex, err := idempotency.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Store = newMemory(t, idempotency.MemoryConfig{})
		elsewhere, err := idempotency.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var kept context.Context
		v, err := idempotency.Do(context.Background(), ex, k1, "fp", func(ctx context.Context) (int, error) {
			kept = ctx
			a, err := idempotency.Do(ctx, ex, idempotency.Key{Scope: k1.Scope, Key: "another-key"}, "fp", func(context.Context) (int, error) { return 1, nil })
			if err != nil {
				return 0, err
			}
			b, err := idempotency.Do(ctx, elsewhere, k1, "fp", func(context.Context) (int, error) { return 2, nil })
			if err != nil {
				return 0, err
			}
			c, err := idempotency.Do(ctx, ex, idempotency.Key{Scope: "other-scope", Key: k1.Key}, "fp", func(context.Context) (int, error) { return 4, nil })
			return a + b + c, err
		})
		if err != nil || v != 7 {
			t.Fatalf("heartbeat %v: %v, %v; want 7: other keys and stores run", heartbeat, v, err)
		}
		v, err = idempotency.Do(context.WithoutCancel(kept), ex, k1, "fp", func(context.Context) (int, error) { return 0, errors.New("ran again") })
		if err != nil || v != 7 {
			t.Fatalf("heartbeat %v: the context of a finished operation: %v, %v; want its replay (7)", heartbeat, v, err)
		}
	}
}

// TestNestedDoAfterCallerLeft: the operation is still running after its
// caller's context ended; a nested call that does not inherit that end
// (context.WithoutCancel) still fails at once instead of waiting for itself.
func TestNestedDoAfterCallerLeft(t *testing.T) {
	for _, heartbeat := range []time.Duration{0, -1} {
		ex, err := idempotency.New(idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{}), Duplicate: idempotency.Wait, Heartbeat: heartbeat})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var nestedErr error
		_, _ = idempotency.Do(ctx, ex, k1, "fp", func(ctx context.Context) (int, error) {
			cancel()
			// Bounded so that a regression fails rather than hangs.
			nctx, ncancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer ncancel()
			_, nestedErr = idempotency.Do(nctx, ex, k1, "fp", func(context.Context) (int, error) { return 0, nil })
			if nctx.Err() != nil {
				t.Errorf("heartbeat %v: the nested call waited for its context to end", heartbeat)
			}
			return 0, nestedErr
		})
		if !errors.Is(nestedErr, idempotency.ErrNestedCall) {
			t.Fatalf("heartbeat %v: nested call after the caller left: %v, want ErrNestedCall", heartbeat, nestedErr)
		}
	}
}

// TestNestedDedupFailsAtOnce: Dedup shares the claim protocol: a handler
// that handles its own message again gets ErrNestedCall, not a wait.
func TestNestedDedupFailsAtOnce(t *testing.T) {
	d, err := idempotency.NewDedup(idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{}), Duplicate: idempotency.Wait})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a regression fails rather than hangs
	defer cancel()
	var nestedErr error
	_, _ = d.Handle(ctx, "/orders", "msg-1", func(ctx context.Context) error {
		_, nestedErr = d.Handle(ctx, "/orders", "msg-1", func(context.Context) error { return nil })
		return nestedErr
	})
	if ctx.Err() != nil || !errors.Is(nestedErr, idempotency.ErrNestedCall) {
		t.Fatalf("nested Handle: %v; want ErrNestedCall at once", nestedErr)
	}
}

// TestNestedDoContextOutlivedCanceledOperation: a context kept from an
// operation whose caller left while it ran (or whose lease renewal ended
// it) is, once the operation returned, no longer nested: a call with it
// replays, as with a context whose operation ended normally.
func TestNestedDoContextOutlivedCanceledOperation(t *testing.T) {
	for _, heartbeat := range []time.Duration{0, -1} {
		ex, err := idempotency.New(idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{}), Duplicate: idempotency.Wait, Heartbeat: heartbeat})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var kept context.Context
		_, _ = idempotency.Do(ctx, ex, k1, "fp", func(ctx context.Context) (int, error) {
			kept = ctx
			cancel() // the caller left; the operation still completes
			return 7, nil
		})
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(kept), 10*time.Second) // a regression fails rather than hangs
		v, err := idempotency.Do(rctx, ex, k1, "fp", func(context.Context) (int, error) { return 0, errors.New("ran again") })
		rcancel()
		if err != nil || v != 7 {
			t.Fatalf("heartbeat %v: the context of a finished operation whose caller left: %v, %v; want its replay (7)", heartbeat, v, err)
		}
	}
}

// uncomparableStore is a store of a type == cannot compare (it holds a
// slice), used by value.
type uncomparableStore struct {
	*idempotency.MemoryStore
	_ []int
}

// valueWrapper is a store of a comparable type, used by value, whose
// field may hold a value of an uncomparable type.
type valueWrapper struct{ idempotency.Store }

// TestNestedDoUncomparableStore: a store whose values == cannot compare is
// still known as itself by the executor that has it: a nested call on it
// fails at once with ErrNestedCall. Another executor given a copy of it
// cannot tell it is the same store, and must not panic trying: comparing
// two valueWrappers holding an uncomparableStore used to panic ("comparing
// uncomparable type") in a nested call with the same key.
func TestNestedDoUncomparableStore(t *testing.T) {
	mem := newMemory(t, idempotency.MemoryConfig{})
	for _, store := range []idempotency.Store{uncomparableStore{MemoryStore: mem}, valueWrapper{uncomparableStore{MemoryStore: mem}}} {
		t.Run(fmt.Sprintf("%T", store), func(t *testing.T) {
			ex, err := idempotency.New(idempotency.Config{Store: store, Duplicate: idempotency.Wait})
			if err != nil {
				t.Fatal(err)
			}
			other, err := idempotency.New(idempotency.Config{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a regression fails rather than hangs
			defer cancel()
			k := idempotency.Key{Scope: k1.Scope, Key: fmt.Sprintf("uncomparable-%T", store)}
			var sameErr, otherErr error
			_, _ = idempotency.Do(ctx, ex, k, "fp", func(ctx context.Context) (int, error) {
				_, sameErr = idempotency.Do(ctx, ex, k, "fp", func(context.Context) (int, error) {
					t.Error("the nested call ran its function")
					return 0, nil
				})
				_, otherErr = idempotency.Do(ctx, other, k, "fp", func(context.Context) (int, error) {
					t.Error("the call of another executor ran its function")
					return 0, nil
				})
				return 0, nil
			})
			if ctx.Err() != nil || !errors.Is(sameErr, idempotency.ErrNestedCall) {
				t.Fatalf("nested call on the same executor: %v; want ErrNestedCall at once", sameErr)
			}
			if otherErr == nil {
				t.Fatal("nested call on another executor: no error; want ErrInProgress or ErrNestedCall")
			}
		})
	}
}

// TestNestedDoInMiddlewareHandler: a Middleware-wrapped handler calling Do
// with its request's key (the caller's scope, the Idempotency-Key) on the
// Middleware's store could only meet the Middleware's claim in progress:
// it fails at once with ErrNestedCall, whatever the policy, rather than
// waiting for itself under Wait.
func TestNestedDoInMiddlewareHandler(t *testing.T) {
	store := newMemory(t, idempotency.MemoryConfig{})
	cfg := idempotency.Config{Store: store, Duplicate: idempotency.Wait}
	mw, err := idempotency.NewMiddleware(idempotency.MiddlewareConfig{Config: cfg, Scope: callerScope})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := idempotency.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var nestedErr error
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second) // a regression fails rather than hangs
		defer cancel()
		key := idempotency.Key{Scope: r.Header.Get("X-Caller"), Key: r.Header.Get(idempotency.HeaderKey)}
		_, nestedErr = idempotency.Do(ctx, ex, key, "fp", func(context.Context) (int, error) {
			t.Error("the nested Do ran its function")
			return 0, nil
		})
		if ctx.Err() != nil {
			t.Error("the nested Do waited for its context to end")
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	req := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(`{}`))
	req.Header.Set("X-Caller", "tenant-1")
	req.Header.Set(idempotency.HeaderKey, "order-1")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !errors.Is(nestedErr, idempotency.ErrNestedCall) {
		t.Fatalf("Do with the request's key in the handler: %v; want ErrNestedCall", nestedErr)
	}
}
