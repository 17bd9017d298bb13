package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/sadpath/sadpath/breaker"
	"github.com/sadpath/sadpath/contract"
)

// recorder is a minimal MeterProvider that sums counters by name and
// attributes and runs registered callbacks on demand.
type recorder struct {
	noop.MeterProvider
	mu        sync.Mutex
	sums      map[string]int64
	callbacks []metric.Callback
}

func (r *recorder) Meter(string, ...metric.MeterOption) metric.Meter { return &recMeter{r: r} }

type recMeter struct {
	noop.Meter
	r *recorder
}

func (m *recMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return &recCounter{name: name, r: m.r}, nil
}

func (m *recMeter) RegisterCallback(f metric.Callback, _ ...metric.Observable) (metric.Registration, error) {
	m.r.mu.Lock()
	m.r.callbacks = append(m.r.callbacks, f)
	m.r.mu.Unlock()
	return noop.Registration{}, nil
}

type recCounter struct {
	noop.Int64Counter
	name string
	r    *recorder
}

func (c *recCounter) Add(_ context.Context, v int64, opts ...metric.AddOption) {
	set := metric.NewAddConfig(opts).Attributes()
	key := c.name + "{" + set.Encoded(attribute.DefaultEncoder()) + "}"
	c.r.mu.Lock()
	c.r.sums[key] += v
	c.r.mu.Unlock()
}

type recObserver struct {
	embedded.Observer
	r *recorder
}

func (o recObserver) ObserveFloat64(metric.Float64Observable, float64, ...metric.ObserveOption) {}
func (o recObserver) ObserveInt64(_ metric.Int64Observable, v int64, opts ...metric.ObserveOption) {
	set := metric.NewObserveConfig(opts).Attributes()
	o.r.sums["state{"+set.Encoded(attribute.DefaultEncoder())+"}"] = v
}

