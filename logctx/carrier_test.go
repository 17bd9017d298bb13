package logctx

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/sadpath/sadpath/contract"
	"go.opentelemetry.io/otel/propagation"
)

func TestInjectExtractCarriers(t *testing.T) {
	ctx := WithCorrelationID(context.Background(), "msg-1")
	carriers := map[string]func() Carrier{
		"http.Header":   func() Carrier { return http.Header{} },
		"MapHeader":     func() Carrier { return MapHeader{} },
		"MapCarrier":    func() Carrier { return propagation.MapCarrier{} },
		"HeaderCarrier": func() Carrier { return propagation.HeaderCarrier(http.Header{}) },
	}
	for name, mk := range carriers {
		t.Run(name, func(t *testing.T) {
			c := mk()
			Inject(ctx, c)
			if c.Get(HeaderCorrelationID) != "msg-1" {
				t.Fatalf("not injected")
			}
			got, err := Extract(context.Background(), c)
			if err != nil || CorrelationID(got) != "msg-1" {
				t.Errorf("Extract = %q, %v", CorrelationID(got), err)
			}
		})
	}
}

func TestExtractRules(t *testing.T) {
	base := WithOperation(context.Background(), "consume")
	// Absent: unchanged, no error.
	got, err := Extract(base, MapHeader{})
	if err != nil || got != base {
		t.Errorf("absent: %v %v", got, err)
	}
	// Invalid: unchanged, invalid error.
	got, err = Extract(base, MapHeader{HeaderCorrelationID: {"bad id\n"}})
	if !errors.Is(err, contract.ErrInvalid) || got != base {
		t.Errorf("invalid: %v %v", got, err)
	}
	// Nil carriers and contexts do not panic.
	if got, err := Extract(nilCtx, nil); err != nil || got == nil {
		t.Errorf("nil: %v %v", got, err)
	}
	Inject(WithCorrelationID(context.Background(), "x"), MapHeader(nil))
	Inject(WithCorrelationID(context.Background(), "x"), http.Header(nil))
	Inject(WithCorrelationID(context.Background(), "x"), nil)
	Inject(WithCorrelationID(context.Background(), "x"), propagation.MapCarrier(nil))
	Inject(WithCorrelationID(context.Background(), "x"), propagation.HeaderCarrier(nil))
	// An unsafe id in the context is never written.
	h := MapHeader{}
	Inject(WithCorrelationID(context.Background(), "a\"b"), h)
	if len(h) != 0 {
		t.Errorf("unsafe id injected: %v", h)
	}
}

func TestEventHelpers(t *testing.T) {
	ctx := WithCorrelationID(context.Background(), "evt-corr")
	e := &contract.Event{ID: "1", Source: "/payments", Type: "payment.captured.v1"}
	InjectEvent(ctx, e)
	if e.CorrelationID != "evt-corr" {
		t.Fatalf("CorrelationID = %q", e.CorrelationID)
	}
	// An id already on the event is kept.
	InjectEvent(WithCorrelationID(context.Background(), "other"), e)
	if e.CorrelationID != "evt-corr" {
		t.Errorf("overwritten: %q", e.CorrelationID)
	}
	got, err := ExtractEvent(context.Background(), e)
	if err != nil || CorrelationID(got) != "evt-corr" {
		t.Errorf("ExtractEvent = %q, %v", CorrelationID(got), err)
	}
	bad := &contract.Event{CorrelationID: "<script>"}
	if _, err := ExtractEvent(context.Background(), bad); !errors.Is(err, contract.ErrInvalid) {
		t.Errorf("bad: %v", err)
	}
	InjectEvent(ctx, nil)
	if got, err := ExtractEvent(ctx, nil); err != nil || got != ctx {
		t.Errorf("nil event: %v %v", got, err)
	}
}

func TestExtractSpellings(t *testing.T) {
	for _, k := range []string{"X-Correlation-ID", "X-Correlation-Id", "x-correlation-id"} {
		got, err := Extract(context.Background(), MapHeader{k: {"sp-1"}})
		if err != nil || CorrelationID(got) != "sp-1" {
			t.Errorf("%s: %q %v", k, CorrelationID(got), err)
		}
	}
}
