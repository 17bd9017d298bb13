package idempotency_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// StoreError marks an error permanent: every duplicate gets it back for the
// retention period, so a replay is never worth retrying, whatever its
// Kind (a rate-limited kind is retryable by default).
func TestDoReplayedStoredErrorIsNotRetryable(t *testing.T) {
	env := newExec(t, func(c *idempotency.Config) {
		c.StoreError = func(err error) bool { return contract.As(err).Code == "card.velocity_exceeded" }
	})
	ctx := context.Background()
	runs := 0
	fn := func(context.Context) (int, error) {
		runs++
		return 0, contract.New(contract.KindRateLimited, "psp.charge", "card velocity limit exceeded").WithCode("card.velocity_exceeded").WithRetryable(false)
	}
	if _, err := idempotency.Do(ctx, env.ex, k1, "fp", fn); contract.Retryable(err) {
		t.Fatalf("first call: %v, retryable", err)
	}
	for i := range 2 {
		_, err := idempotency.Do(ctx, env.ex, k1, "fp", fn)
		var ce *contract.Error
		if !errors.As(err, &ce) || ce.Kind != contract.KindRateLimited || ce.Code != "card.velocity_exceeded" {
			t.Fatalf("replay %d: %v", i+1, err)
		}
		if contract.Retryable(err) {
			t.Fatalf("replay %d: %v is retryable; retrying it only replays it again", i+1, err)
		}
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times", runs)
	}
}
