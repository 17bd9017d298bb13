package idempotency_test

import (
	"context"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

// An operation run failing open holds no claim: Token must say so even
// when it runs inside another operation (a Dedup handler or a
// Middleware-wrapped handler calling Do), whose token belongs to another
// key and would fence the inner write with the wrong counter.
func TestTokenFalseWhenFailingOpenInsideAnotherOperation(t *testing.T) {
	outer := newExec(t, nil)
	inner := newExec(t, func(c *idempotency.Config) { c.FailOpen = true })
	inner.fault.set(&inner.fault.claimErr, func() error { return errDown })
	ctx := context.Background()
	_, err := idempotency.Do(ctx, outer.ex, k1, "fp", func(ctx context.Context) (int, error) {
		if _, ok := idempotency.Token(ctx); !ok {
			t.Fatal("no token inside the outer operation")
		}
		return idempotency.Do(ctx, inner.ex, idempotency.Key{Scope: "tenant-1", Key: "sub-op"}, "fp", func(ctx context.Context) (int, error) {
			if tok, ok := idempotency.Token(ctx); ok {
				t.Errorf("failing open: Token = %d, true; want false (the outer operation's token is another key's)", tok)
			}
			return 1, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
