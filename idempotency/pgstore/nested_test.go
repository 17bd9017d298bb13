package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// nestedCall is one way of calling with a key from inside an operation:
// DoTx, or idempotency.Do on an executor with the given policy.
type nestedCall struct {
	name string
	call func(ctx context.Context, s *Store, k idempotency.Key, fn func(context.Context) (int, error)) (int, error)
}

func nestedCalls(t *testing.T) []nestedCall {
	calls := []nestedCall{{"DoTx", func(ctx context.Context, s *Store, k idempotency.Key, fn func(context.Context) (int, error)) (int, error) {
		return DoTx(ctx, s, k, "fp", func(ctx context.Context, _ pgx.Tx) (int, error) { return fn(ctx) })
	}}}
	for _, policy := range []idempotency.DuplicatePolicy{idempotency.FailFast, idempotency.Wait} {
		calls = append(calls, nestedCall{fmt.Sprintf("Do(policy=%d)", policy), func(ctx context.Context, s *Store, k idempotency.Key, fn func(context.Context) (int, error)) (int, error) {
			ex, err := idempotency.New(idempotency.Config{Store: s, Duplicate: policy})
			if err != nil {
				t.Fatal(err)
			}
			return idempotency.Do(ctx, ex, k, "fp", fn)
		}})
	}
	return calls
}

