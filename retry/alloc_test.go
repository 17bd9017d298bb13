//go:build !race

package retry_test

// Allocation counts are only meaningful without the race detector, so these
// tests are built only without it (go test -run Alloc, no -race).

import (
	"context"
	"log/slog"
	"testing"

	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// TestAllocDoFirstTrySuccess: a first-try success allocates nothing, with
// or without a budget.
func TestAllocDoFirstTrySuccess(t *testing.T) {
	tb, err := retry.NewTokenBucket(retry.TokenBucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := retry.NewRatioBudget(retry.RatioBudgetConfig{Clock: retrytest.NewClock()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, b := range map[string]retry.Budget{"no budget": nil, "token bucket": tb, "ratio budget": rb} {
		p := mustPolicy(t, retry.Config{Budget: b})
		if n := testing.AllocsPerRun(1000, func() { _, _ = retry.Do(ctx, p, work) }); n != 0 {
			t.Errorf("%s: %v allocs, want 0", name, n)
		}
	}
	// With a Logger, whose paced decisions a success checks for an end.
	p := mustPolicy(t, retry.Config{Logger: slog.New(slog.DiscardHandler)})
	if n := testing.AllocsPerRun(1000, func() { _, _ = retry.Do(ctx, p, work) }); n != 0 {
		t.Errorf("with a logger: %v allocs, want 0", n)
	}
}
