//go:build !race

package logctx

// Allocation counts are only meaningful without the race detector, so these
// tests are built only without it; scripts/test.sh runs them in a pass of
// its own (go test -run Alloc, no -race).

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
)

func TestHandlerZeroExtraAllocs(t *testing.T) {
	// The figure as a test: 3 coordinates + 2 attrs allocate no
	// more than the same 5 attrs written directly.
	var sink bytes.Buffer
	direct := slog.New(slog.NewJSONHandler(&sink, nil))
	wrapped := slog.New(mustHandler(t, HandlerConfig{Next: slog.NewJSONHandler(&sink, nil)}))
	ctx := WithCorrelationID(context.Background(), "c-1")
	ctx = WithOperation(ctx, "op")
	ctx = With(ctx, slog.String("tenant", "acme"))
	bg := context.Background()
	d := testing.AllocsPerRun(200, func() {
		sink.Reset()
		direct.LogAttrs(bg, slog.LevelInfo, "m", slog.String(KeyCorrelationID, "c-1"), slog.String(KeyOperation, "op"),
			slog.String("tenant", "acme"), slog.Int("amount", 1), slog.String("currency", "EUR"))
	})
	w := testing.AllocsPerRun(200, func() {
		sink.Reset()
		wrapped.LogAttrs(ctx, slog.LevelInfo, "m", slog.Int("amount", 1), slog.String("currency", "EUR"))
	})
	if w > d {
		t.Errorf("wrapped allocs %v > direct allocs %v", w, d)
	}
}

func TestHandlerBytesNoExtraAllocs(t *testing.T) {
	// A []byte without a card number (a request body, a message payload)
	// is scanned in place: it costs no copy of its own.
	var sink bytes.Buffer
	direct := slog.New(slog.NewTextHandler(&sink, nil))
	wrapped := slog.New(mustHandler(t, HandlerConfig{Next: slog.NewTextHandler(&sink, nil)}))
	body := bytes.Repeat([]byte(`{"amount":1250,"currency":"EUR"} `), 64)
	bg := context.Background()
	d := testing.AllocsPerRun(200, func() {
		sink.Reset()
		direct.LogAttrs(bg, slog.LevelInfo, "m", slog.Any("body", body))
	})
	w := testing.AllocsPerRun(200, func() {
		sink.Reset()
		wrapped.LogAttrs(bg, slog.LevelInfo, "m", slog.Any("body", body))
	})
	if w > d {
		t.Errorf("wrapped allocs %v > direct allocs %v", w, d)
	}
}
