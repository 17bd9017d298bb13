package logctx

import (
	"context"
	"log/slog"
)

// Attribute keys written by the Handler and the decision helpers. They are
// stable: dashboards and alerts may depend on them.
const (
	KeyCorrelationID = "correlation_id" // the id shared by every service handling one request or message
	KeyOperation     = "operation"      // what is being done ("payments.capture")
	KeyEntityKind    = "entity_kind"    // what it is done to ("payment")
	KeyEntityID      = "entity_id"      // which one ("pay_123")
	KeyDecision      = "decision"       // what the system decided (Decision)
	KeyReason        = "reason"         // why it decided so (Decision)
	KeyDependency    = "dependency"     // the downstream involved ("acquirer")
	KeyState         = "state"          // a state, e.g. of a breaker or an idempotency record
	KeySuppressed    = "suppressed"     // occurrences of the same decision written at Debug since its last line at its level
	KeyTraceID       = "trace_id"       // otel trace id (32 hex) of the span on the context
	KeySpanID        = "span_id"        // otel span id (16 hex) of the span on the context
)

// Attribute keys of the access line written by the middleware. They are
// stable like the coordinate keys.
const (
	KeyMethod     = "method"      // request method
	KeyRoute      = "route"       // matched ServeMux pattern (Request.Pattern), or "" when none
	KeyStatus     = "status"      // response status code
	KeyDurationMS = "duration_ms" // time to serve the request, in milliseconds (float)
	KeyBytes      = "bytes"       // response body bytes written
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

// valueCtx carries coords in the same allocation as the context node, so a
// With* call costs one allocation instead of two (coords plus
// context.WithValue). Cancellation, deadlines and other values are those
// of the embedded parent.
type valueCtx struct {
	context.Context
	c coords
}

func (v *valueCtx) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return &v.c
	}
	return v.Context.Value(key)
}

func (v *valueCtx) String() string { return "logctx.WithCoordinates" }

func from(ctx context.Context) *coords {
	if ctx == nil {
		return nil
	}
	c, _ := ctx.Value(ctxKey{}).(*coords)
	return c
}

// derive returns a new context node whose coordinates start as a copy of
// ctx's. A nil ctx is treated as context.Background.
func derive(ctx context.Context) *valueCtx {
	if ctx == nil {
		ctx = context.Background()
	}
	n := &valueCtx{Context: ctx}
	if c := from(ctx); c != nil {
		n.c = *c
	}
	return n
}

// WithCorrelationID returns a context carrying the correlation id. A nil
// ctx is treated as context.Background.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	n := derive(ctx)
	n.c.correlationID = id
	return n
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
	n := derive(ctx)
	n.c.operation = op
	return n
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
	n := derive(ctx)
	n.c.entityKind, n.c.entityID = kind, id
	return n
}

// Entity returns the context's entity kind and id, or "", "".
func Entity(ctx context.Context) (kind, id string) {
	if c := from(ctx); c != nil {
		return c.entityKind, c.entityID
	}
	return "", ""
}

// With returns a context carrying attrs in addition to those already there.
// The Handler adds them to every record logged with the context, redacted
// like the record's own attributes. With no attrs it returns ctx (or
// context.Background for a nil ctx).
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(attrs) == 0 {
		return ctx
	}
	var n *valueCtx
	total := len(Attrs(ctx)) + len(attrs)
	if total <= len(valueCtxAttrs{}.buf) {
		// Few attrs: the node and its attr list in one allocation.
		na := &valueCtxAttrs{}
		n = &na.valueCtx
		n.Context = ctx
		if c := from(ctx); c != nil {
			n.c = *c
		}
		n.c.attrs = append(na.buf[:0:total], n.c.attrs...)
	} else {
		n = derive(ctx)
		n.c.attrs = append(make([]slog.Attr, 0, total), n.c.attrs...)
	}
	n.c.attrs = append(n.c.attrs, attrs...)
	return n
}

// valueCtxAttrs is a context node with room for a few attrs, so With
// costs a single allocation in the common case.
type valueCtxAttrs struct {
	valueCtx
	buf [4]slog.Attr
}

// Attrs returns the free attributes added with With. The slice must not be modified.
func Attrs(ctx context.Context) []slog.Attr {
	if c := from(ctx); c != nil {
		return c.attrs
	}
	return nil
}