func (r *recorder) collect() map[string]int64 {
	r.mu.Lock()
	cbs := r.callbacks
	r.mu.Unlock()
	for _, cb := range cbs {
		r.mu.Lock()
		_ = cb(context.Background(), recObserver{r: r})
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int64, len(r.sums))
	for k, v := range r.sums {
		out[k] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	rec := &recorder{sums: map[string]int64{}}
	clock := newClock()
	b, err := breaker.New(breaker.Config{Name: "pay", MeterProvider: rec, Clock: clock, MinCalls: 3, FailureRatio: 1,
		SlowCallThreshold: time.Second, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = b.Execute(ctx, func(context.Context) error { return nil })
	_ = b.Execute(ctx, func(context.Context) error { clock.Advance(2 * time.Second); return nil })
	_ = b.Execute(ctx, func(context.Context) error { return errDown })
	_ = b.Execute(ctx, func(context.Context) error { return context.Canceled })
	_ = b.Execute(ctx, func(context.Context) error { return errDown })
	m := rec.collect()
	want := map[string]int64{
		"sadpath.breaker.calls{breaker.name=pay,outcome=success}": 1,
		"sadpath.breaker.calls{breaker.name=pay,outcome=slow}":    1,
		"sadpath.breaker.calls{breaker.name=pay,outcome=failure}": 2,
		"sadpath.breaker.calls{breaker.name=pay,outcome=ignored}": 1,
		"state{breaker.name=pay}":                                 int64(breaker.StateClosed),
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, m[k], v, m)
		}
	}
	func() {
		defer func() { _ = recover() }()
		_ = b.Execute(ctx, func(context.Context) error { panic("boom") })
	}()
	if m := rec.collect(); m["sadpath.breaker.calls{breaker.name=pay,outcome=failure}"] != 3 {
		t.Errorf("a panic is not counted as a failure: %v", m)
	}
	b.Trip(ctx, time.Minute, "test")
	_ = b.Execute(ctx, func(context.Context) error { return nil })
	m = rec.collect()
	if m["sadpath.breaker.calls{breaker.name=pay,outcome=rejected}"] != 1 ||
		m["sadpath.breaker.transitions{breaker.name=pay,from=closed,to=open}"] != 1 ||
		m["state{breaker.name=pay}"] != int64(breaker.StateOpen) {
		t.Errorf("after trip: %v", m)
	}
}

// A Classify (or Transport Classify) that answers an outcome a call cannot
// have — Rejected, or a value past the constants — counts the call as a
// failure: no panic in the metrics, OnCall sees Failure, the breaker trips.
func TestClassifyOutOfRangeOutcomeIsFailure(t *testing.T) {
	for _, bad := range []breaker.Outcome{breaker.Rejected, breaker.Rejected + 1, 255} {
		t.Run(bad.String(), func(t *testing.T) {
			rec := &recorder{sums: map[string]int64{}}
			var seen []breaker.Outcome
			b, err := breaker.New(breaker.Config{Name: "pay", MeterProvider: rec, Clock: newClock(), MinCalls: 2, FailureRatio: 1,
				Window: time.Hour, Classify: func(error) breaker.Outcome { return bad },
				OnCall: func(_ context.Context, o breaker.Outcome) { seen = append(seen, o) }})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for range 2 {
				if err := b.Execute(ctx, func(context.Context) error { return errDown }); err != errDown {
					t.Fatalf("err = %v, want the call's", err)
				}
			}
			if fmt.Sprint(seen) != "[failure failure]" {
				t.Errorf("OnCall saw %v, want two failures", seen)
			}
			if s := b.State(); s != breaker.StateOpen {
				t.Errorf("state %v, want open", s)
			}
			m := rec.collect()
			if m["sadpath.breaker.calls{breaker.name=pay,outcome=failure}"] != 2 || m["sadpath.breaker.calls{breaker.name=pay,outcome=rejected}"] != 0 {
				t.Errorf("metrics %v, want two failures", m)
			}
			b.ForceClosed(ctx, "")
			_ = b.Execute(ctx, func(context.Context) error { return errDown })
			if m := rec.collect(); m["sadpath.breaker.calls{breaker.name=pay,outcome=failure}"] != 3 {
				t.Errorf("forced closed: metrics %v, want three failures", m)
			}
		})
	}
}

// failingProvider is a MeterProvider whose meters fail to create counters
// once ok calls to Int64Counter have succeeded (per provider).
type failingProvider struct {
	noop.MeterProvider
	mu sync.Mutex
	ok int
}

func (p *failingProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return &failingMeter{p: p}
}

type failingMeter struct {
	noop.Meter
	p *failingProvider
}

var errMeter = fmt.Errorf("meter backend refused the instrument")

func (m *failingMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	if m.p.ok == 0 {
		return nil, errMeter
	}
	m.p.ok--
	return m.Meter.Int64Counter(name, opts...)
}

// A MeterProvider that cannot create the instruments is refused by
// NewRegistry, as New refuses it; one that starts failing later does not make
// Registry.Get (and so Transport.RoundTrip) panic: the key gets a breaker
// that protects the dependency without metrics.
func TestRegistryWithAFailingMeterProvider(t *testing.T) {
	_, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{MeterProvider: &failingProvider{}}})
	if !errors.Is(err, errMeter) || !errors.Is(err, contract.ErrInternal) {
		t.Fatalf("NewRegistry with a failing MeterProvider: %v", err)
	}
	p := &failingProvider{ok: 1 << 20}
	reg, err := breaker.NewRegistry(breaker.RegistryConfig{Breaker: breaker.Config{MeterProvider: p, MinCalls: 2, FailureRatio: 1}})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ok = 0
	p.mu.Unlock()
	var b *breaker.Breaker
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Get panicked: %v", r)
			}
		}()
		b = reg.Get("api.example")
	}()
	if b.Name() != "api.example" || reg.Get("api.example") != b {
		t.Fatalf("breaker %q", b.Name())
	}
	for range 2 {
		_ = b.Execute(context.Background(), func(context.Context) error { return errDown })
	}
	if b.State() != breaker.StateOpen {
		t.Fatalf("state %v, want open", b.State())
	}
}
