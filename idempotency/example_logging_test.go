package idempotency_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/logctx"
)

// Decisions are logged (through logctx.Decision: with a logctx Handler the
// context coordinates are added) with a short hash of
// the key: never the key itself, never a stored body.
func ExampleConfig_logger() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	store, _ := idempotency.NewMemoryStore(idempotency.MemoryConfig{})
	ex, _ := idempotency.New(idempotency.Config{Store: store, Logger: logger})

	ctx := logctx.WithOperation(context.Background(), "payments.create")
	key := idempotency.Key{Scope: "merchant-42", Key: "secret-looking-key"}
	work := func(context.Context) (int, error) { return 1, nil }
	_, _ = idempotency.Do(ctx, ex, key, "fp", work)
	_, _ = idempotency.Do(ctx, ex, key, "fp", work)
	_, _ = idempotency.Do(ctx, ex, key, "other", work)
	// Output:
	// level=INFO msg=replayed decision=replayed reason="completed before: replaying the stored result" idempotency_key_hash=4230f1a8717e
	// level=WARN msg=mismatch decision=mismatch reason="key reused with a different payload" idempotency_key_hash=4230f1a8717e
}
