package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sadpath/sadpath/idempotency"
)

// TestNestedCallOnAnotherStoreOfTheSamePrefixFailsAtOnce: two Stores with
// the same prefix on the same server and database (one per handler, on the
// same client or on clients of their own) share records, so a Do nested in
// an operation holding the same key through the other Store can only meet
// that operation's claim in progress. Compared with ==, the Stores looked
// different: under Wait the nested Do waited for itself until its context
// ended. It now fails at once with ErrNestedCall. Another prefix, or
// another database of the server, is still another store.
func TestNestedCallOnAnotherStoreOfTheSamePrefixFailsAtOnce(t *testing.T) {
	c := newClient(t, "redisstore-nested-identity")
	prefix := testPrefix(t)
	s := newStore(t, c, prefix)
	sameClient := newStore(t, c, prefix)
	otherClient := newStore(t, newClient(t, "redisstore-nested-identity-2"), prefix)
	do := func(ctx context.Context, st *Store, k idempotency.Key, fn func(context.Context) (int, error)) (int, error) {
		ex, err := idempotency.New(idempotency.Config{Store: st, Duplicate: idempotency.Wait})
		if err != nil {
			t.Fatal(err)
		}
		return idempotency.Do(ctx, ex, k, "fp", fn)
	}
	for _, inner := range []struct {
		name  string
		store *Store
	}{{"same client", sameClient}, {"other client", otherClient}} {
		t.Run(inner.name, func(t *testing.T) {
			k := idempotency.Key{Scope: "tenant", Key: "identity"}
			// Bounded so that the defect fails rather than hangs.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var nestedErr error
			_, outerErr := do(ctx, s, k, func(ctx context.Context) (int, error) {
				_, nestedErr = do(ctx, inner.store, k, func(context.Context) (int, error) {
					t.Error("the nested call ran its function")
					return 0, nil
				})
				return 0, nestedErr
			})
			if ctx.Err() != nil {
				t.Fatalf("the nested call waited for its context to end: %v", nestedErr)
			}
			if !errors.Is(nestedErr, idempotency.ErrNestedCall) || !errors.Is(outerErr, idempotency.ErrNestedCall) {
				t.Fatalf("nested: %v, outer: %v; want ErrNestedCall", nestedErr, outerErr)
			}
		})
	}
	// The same key under another prefix, or in another database, is not
	// nested: it runs.
	otherDB := redis.NewClient(&redis.Options{Addr: c.Options().Addr, DB: c.Options().DB + 1})
	t.Cleanup(func() { _ = otherDB.Close() })
	for name, st := range map[string]*Store{
		"other prefix":   newStore(t, c, testPrefix(t)),
		"other database": newStore(t, otherDB, prefix),
	} {
		k := idempotency.Key{Scope: "tenant", Key: "identity-" + name}
		v, err := do(context.Background(), s, k, func(ctx context.Context) (int, error) {
			return do(ctx, st, k, func(context.Context) (int, error) { return 3, nil })
		})
		if err != nil || v != 3 {
			t.Fatalf("%s: %v, %v; want 3, nil", name, v, err)
		}
	}
}
