package ordering_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

// TestHeldEventLinesCarryTheirOwnCorrelationID: a held event is released
// or rejected on the call of another event, or of Sweep. The Guard's line
// about it must carry its own correlation id (none when it has no valid
// one), never the id of the call that happened to decide it: searching the
// logs for an event's id finds its release, and another event's id does
// not find it.
func TestHeldEventLinesCarryTheirOwnCorrelationID(t *testing.T) {
	clk := newFakeClock()
	var buf bytes.Buffer
	h, err := logctx.NewHandler(logctx.HandlerConfig{Next: slog.NewJSONHandler(&buf, nil)})
	if err != nil {
		t.Fatal(err)
	}
	g := mustGuard(t, ordering.Config{Gap: ordering.GapHold, OnTimeout: ordering.TimeoutReject,
		HoldTimeout: time.Second, Clock: clk, Logger: slog.New(h)})
	var r recorder
	var s settled
	with := func(e *contract.Event, id string) *contract.Event { e.CorrelationID = id; return e }
	// ctx of the event's own call, as package consumer builds it.
	own := func(e *contract.Event) context.Context {
		ctx, _ := logctx.ExtractEvent(context.Background(), e)
		return ctx
	}
	process := func(e *contract.Event) {
		t.Helper()
		if _, err := g.Process(own(e), e, r.apply, s.settle); err != nil {
			t.Fatal(err)
		}
	}
	process(with(ev("a", 2), "corr-a-2"))
	process(with(ev("a", 3), "")) // a producer that sets none
	process(with(ev("a", 1), "corr-a-1"))
	process(with(ev("b", 2), "corr-b-2"))
	clk.Advance(time.Second)
	g.Sweep(logctx.WithCorrelationID(context.Background(), "sweeper"))
	if got := s.String(); got != "a/2=apply a/3=apply b/2=err:ordering.gap" {
		t.Fatalf("settled %q", got)
	}
	want := map[string]string{"held event released a/2": "corr-a-2", "held event released a/3": "", "gap: held event rejected b/2": "corr-b-2"}
	got := map[string]string{}
	for _, rec := range decisions(t, &buf) {
		d, _ := rec["decision"].(string)
		if d == "held event released" || d == "gap: held event rejected" {
			id, _ := rec[logctx.KeyCorrelationID].(string)
			got[fmt.Sprintf("%s %v/%v", d, rec["subject"], rec["sequence"])] = id
		}
	}
	if len(got) != len(want) {
		t.Fatalf("lines %v, want %v", got, want)
	}
	for k, id := range want {
		if got[k] != id {
			t.Fatalf("%q logged under correlation id %q, want %q (lines %v)", k, got[k], id, got)
		}
	}
}
