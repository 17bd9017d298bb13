package limit

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/limit/limittest"
	"github.com/sadpath/sadpath/logctx"
)

// Refusals at 10,000 a second for 20 virtual seconds.
const (
	floodRate     = 10_000
	floodSeconds  = 20
	floodCalls    = floodRate * floodSeconds
	floodMaxLines = (floodSeconds/10 + 1) * lograte.Burst
)

// checkFlood asserts what an operator reads after floodCalls refusals: a
// few lines of decision at Info with the call's coordinates, the rest at
// Debug, and, after 10s without a refusal, end once on the next admitted
// call — then that a new refusal is logged at once.
func checkFlood(t *testing.T, h *logcount.Handler, decision, end, dep string, admit, refuse func() error, advance func(time.Duration)) {
	t.Helper()
	lines := h.Decision(decision)
	if n := h.AtLeastInfo(); n > floodMaxLines || len(lines) == 0 {
		t.Fatalf("%d lines at Info and above (%d %s) for %d refusals in %ds, want 1 to %d", n, len(lines), decision, floodCalls, floodSeconds, floodMaxLines)
	}
	for _, e := range lines {
		if e.String(logctx.KeyCorrelationID) != "req-1" || e.String(logctx.KeyDependency) != dep {
			t.Errorf("line without its coordinates: %v", e.Attrs)
		}
	}
	if n := h.Count(slog.LevelDebug); n != floodCalls-len(lines) {
		t.Errorf("%d lines at Debug, want the %d refusals not logged at Info", n, floodCalls-len(lines))
	}
	advance(10 * time.Second)
	for range 3 {
		if err := admit(); err != nil {
			t.Fatal(err)
		}
	}
	ends := h.Decision(end)
	if len(ends) != 1 || ends[0].Level != slog.LevelInfo || ends[0].String(logctx.KeyCorrelationID) != "req-1" || ends[0].String(logctx.KeyDependency) != dep {
		t.Fatalf("%d %s lines (%v), want one at Info with coordinates", len(ends), end, ends)
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != floodCalls {
		t.Errorf("lines account for %d refusals, want %d", got, floodCalls)
	}
	h.Reset()
	if refuse() == nil {
		t.Fatal("not refused")
	}
	if es := h.Decision(decision); len(es) != 1 || es[0].Level != slog.LevelInfo {
		t.Errorf("first refusal after the end: %v, want one Info line", es)
	}
}

// TestLogFloodBulkhead: a bulkhead full for as long as its dependency is
// slow refuses every call; it logs a few refusals per 10s, not each one.
func TestLogFloodBulkhead(t *testing.T) {
	log, h := logcount.New()
	clk := limittest.NewClock(epoch)
	b, err := NewBulkhead(BulkheadConfig{Name: "acquirer", MaxConcurrent: 1, Clock: clk, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	if err := b.Acquire(ctx); err != nil { // the slow call holding the only slot
		t.Fatal(err)
	}
	for range floodCalls {
		if b.Acquire(ctx) == nil {
			t.Fatal("acquired a slot of a full bulkhead")
		}
		clk.Advance(time.Second / floodRate)
	}
	b.Release()
	admit := func() error {
		err := b.Acquire(ctx)
		if err == nil {
			b.Release()
		}
		return err
	}
	refuse := func() error {
		if err := b.Acquire(ctx); err != nil {
			return err
		}
		defer b.Release()
		return b.Acquire(ctx)
	}
	checkFlood(t, h, "bulkhead.rejected", "bulkhead.rejections_ended", "acquirer", admit, refuse, clk.Advance)
}

// TestLogFloodRateLimiter: a KeyedLimiter refusing a client that keeps
// calling far above its rate logs a few refusals per 10s, not each one.
func TestLogFloodRateLimiter(t *testing.T) {
	log, h := logcount.New()
	clk := limittest.NewClock(epoch)
	k, err := NewKeyedLimiter(KeyedConfig{Limiter: LimiterConfig{Name: "api", Rate: 1e-3, Burst: 1, Clock: clk, Logger: log}, IdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	if err := k.Take(ctx, "tenant-a"); err != nil { // its one token
		t.Fatal(err)
	}
	for range floodCalls {
		if k.Take(ctx, "tenant-a") == nil {
			t.Fatal("admitted above the rate")
		}
		clk.Advance(time.Second / floodRate)
	}
	others := 0
	admit := func() error { others++; return k.Take(ctx, fmt.Sprint("tenant-", others)) }
	refuse := func() error { return k.Take(ctx, "tenant-a") }
	checkFlood(t, h, "ratelimit.rejected", "ratelimit.rejections_ended", "api", admit, refuse, clk.Advance)
}
