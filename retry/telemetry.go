package retry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const instrumentation = "github.com/sadpath/sadpath/retry"

// telemetry holds the counters of one Policy. It is only touched on the
// failure path, so the first-try success never reaches otel.
type telemetry struct {
	retries metric.Int64Counter
	giveUps metric.Int64Counter
}

func newTelemetry(mp metric.MeterProvider) *telemetry {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentation)
	t := &telemetry{}
	// Instrument errors are reported to the otel error handler and leave a
	// working no-op instrument: telemetry never fails a call.
	t.retries, _ = m.Int64Counter("sadpath.retry.retries",
		metric.WithDescription("Retries started, by dependency."),
		metric.WithUnit("{retry}"))
	t.giveUps, _ = m.Int64Counter("sadpath.retry.give_ups",
		metric.WithDescription("Calls that failed after retrying or were refused a retry, by dependency and reason."),
		metric.WithUnit("{call}"))
	return t
}

func (t *telemetry) retry(ctx context.Context, name string, attempt int, delay time.Duration, cause error) {
	if t == nil {
		return
	}
	dep := attribute.String("sadpath.retry.dependency", name)
	if t.retries != nil {
		t.retries.Add(ctx, 1, metric.WithAttributes(dep))
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(
			dep,
			attribute.Int("sadpath.retry.attempt", attempt),
			attribute.Int64("sadpath.retry.delay_ms", delay.Milliseconds()),
			attribute.String("error.type", errorType(cause)),
		))
	}
}

func (t *telemetry) giveUp(ctx context.Context, name string, e *Error) {
	if t == nil {
		return
	}
	dep := attribute.String("sadpath.retry.dependency", name)
	reason := attribute.String("sadpath.retry.stop_reason", e.Reason.String())
	if t.giveUps != nil {
		t.giveUps.Add(ctx, 1, metric.WithAttributes(dep, reason))
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry.give_up", trace.WithAttributes(
			dep, reason,
			attribute.Int("sadpath.retry.attempts", e.Attempts),
			attribute.String("error.type", errorType(e.Cause)),
		))
	}
}
