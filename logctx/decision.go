package logctx

import (
	"context"
	"log/slog"
)

// Decision logs that the system decided something — replayed a stored
// response, failed fast because a breaker is open, dropped a stale event,
// gave up after N attempts — as one record whose message is the decision,
// with the attributes decision and reason plus attrs. Coordinates come from
// ctx when l's handler is a logctx Handler. A nil l logs nothing, a nil ctx
// is treated as context.Background, and a disabled level costs one Enabled
// call and no allocation.
func Decision(ctx context.Context, l *slog.Logger, level slog.Level, decision, reason string, attrs ...slog.Attr) {
	if l == nil {
		return
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, level) {
		return
	}
	// A fixed-size buffer keeps the common case (a few attrs) off the heap.
	var buf [8]slog.Attr
	all := buf[:0]
	all = append(all, slog.String(KeyDecision, decision), slog.String(KeyReason, reason))
	all = append(all, attrs...)
	l.LogAttrs(ctx, level, decision, all...)
}
