package breaker

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/sadpath/sadpath/logctx"
)

// ScopeName is the instrumentation scope of the breaker's meter.
const ScopeName = "github.com/sadpath/sadpath/breaker"

// Metric names. Every instrument carries the attribute "breaker.name".
const (
	MetricState       = "sadpath.breaker.state"       // gauge: 0 closed, 1 half-open, 2 open, 3 forced open, 4 forced closed
	MetricCalls       = "sadpath.breaker.calls"       // counter, attribute "outcome": success, failure, ignored, slow, rejected
	MetricTransitions = "sadpath.breaker.transitions" // counter, attributes "from", "to"
)

type instruments struct {
	calls       metric.Int64Counter
	transitions metric.Int64Counter
	byOutcome   [Rejected + 1][]metric.AddOption // prebuilt: Add allocates nothing
	nameAttr    attribute.KeyValue
	reg         metric.Registration
	closed      atomic.Bool
}

func newInstruments(b *Breaker, mp metric.MeterProvider) (*instruments, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	in := &instruments{nameAttr: attribute.String("breaker.name", b.name)}
	var err error
	if in.calls, err = m.Int64Counter(MetricCalls, metric.WithUnit("{call}"),
		metric.WithDescription("Calls through the circuit breaker by outcome.")); err != nil {
		return nil, err
	}
	if in.transitions, err = m.Int64Counter(MetricTransitions, metric.WithUnit("{transition}"),
		metric.WithDescription("Circuit breaker state changes.")); err != nil {
		return nil, err
	}
	gauge, err := m.Int64ObservableGauge(MetricState,
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 forced open, 4 forced closed."))
	if err != nil {
		return nil, err
	}
	stateSet := metric.WithAttributeSet(attribute.NewSet(in.nameAttr))
	if in.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(gauge, int64(b.State()), stateSet)
		return nil
	}, gauge); err != nil {
		return nil, err
	}
	for o := Success; o <= Rejected; o++ {
		set := attribute.NewSet(in.nameAttr, attribute.String("outcome", o.String()))
		in.byOutcome[o] = []metric.AddOption{metric.WithAttributeSet(set)}
	}
	return in, nil
}

// count counts one call outcome in metrics.
func (b *Breaker) count(ctx context.Context, o Outcome) {
	if b.inst != nil {
		b.inst.calls.Add(ctx, 1, b.inst.byOutcome[o]...)
	}
}

// record counts one call outcome in metrics and tells Config.OnCall.
func (b *Breaker) record(ctx context.Context, o Outcome) {
	b.count(ctx, o)
	if o != Rejected && b.cfg.OnCall != nil {
		b.cfg.OnCall(ctx, o)
	}
}

// emit reports one transition: a decision log record, the transitions
// counter, and Config.OnStateChange, all with ctx.
func (b *Breaker) emit(ctx context.Context, t Transition) {
	if ctx == nil {
		ctx = context.Background()
	}
	if b.inst != nil {
		b.inst.transitions.Add(ctx, 1, metric.WithAttributes(b.inst.nameAttr,
			attribute.String("from", t.From.String()), attribute.String("to", t.To.String())))
	}
	if l := b.cfg.Logger; l != nil {
		level := slog.LevelInfo
		if t.To == StateOpen || t.To == StateForcedOpen {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String(logctx.KeyDependency, t.Name),
			slog.String("from", t.From.String()),
			slog.String(logctx.KeyState, t.To.String()),
		}
		if t.To == StateOpen {
			attrs = append(attrs, slog.Duration("open_for", t.OpenFor))
		}
		if t.Counts != (Counts{}) {
			attrs = append(attrs, slog.Group("counts",
				slog.Uint64("requests", uint64(t.Counts.Requests)),
				slog.Uint64("successes", uint64(t.Counts.Successes)),
				slog.Uint64("failures", uint64(t.Counts.Failures)),
				slog.Uint64("ignored", uint64(t.Counts.Ignored))))
		}
		logctx.Decision(ctx, l, level, decisionText(t.To), t.Reason, attrs...)
	}
	if b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(ctx, t)
	}
}

func decisionText(s State) string {
	switch s {
	case StateOpen:
		return "breaker opened: failing fast"
	case StateHalfOpen:
		return "breaker half-open: probing"
	case StateClosed:
		return "breaker closed: dependency recovered"
	case StateForcedOpen:
		return "breaker forced open: failing fast"
	case StateForcedClosed:
		return "breaker forced closed: not protecting"
	}
	return "breaker state " + strconv.Itoa(int(s))
}
