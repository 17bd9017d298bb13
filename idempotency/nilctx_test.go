package idempotency_test

import (
	"context"
	"testing"

	"github.com/sadpath/sadpath/idempotency"
)

// A nil context is taken as context.Background(), as retry.Do and
// breaker.Do take it: the call runs, is recorded and replays, rather than
// panicking inside the executor.
func TestDoNilContext(t *testing.T) {
	ex, err := idempotency.New(idempotency.Config{Store: newMemory(t, idempotency.MemoryConfig{})})
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	fn := func(ctx context.Context) (int, error) {
		if ctx == nil {
			t.Fatal("fn got a nil context")
		}
		runs++
		return 42, nil
	}
	var nilCtx context.Context
	for range 2 {
		v, err := idempotency.Do(nilCtx, ex, idempotency.Key{Key: "k"}, "fp", fn)
		if err != nil || v != 42 {
			t.Fatalf("Do(nil ctx) = %v, %v; want 42, nil", v, err)
		}
	}
	if runs != 1 {
		t.Fatalf("fn ran %d times, want once (the second call replays)", runs)
	}
}
