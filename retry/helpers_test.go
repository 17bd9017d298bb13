package retry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	mnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tnoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/retry"
)

func mustPolicy(t testing.TB, cfg retry.Config) *retry.Policy {
	t.Helper()
	p, err := retry.New(cfg)
	if err != nil {
		t.Fatalf("retry.New: %v", err)
	}
	return p
}

func unavailable() error { return contract.New(contract.KindUnavailable, "dep.call", "down") }

// logSink collects JSON log records.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// logger logs JSON through a logctx.Handler, so the context's coordinates
// are on every record.
func (s *logSink) logger() *slog.Logger {
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug})})
	if err != nil {
		panic(err)
	}
	return slog.New(h)
}

func (s *logSink) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.buf.String()), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// fakeMeterProvider counts Int64Counter additions by instrument name.
type fakeMeterProvider struct {
	mnoop.MeterProvider
	mu     sync.Mutex
	counts map[string]int64
	attrs  map[string][]attribute.Set
}

func newFakeMeterProvider() *fakeMeterProvider {
	return &fakeMeterProvider{counts: map[string]int64{}, attrs: map[string][]attribute.Set{}}
}

func (p *fakeMeterProvider) Meter(string, ...metric.MeterOption) metric.Meter {
	return fakeMeter{p: p}
}

func (p *fakeMeterProvider) count(name string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[name]
}

type fakeMeter struct {
	mnoop.Meter
	p *fakeMeterProvider
}

func (m fakeMeter) Int64Counter(name string, _ ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	return fakeCounter{name: name, p: m.p}, nil
}

type fakeCounter struct {
	mnoop.Int64Counter
	name string
	p    *fakeMeterProvider
}

func (c fakeCounter) Add(_ context.Context, n int64, opts ...metric.AddOption) {
	cfg := metric.NewAddConfig(opts)
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	c.p.counts[c.name] += n
	c.p.attrs[c.name] = append(c.p.attrs[c.name], cfg.Attributes())
}

// recordingSpan records events and attributes.
type recordingSpan struct {
	tnoop.Span
	mu     sync.Mutex
	events []string
	eattrs [][]attribute.KeyValue
	attrs  []attribute.KeyValue
}

func (s *recordingSpan) IsRecording() bool { return true }

func (s *recordingSpan) AddEvent(name string, opts ...trace.EventOption) {
	cfg := trace.NewEventConfig(opts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, name)
	s.eattrs = append(s.eattrs, cfg.Attributes())
}

func (s *recordingSpan) SetAttributes(kv ...attribute.KeyValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attrs = append(s.attrs, kv...)
}

func (s *recordingSpan) attr(key string) (attribute.Value, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, kv := range s.attrs {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}