// TestDoTxNestedSameKeyFailsAtOnce: a DoTx inside an operation holding the
// same key on the same store (a Do's, a DoTx's), or a Do inside a DoTx's fn,
// can only meet its own claim in progress. It used to answer ErrInProgress
// (retryable: a retry meets the same claim) or, under Wait, wait for itself
// until its context ended; it now fails at once with ErrNestedCall, as a Do
// nested in a Do does, without a statement, however deep the nesting.
func TestDoTxNestedSameKeyFailsAtOnce(t *testing.T) {
	p, tr := newPool(t, "pgstore-dotx-nested", nil)
	s := newStore(t, p, newTable())
	other := newStore(t, p, newTable())
	for _, outer := range nestedCalls(t) {
		for _, inner := range nestedCalls(t) {
			if outer.name != "DoTx" && inner.name != "DoTx" {
				continue // the executor's own case (idempotency's tests)
			}
			t.Run(outer.name+"/"+inner.name, func(t *testing.T) {
				k := idempotency.Key{Scope: "tenant", Key: "nested-" + randomSuffix()}
				// Bounded so that a regression fails rather than hangs.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var nestedErr error
				_, outerErr := outer.call(ctx, s, k, func(ctx context.Context) (int, error) {
					// Through an operation on another store and a derived context.
					return DoTx(ctx, other, k, "fp", func(ctx context.Context, _ pgx.Tx) (int, error) {
						ctx = context.WithValue(ctx, struct{ name string }{"layer"}, 1)
						before := tr.n.Load()
						_, nestedErr = inner.call(ctx, s, k, func(context.Context) (int, error) {
							t.Error("the nested call ran its function")
							return 0, nil
						})
						if n := tr.n.Load() - before; n != 0 {
							t.Errorf("the nested call ran %d statements, want none", n)
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
				if !errors.Is(outerErr, idempotency.ErrNestedCall) {
					t.Fatalf("outer call: err %v, want the nested call's ErrNestedCall", outerErr)
				}
				// The failed outer operation released the key: it runs now.
				if v, err := outer.call(ctx, s, k, func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
					t.Fatalf("after the nested failure: %v, %v; want 7, nil", v, err)
				}
			})
		}
	}
}

// TestDoTxNestedOtherKeyOrStoreRuns: only the same key on the same store is
// a nested call; and the context of a DoTx that returned is not nested any
// more: a call with it replays.
func TestDoTxNestedOtherKeyOrStoreRuns(t *testing.T) {
	p, _ := newPool(t, "pgstore-dotx-nested-other", nil)
	s := newStore(t, p, newTable())
	elsewhere := newStore(t, p, newTable())
	ctx := context.Background()
	k := idempotency.Key{Scope: "tenant", Key: "nested-other"}
	one := func(v int) func(context.Context, pgx.Tx) (int, error) {
		return func(context.Context, pgx.Tx) (int, error) { return v, nil }
	}
	var kept context.Context
	v, err := DoTx(ctx, s, k, "fp", func(ctx context.Context, _ pgx.Tx) (int, error) {
		kept = ctx
		a, err := DoTx(ctx, s, idempotency.Key{Scope: k.Scope, Key: "another-key"}, "fp", one(1))
		if err != nil {
			return 0, err
		}
		b, err := DoTx(ctx, elsewhere, k, "fp", one(2))
		if err != nil {
			return 0, err
		}
		c, err := DoTx(ctx, s, idempotency.Key{Scope: "other-scope", Key: k.Key}, "fp", one(4))
		return a + b + c, err
	})
	if err != nil || v != 7 {
		t.Fatalf("%v, %v; want 7: other keys and stores run", v, err)
	}
	v, err = DoTx(kept, s, k, "fp", func(context.Context, pgx.Tx) (int, error) { return 0, errors.New("ran again") })
	if err != nil || v != 7 {
		t.Fatalf("the context of a finished DoTx: %v, %v; want its replay (7)", v, err)
	}
	ex, err := idempotency.New(idempotency.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	v, err = idempotency.Do(kept, ex, k, "fp", func(context.Context) (int, error) { return 0, errors.New("ran again") })
	if err != nil || v != 7 {
		t.Fatalf("Do with the context of a finished DoTx: %v, %v; want its replay (7)", v, err)
	}
}

// TestDoTxTokenIsItsOwn: idempotency.Token in DoTx's fn returns DoTx's own
// fencing token — the token of the innermost operation — also when the
// DoTx runs inside a Do with another key. It used to return the enclosing
// Do's token (a token of another key: a downstream write fenced with it
// would compare tokens of different keys), and false outside any Do.
func TestDoTxTokenIsItsOwn(t *testing.T) {
	p, _ := newPool(t, "pgstore-dotx-token", nil)
	s := newStore(t, p, newTable())
	mem, err := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := idempotency.New(idempotency.Config{Store: mem})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, enclosed := range []bool{false, true} {
		k := idempotency.Key{Scope: "tenant", Key: "token-" + randomSuffix()}
		var got uint64
		var ok bool
		dotx := func(ctx context.Context) (int, error) {
			return DoTx(ctx, s, k, "fp", func(ctx context.Context, _ pgx.Tx) (int, error) {
				got, ok = idempotency.Token(ctx)
				return 1, nil
			})
		}
		if enclosed {
			_, err = idempotency.Do(ctx, ex, idempotency.Key{Scope: "tenant", Key: "outer"}, "fp", dotx)
		} else {
			_, err = dotx(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		rec, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || got != rec.Token {
			t.Fatalf("enclosed in a Do %v: Token in DoTx's fn = %d, %v; want DoTx's own token %d, true", enclosed, got, ok, rec.Token)
		}
	}
}

// TestConsumerHandlerDoTxWithItsKeyFailsAtOnce: a consumer.Consumer's
// Handler runs under the consumer's claim of the event's id in its store;
// a DoTx it calls with that key and store could only meet the claim in
// progress, and fails at once with ErrNestedCall without a statement (it
// used to claim and get ErrMismatch or, with the record's fingerprint, a
// retryable ErrInProgress).
func TestConsumerHandlerDoTxWithItsKeyFailsAtOnce(t *testing.T) {
	p, tr := newPool(t, "pgstore-consumer-nested", nil)
	s := newStore(t, p, newTable())
	ev := contract.Event{ID: "evt-" + randomSuffix(), Source: "/orders", SpecVersion: "1.0", Type: "com.example.placed.v1", Data: json.RawMessage(`{}`)}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	key := idempotency.Key{Scope: "consumer/orders", Key: ev.DedupKey()}
	var nestedErr error
	c, err := consumer.New(consumer.Config{Name: "orders", Store: s, Handler: func(ctx context.Context, _ *contract.Event) error {
		before := tr.n.Load()
		_, nestedErr = DoTx(ctx, s, key, "fp", func(context.Context, pgx.Tx) (int, error) {
			t.Error("the nested DoTx ran its function")
			return 0, nil
		})
		if n := tr.n.Load() - before; n != 0 {
			t.Errorf("the nested DoTx ran %d statements, want none", n)
		}
		return nestedErr
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Handle(context.Background(), consumer.Delivery{Data: data, Attempt: 1})
	if !errors.Is(nestedErr, idempotency.ErrNestedCall) {
		t.Fatalf("DoTx with the consumer's key in its Handler: %v; want ErrNestedCall", nestedErr)
	}
	if r.Action != consumer.DeadLetter || !errors.Is(r.Err, idempotency.ErrNestedCall) {
		t.Fatalf("Handle: %v (%v); want the event dead-lettered with ErrNestedCall", r.Action, r.Err)
	}
}
