package ordering_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/ordering"
)

// TestLogFloodGap: an event that never arrives (its producer is down)
// leaves a gap every later event of the subject is rejected at: at 10,000
// events a second the Guard logs a few rejections per 10s, each with its
// event's subject and sequence, not one per event; once the missing event
// arrives and is applied, the end once.
func TestLogFloodGap(t *testing.T) {
	const rate, seconds = 10_000, 20
	const events = rate * seconds
	log, h := logcount.New()
	clk := newFakeClock()
	g := mustGuard(t, ordering.Config{Gap: ordering.GapReject, Clock: clk, Logger: log})
	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	var r recorder
	for i := range events {
		_, err := g.Process(ctx, ev("acct-1", uint64(2+i%100)), r.apply, nil)
		if !errors.Is(err, ordering.ErrGap) {
			t.Fatalf("event past a gap: %v", err)
		}
		clk.Advance(time.Second / rate)
	}
	lines := h.Decision("gap: event rejected")
	if n, max := h.AtLeastInfo(), (seconds/10+1)*lograte.Burst; n > max || len(lines) == 0 {
		t.Fatalf("%d lines at Info and above (%d rejections) for %d events in %ds, want 1 to %d", n, len(lines), events, seconds, max)
	}
	for _, e := range lines {
		if e.Level != slog.LevelWarn || e.String(logctx.KeyCorrelationID) != "req-1" || e.String("subject") != "acct-1" || !e.Has("sequence") {
			t.Errorf("line without its coordinates: %s %v", e.Level, e.Attrs)
		}
	}
	if n := h.Count(slog.LevelDebug); n != events-len(lines) {
		t.Errorf("%d lines at Debug, want the %d rejections not logged at Warn", n, events-len(lines))
	}

	clk.Advance(10 * time.Second)
	h.Reset()
	if _, err := g.Process(ctx, ev("acct-1", 1), r.apply, nil); err != nil {
		t.Fatal(err)
	}
	ends := h.Decision("gap rejections ended")
	if len(ends) != 1 || h.AtLeastInfo() != 1 || ends[0].Level != slog.LevelInfo {
		t.Fatalf("after the missing event: %d lines, %d ends, want one end at Info", h.AtLeastInfo(), len(ends))
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != events {
		t.Errorf("lines account for %d rejections, want %d", got, events)
	}
}

// downState is a RedeliveryState whose database is down: every call fails
// before deciding anything, Redelivering included.
type downState struct {
	*sharedState
	down bool
}

var errDown = errors.New("connection refused")

func (s *downState) AdvanceRedelivery(ctx context.Context, subject string, fn ordering.RedeliveryFunc) error {
	if s.down {
		return errDown
	}
	return s.sharedState.AdvanceRedelivery(ctx, subject, fn)
}

func (s *downState) Redelivering(ctx context.Context, subject string, r ordering.Redelivery) error {
	if s.down {
		return errDown
	}
	return s.sharedState.Redelivering(ctx, subject, r)
}

// TestLogFloodRedeliveryNotRecorded: under GapHold with TimeoutSkip on a
// RedeliveryState (ordering/pgstate) that is down, every event fails in
// the State, and the Guard records its redelivery for the other processes
// (from Process, and from Retrying, which a consumer calls for each):
// that failed too, and was logged at Warn every time, two lines per event
// at 10,000 events a second. It is paced like the Guard's other State
// failures, and its end logged once when an event is applied again.
func TestLogFloodRedeliveryNotRecorded(t *testing.T) {
	const rate, seconds = 10_000, 20
	const events = rate * seconds
	log, h := logcount.New()
	clk := newFakeClock()
	st := &downState{sharedState: newSharedState(t), down: true}
	g := mustGuard(t, ordering.Config{State: st, Gap: ordering.GapHold, OnTimeout: ordering.TimeoutSkip, Clock: clk, Logger: log})
	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	var r recorder
	for i := range events {
		e := ev("acct-1", uint64(1+i%100))
		if _, err := g.Process(ctx, e, r.apply, nil); !errors.Is(err, errDown) {
			t.Fatalf("event on a State that is down: %v", err)
		}
		g.Retrying(ctx, e, time.Second)
		clk.Advance(time.Second / rate)
	}
	lines := h.Decision("redelivery not recorded")
	if n, max := h.AtLeastInfo(), (seconds/10+1)*lograte.Burst; n > max || len(lines) == 0 {
		t.Fatalf("%d lines at Info and above (%d 'redelivery not recorded') for %d events in %ds, want 1 to %d", n, len(lines), events, seconds, max)
	}
	for _, e := range lines {
		if e.Level != slog.LevelWarn || e.String(logctx.KeyCorrelationID) != "req-1" || e.String("subject") != "acct-1" {
			t.Errorf("line without its coordinates: %s %v", e.Level, e.Attrs)
		}
	}

	st.down = false
	clk.Advance(10 * time.Second)
	h.Reset()
	if _, err := g.Process(ctx, ev("acct-1", 1), r.apply, nil); err != nil {
		t.Fatal(err)
	}
	ends := h.Decision("redeliveries recorded again")
	if len(ends) != 1 || h.AtLeastInfo() != 1 || ends[0].Level != slog.LevelInfo {
		t.Fatalf("after the State is back: %d lines, %d ends, want one end at Info", h.AtLeastInfo(), len(ends))
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != 2*events {
		t.Errorf("lines account for %d failures, want %d", got, 2*events)
	}
}
