package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
)

// A caller that goes away (or times out) while fn runs makes fn return its
// context's error, which a StoreError keeping every non-retryable error
// would call permanent: the key must be released for the retry, not
// answered with "canceled" for the retention period.
func TestDoErrorAfterContextEndedIsNotStored(t *testing.T) {
	for name, permanent := range map[string]func(error) bool{
		"canceled": func(err error) bool { return !contract.Retryable(err) },
		"deadline": func(error) bool { return true },
	} {
		t.Run(name, func(t *testing.T) {
			env := newExec(t, func(c *idempotency.Config) { c.StoreError = permanent })
			ctx, cancel := context.WithCancel(context.Background())
			if name == "deadline" {
				ctx, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
			}
			defer cancel()
			_, err := idempotency.Do(ctx, env.ex, k1, "fp", func(ctx context.Context) (int, error) {
				if name == "canceled" {
					cancel()
				}
				<-ctx.Done()
				return 0, contract.Wrap(contract.KindOf(ctx.Err()), "psp.charge", ctx.Err())
			})
			if err == nil {
				t.Fatal("first call: nil error")
			}
			runs := 0
			v, err := idempotency.Do(context.Background(), env.ex, k1, "fp", func(context.Context) (int, error) { runs++; return 7, nil })
			if err != nil || v != 7 || runs != 1 {
				t.Fatalf("retry: %v, %v (runs=%d); want the operation run again", v, err, runs)
			}
		})
	}
}
