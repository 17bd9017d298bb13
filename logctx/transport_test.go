package logctx

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func captureTransport(t *testing.T, cfg TransportConfig) (*Transport, *http.Request) {
	t.Helper()
	var sent http.Request
	cfg.Base = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = *r
		return &http.Response{StatusCode: 204, Body: http.NoBody, Request: r}, nil
	})
	tr, err := NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, &sent
}

func spanCtx(ctx context.Context) context.Context {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
}

func TestTransportPropagates(t *testing.T) {
	tr, sent := captureTransport(t, TransportConfig{Propagator: propagation.TraceContext{}})
	ctx := spanCtx(WithCorrelationID(context.Background(), "corr-7"))
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://example.invalid/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got := sent.Header.Get(HeaderCorrelationID); got != "corr-7" {
		t.Errorf("correlation header = %q", got)
	}
	if got := sent.Header.Get("Traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent = %q", got)
	}
	if len(req.Header) != 0 {
		t.Errorf("caller's request modified: %v", req.Header)
	}
}

func TestTransportKeepsCallerHeaderAndSkipsUnsafe(t *testing.T) {
	tr, sent := captureTransport(t, TransportConfig{NoOtel: true, Header: "x-request-id"})
	ctx := WithCorrelationID(context.Background(), "from-ctx")
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://example.invalid/", nil)
	req.Header.Set("X-Request-Id", "explicit")
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if got := sent.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "explicit" {
		t.Errorf("header = %v", got)
	}

	ctx = WithCorrelationID(context.Background(), "bad\r\nid")
	req, _ = http.NewRequestWithContext(ctx, "GET", "http://example.invalid/", nil)
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if sent.Header.Get("X-Request-Id") != "" {
		t.Errorf("unsafe id sent: %q", sent.Header.Get("X-Request-Id"))
	}
	if sent.Header == nil {
		t.Log("nil header is fine for the base transport")
	}
}

func TestTransportNoIDNoOtelPassesThrough(t *testing.T) {
	tr, sent := captureTransport(t, TransportConfig{NoOtel: true})
	req, _ := http.NewRequest("GET", "http://example.invalid/", nil)
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if len(sent.Header) != 0 {
		t.Errorf("headers added: %v", sent.Header)
	}
}

func TestTransportGlobalPropagatorDefault(t *testing.T) {
	// With no Propagator the global one is used; by default it is a no-op,
	// so only the correlation id is added.
	tr, sent := captureTransport(t, TransportConfig{})
	ctx := spanCtx(WithCorrelationID(context.Background(), "g-1"))
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://example.invalid/", nil)
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if sent.Header.Get(HeaderCorrelationID) != "g-1" {
		t.Errorf("headers: %v", sent.Header)
	}
}

func TestTransportBaseError(t *testing.T) {
	want := errors.New("dial refused")
	tr, err := NewTransport(TransportConfig{Base: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, want })})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(WithCorrelationID(context.Background(), "x"), "GET", "http://example.invalid/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, want) {
		t.Errorf("err = %v", err)
	}
}

func TestNewTransportConfigError(t *testing.T) {
	_, err := NewTransport(TransportConfig{Header: "bad header"})
	if !errors.Is(err, contract.ErrInvalid) || !strings.Contains(err.Error(), "TransportConfig.Header") {
		t.Errorf("err = %v", err)
	}
}

// A traceparent the caller set is kept, as the correlation id is; without
// one, the context's span is propagated.
func TestTransportKeepsCallerTraceparent(t *testing.T) {
	var sent http.Header
	tr, err := NewTransport(TransportConfig{
		Propagator: propagation.TraceContext{},
		Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent = r.Header.Clone()
			return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 1}))
	const mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, c := range []struct{ set, want string }{
		{mine, mine},
		{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://x/", nil)
		if c.set != "" {
			req.Header.Set("Traceparent", c.set)
		}
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if got := sent.Get("Traceparent"); got != c.want {
			t.Errorf("caller set %q: sent %q, want %q", c.set, got, c.want)
		}
		if c.set == "" && req.Header.Get("Traceparent") != "" {
			t.Error("the caller's request was modified")
		}
	}
}
