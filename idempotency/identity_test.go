package idempotency_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
)

// identified is a store value with an identity (idempotency.StoreIdentifier):
// two of them on the same records are distinct pointers, equal only by
// identity.
type identified struct {
	idempotency.Store
	id string
}

func (s *identified) StoreIdentity() string { return s.id }

// TestNestedDoOnAnotherStoreValueWithTheSameIdentityFailsAtOnce: a Do
// nested in a Do holding the same key through another store value with the
// same StoreIdentity (two values built on the same records) could only meet
// its own claim in progress. Compared with ==, the values looked different
// and under Wait the nested Do waited for itself until its context ended;
// it now fails at once with ErrNestedCall. Another identity, or none (""),
// is another store: the nested Do then runs as a duplicate would.
func TestNestedDoOnAnotherStoreValueWithTheSameIdentityFailsAtOnce(t *testing.T) {
	m := newMemory(t, idempotency.MemoryConfig{})
	do := func(ctx context.Context, s idempotency.Store, k idempotency.Key, fn func(context.Context) (int, error)) (int, error) {
		ex, err := idempotency.New(idempotency.Config{Store: s, Duplicate: idempotency.Wait})
		if err != nil {
			t.Fatal(err)
		}
		return idempotency.Do(ctx, ex, k, "fp", fn)
	}
	k := idempotency.Key{Scope: "s", Key: "k"}
	// Bounded so that the defect fails rather than hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var nestedErr error
	_, outerErr := do(ctx, &identified{m, "records"}, k, func(ctx context.Context) (int, error) {
		_, nestedErr = do(ctx, &identified{m, "records"}, k, func(context.Context) (int, error) {
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
	for i, id := range []string{"other records", ""} {
		other := newMemory(t, idempotency.MemoryConfig{})
		k := idempotency.Key{Scope: "s", Key: "other"}
		v, err := do(context.Background(), &identified{m, "records"}, k, func(ctx context.Context) (int, error) {
			return do(ctx, &identified{other, id}, k, func(context.Context) (int, error) { return 3, nil })
		})
		if err != nil || v != 3 {
			t.Fatalf("case %d (identity %q): %v, %v; want 3, nil", i, id, v, err)
		}
	}
}
