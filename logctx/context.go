package logctx

import (
	"context"
	"log/slog"
)

// Attribute keys written by the Handler and the decision helpers. They are
// stable: dashboards and alerts may depend on them.
const (
	KeyCorrelationID = "correlation_id"
	KeyOperation     = "operation"
	KeyEntityKind    = "entity_kind"
	KeyEntityID      = "entity_id"
	KeyDecision      = "decision"
	KeyReason        = "reason"
	KeyDependency    = "dependency"
	KeyState         = "state"
	KeyTraceID       = "trace_id"
	KeySpanID        = "span_id"
)

// coords is the immutable set of coordinates carried by a context. Every
// With* call copies it, so a child never changes what its parent sees.
type coords struct {
	correlationID string
	operation     string
	entityKind    string
	entityID      string
	attrs         []slog.Attr // never appended in place: always copied
}

type ctxKey struct{}

func from(ctx context.Context) *coords {
	if ctx == nil {
		return nil
	}
	c, _ := ctx.Value(ctxKey{}).(*coords)
	return c
}

func derive(ctx context.Context) (context.Context, *coords) {
	if ctx == nil {
		ctx = context.Background()
	}
	n := &coords{}
	if c := from(ctx); c != nil {
		*n = *c
	}
	return ctx, n
}

// WithCorrelationID returns a context carrying the correlation id.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	ctx, c := derive(ctx)
	c.correlationID = id
	return context.WithValue(ctx, ctxKey{}, c)
}

// CorrelationID returns the context's correlation id, or "".
func CorrelationID(ctx context.Context) string {
	if c := from(ctx); c != nil {
		return c.correlationID
	}
	return ""
}

// WithOperation returns a context carrying the operation name ("payments.create").
func WithOperation(ctx context.Context, op string) context.Context {
	ctx, c := derive(ctx)
	c.operation = op
	return context.WithValue(ctx, ctxKey{}, c)
}

// Operation returns the context's operation, or "".
func Operation(ctx context.Context) string {
	if c := from(ctx); c != nil {
		return c.operation
	}
	return ""
}

// WithEntity returns a context carrying the entity the work is about
// (kind "payment", id "pay_123").
func WithEntity(ctx context.Context, kind, id string) context.Context {
	ctx, c := derive(ctx)
	c.entityKind, c.entityID = kind, id
	return context.WithValue(ctx, ctxKey{}, c)
}

// Entity returns the context's entity kind and id, or "", "".
func Entity(ctx context.Context) (kind, id string) {
	if c := from(ctx); c != nil {
		return c.entityKind, c.entityID
	}
	return "", ""
}

// With returns a context carrying attrs in addition to those already there.
// The Handler adds them to every record logged with the context.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	ctx, c := derive(ctx)
	if len(attrs) == 0 {
		return ctx
	}
	merged := make([]slog.Attr, 0, len(c.attrs)+len(attrs))
	merged = append(merged, c.attrs...)
	merged = append(merged, attrs...)
	c.attrs = merged
	return context.WithValue(ctx, ctxKey{}, c)
}

// Attrs returns the free attributes added with With. The slice must not be modified.
func Attrs(ctx context.Context) []slog.Attr {
	if c := from(ctx); c != nil {
		return c.attrs
	}
	return nil
}

// Decision logs that the system decided something — replayed a stored
// response, failed fast because a breaker is open, dropped a stale event,
// gave up after N attempts — as one record whose message is the decision,
// with the attributes decision and reason plus attrs. Coordinates come from
// ctx when l's handler is a logctx Handler. A nil l logs nothing, and a
// disabled level costs one Enabled call.
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
	all := make([]slog.Attr, 0, 2+len(attrs))
	all = append(all, slog.String(KeyDecision, decision), slog.String(KeyReason, reason))
	all = append(all, attrs...)
	l.LogAttrs(ctx, level, decision, all...)
}
