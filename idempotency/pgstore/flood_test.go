package pgstore

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// TestLogFloodTableMissing: with its table gone (dropped, or a failover to
// a database without it) every call fails; the store logs a few failures
// per 10s with the call's coordinates, not one per call, and, once the
// table is back, the end once. (1,000 calls a virtual second: each is a
// real round trip.)
func TestLogFloodTableMissing(t *testing.T) {
	const rate, seconds = 1_000, 20
	const calls = rate * seconds
	log, h := logcount.New()
	p, _ := newPool(t, "pgstore-flood", nil)
	s, err := New(Config{Pool: p, Schema: testSchema, Table: newTable(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Exec(context.Background(), "DROP TABLE IF EXISTS "+s.qualified) })
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s.clock = clk
	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	req := func(i int) idempotency.ClaimRequest {
		return idempotency.ClaimRequest{Key: idempotency.Key{Scope: "m", Key: fmt.Sprint("k", i)}, Fingerprint: "fp", Lease: time.Second, Retention: time.Minute}
	}
	for i := range calls {
		if _, err := s.Claim(ctx, req(i)); err == nil {
			t.Fatal("claimed without a table")
		}
		clk.t = clk.t.Add(time.Second / rate)
	}
	lines := h.Decision("idempotency store call failed")
	if n, max := h.AtLeastInfo(), (seconds/10+1)*lograte.Burst; n > max || len(lines) == 0 {
		t.Fatalf("%d lines at Info and above (%d failures) for %d failed calls in %ds, want 1 to %d", n, len(lines), calls, seconds, max)
	}
	for _, e := range lines {
		if e.Level != slog.LevelWarn || e.String(logctx.KeyCorrelationID) != "req-1" || e.String(logctx.KeyDependency) != "postgresql" || e.String("store_op") != "pgstore.claim" {
			t.Errorf("line without its coordinates: %s %v", e.Level, e.Attrs)
		}
	}
	if n := h.Count(slog.LevelDebug); n != calls-len(lines) {
		t.Errorf("%d lines at Debug, want the %d failures not logged at Warn", n, calls-len(lines))
	}

	s.log = nil // the migration's own lines are not under test
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.log = log
	clk.t = clk.t.Add(10 * time.Second)
	h.Reset()
	for i := range 3 {
		if _, err := s.Claim(ctx, req(calls+i)); err != nil {
			t.Fatal(err)
		}
	}
	ends := h.Decision("idempotency store calls succeed again")
	if len(ends) != 1 || h.AtLeastInfo() != 1 || ends[0].Level != slog.LevelInfo || ends[0].String(logctx.KeyDependency) != "postgresql" {
		t.Fatalf("after the table came back: %d lines, %d ends, want one end at Info", h.AtLeastInfo(), len(ends))
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != calls {
		t.Errorf("lines account for %d failures, want %d", got, calls)
	}
}
