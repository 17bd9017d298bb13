package logctx_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/sadpath/sadpath/logctx"
	"go.opentelemetry.io/otel/trace"
)

// withoutTime drops the time so the output is stable.
func withoutTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}

// Every line logged with a context carries that context's coordinates:
// correlation id, operation, entity, the attributes added with With and,
// when a span is active, the otel trace and span ids.
func ExampleHandler() {
	h, err := logctx.NewHandler(logctx.HandlerConfig{
		Next: slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: withoutTime}),
	})
	if err != nil {
		panic(err)
	}
	log := slog.New(h)

	ctx := logctx.WithCorrelationID(context.Background(), "4bf92f3577b34da6a3ce929d0e0e4736")
	ctx = logctx.WithOperation(ctx, "payments.capture")
	ctx = logctx.WithEntity(ctx, "payment", "pay_123")
	ctx = logctx.With(ctx, slog.String(logctx.KeyDependency, "acquirer"))

	// A span from any otel tracer; built by hand here to stay SDK-free.
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))

	log.InfoContext(ctx, "payment captured", slog.Int("amount", 1250), slog.String("currency", "EUR"))
	// Output:
	// {"level":"INFO","msg":"payment captured","amount":1250,"currency":"EUR","correlation_id":"4bf92f3577b34da6a3ce929d0e0e4736","operation":"payments.capture","entity_kind":"payment","entity_id":"pay_123","dependency":"acquirer","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}
}

// Coordinates stay at the top level when the logger has open groups, so
// queries on correlation_id work for every line.
func ExampleHandler_groups() {
	h, _ := logctx.NewHandler(logctx.HandlerConfig{
		Next: slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: withoutTime}),
	})
	log := slog.New(h).WithGroup("http").With("method", "POST")

	ctx := logctx.WithCorrelationID(context.Background(), "req-7")
	log.InfoContext(ctx, "request", "status", 201)
	// Output:
	// {"level":"INFO","msg":"request","http":{"method":"POST","status":201},"correlation_id":"req-7"}
}

// Decision logs what the system decided and why, uniformly.
func ExampleDecision() {
	h, _ := logctx.NewHandler(logctx.HandlerConfig{
		Next: slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: withoutTime}),
	})
	log := slog.New(h)
	ctx := logctx.WithOperation(logctx.WithCorrelationID(context.Background(), "req-8"), "payments.create")

	logctx.Decision(ctx, log, slog.LevelInfo, "replayed stored response", "request already completed",
		slog.String(logctx.KeyState, "completed"))
	// Output:
	// {"level":"INFO","msg":"replayed stored response","decision":"replayed stored response","reason":"request already completed","state":"completed","correlation_id":"req-8","operation":"payments.create"}
}
