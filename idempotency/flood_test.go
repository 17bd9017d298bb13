package idempotency_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/idempotency/storetest"
	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// Calls at 10,000 a second for 20 virtual seconds.
const (
	floodRate     = 10_000
	floodSeconds  = 20
	floodCalls    = floodRate * floodSeconds
	floodMaxLines = (floodSeconds/10 + 1) * lograte.Burst
)

// TestLogFloodStoreDown: with the store unreachable every call fails
// closed; the store_error decision is logged a few times per 10s with the
// call's coordinates, not once per call, and its end once when the store
// answers again.
func TestLogFloodStoreDown(t *testing.T) {
	log, h := logcount.New()
	clk := storetest.NewFakeClock(epoch)
	store := &faultyStore{Store: newMemory(t, idempotency.MemoryConfig{Clock: clk})}
	store.set(&store.claimErr, func() error { return errDown })
	ex, err := idempotency.New(idempotency.Config{Store: store, Clock: clk, Logger: log, Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := logctx.WithOperation(logctx.WithCorrelationID(context.Background(), "req-1"), "payments.create")
	work := func(context.Context) (int, error) { return 1, nil }
	for i := range floodCalls {
		if _, err := idempotency.Do(ctx, ex, idempotency.Key{Scope: "m", Key: fmt.Sprint("k", i)}, "fp", work); err == nil {
			t.Fatal("ran with the store down, failing closed")
		}
		clk.Advance(time.Second / floodRate)
	}
	lines := h.Decision(idempotency.OutcomeStoreError)
	if n := h.AtLeastInfo(); n > floodMaxLines || len(lines) == 0 {
		t.Fatalf("%d lines at Info and above (%d store_error) for %d calls failing closed in %ds, want 1 to %d", n, len(lines), floodCalls, floodSeconds, floodMaxLines)
	}
	for _, e := range lines {
		if e.Level != slog.LevelError || e.String(logctx.KeyCorrelationID) != "req-1" || e.String(logctx.KeyOperation) != "payments.create" ||
			!e.Has(idempotency.KeyHash) || e.String("error") == "" {
			t.Errorf("line without its coordinates: %s %v", e.Level, e.Attrs)
		}
	}
	if n := h.Count(slog.LevelDebug); n != floodCalls-len(lines) {
		t.Errorf("%d lines at Debug, want the %d failures not logged at Error", n, floodCalls-len(lines))
	}

	store.set(&store.claimErr, nil)
	clk.Advance(10 * time.Second)
	h.Reset()
	for i := range 3 {
		if _, err := idempotency.Do(ctx, ex, idempotency.Key{Scope: "m", Key: fmt.Sprint("back", i)}, "fp", work); err != nil {
			t.Fatal(err)
		}
	}
	ends := h.Decision(idempotency.OutcomeStoreError + " ended")
	if len(ends) != 1 || h.AtLeastInfo() != 1 || ends[0].Level != slog.LevelInfo || ends[0].String(logctx.KeyCorrelationID) != "req-1" {
		t.Fatalf("after the store came back: %d lines, %d ends (%v), want one end at Info with coordinates", h.AtLeastInfo(), len(ends), ends)
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != floodCalls {
		t.Errorf("lines account for %d failures, want %d", got, floodCalls)
	}
}

// TestLogFloodCompleteFails: a store that claims but cannot record results
// (a full disk, a read-only replica after a failover) is logged a few times
// per 10s, not once per call.
func TestLogFloodCompleteFails(t *testing.T) {
	log, h := logcount.New()
	clk := storetest.NewFakeClock(epoch)
	// Room for every call's claim, which stays in progress until its lease ends.
	store := &faultyStore{Store: newMemory(t, idempotency.MemoryConfig{Clock: clk, MaxEntries: 2 * floodCalls, MaxBytes: 1 << 30})}
	store.set(&store.compErr, func() error { return errDown })
	ex, err := idempotency.New(idempotency.Config{Store: store, Clock: clk, Logger: log, Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := logctx.WithCorrelationID(context.Background(), "req-2")
	work := func(context.Context) (int, error) { return 1, nil }
	for i := range floodCalls {
		_, _ = idempotency.Do(ctx, ex, idempotency.Key{Scope: "m", Key: fmt.Sprint("k", i)}, "fp", work)
		clk.Advance(time.Second / floodRate)
	}
	lines := h.Decision(idempotency.OutcomeStoreError)
	if n := h.AtLeastInfo(); n > floodMaxLines || len(lines) == 0 {
		t.Fatalf("%d lines at Info and above (%d store_error) for %d results not recorded, want 1 to %d", n, len(lines), floodCalls, floodMaxLines)
	}
	if got := lines[0].String(logctx.KeyReason); got != "ran but could not record the result" {
		t.Errorf("reason %q", got)
	}
}
