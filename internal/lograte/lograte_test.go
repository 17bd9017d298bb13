package lograte

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/logctx/logctxtest"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// TestLimiterPaces: 2,000 occurrences a second for a minute write Burst
// per Interval at their level, each with the count written at Debug since
// the previous; the end is written once, at Info,
// only after an Interval without an occurrence; the next occurrence is
// written at its level again.
func TestLimiterPaces(t *testing.T) {
	log, rec := logctxtest.NewLogger()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var l Limiter
	ctx := logctx.WithCorrelationID(context.Background(), "req-1")
	const perSecond, seconds = 2_000, 60
	for range perSecond * seconds {
		l.Log(ctx, log, clk, slog.LevelWarn, "gave up", "down", slog.String(logctx.KeyDependency, "acquirer"))
		l.LogEnd(ctx, log, clk, "recovered", EndReason) // interleaved successes: not quiet yet
		clk.t = clk.t.Add(time.Second / perSecond)
	}
	var warn, debug int
	var total int64
	for _, e := range rec.Entries() {
		switch e.Level {
		case slog.LevelWarn:
			warn++
			total++
			if e.String(logctx.KeyCorrelationID) != "req-1" || e.String(logctx.KeyDependency) != "acquirer" {
				t.Errorf("line without coordinates: %+v", e.Attrs)
			}
			if v, ok := e.Attrs[logctx.KeySuppressed]; ok {
				total += v.Int64()
			}
		case slog.LevelDebug:
			debug++
		default:
			t.Errorf("unexpected line %s %q", e.Level, e.Message)
		}
	}
	if want := seconds / int(Interval/time.Second) * Burst; warn != want {
		t.Errorf("%d lines at Warn in %ds, want %d", warn, seconds, want)
	}
	if debug != perSecond*seconds-warn {
		t.Errorf("%d lines at Debug, want %d", debug, perSecond*seconds-warn)
	}
	rec.Reset()

	clk.t = clk.t.Add(Interval - time.Second)
	l.LogEnd(ctx, log, clk, "recovered", EndReason)
	if n := len(rec.Entries()); n != 0 {
		t.Fatalf("end written after %s quiet, before an Interval", Interval-time.Second)
	}
	clk.t = clk.t.Add(time.Second)
	l.LogEnd(ctx, log, clk, "recovered", EndReason)
	l.LogEnd(ctx, log, clk, "recovered", EndReason)
	es := rec.Entries()
	if len(es) != 1 || es[0].Level != slog.LevelInfo || es[0].Message != "recovered" || es[0].String(logctx.KeyCorrelationID) != "req-1" {
		t.Fatalf("end: %+v, want one Info line with coordinates", es)
	}
	if v, ok := es[0].Attrs[logctx.KeySuppressed]; ok {
		total += v.Int64()
	}
	if total != perSecond*seconds {
		t.Errorf("lines at Warn and suppressed counts add up to %d, want %d", total, perSecond*seconds)
	}
	rec.Reset()
	l.Log(ctx, log, clk, slog.LevelWarn, "gave up", "down again")
	if es := rec.Entries(); len(es) != 1 || es[0].Level != slog.LevelWarn || es[0].Has(logctx.KeySuppressed) {
		t.Fatalf("first occurrence after the end: %+v, want one Warn line without suppressed", es)
	}
}

// TestLimiterClockBack: a clock that goes back does not silence a decision.
func TestLimiterClockBack(t *testing.T) {
	var l Limiter
	now := time.Unix(1_700_000_000, 0)
	for i := range Burst {
		if lv, _ := l.Occur(now, slog.LevelWarn); lv != slog.LevelWarn {
			t.Fatalf("occurrence %d of the window not at its level", i+1)
		}
	}
	if lv, _ := l.Occur(now, slog.LevelWarn); lv != slog.LevelDebug {
		t.Fatal("occurrence past Burst written at its level")
	}
	if lv, n := l.Occur(now.Add(-time.Hour), slog.LevelWarn); lv != slog.LevelWarn || n != 1 {
		t.Fatalf("occurrence after the clock went back: %s, %d suppressed; want Warn, 1", lv, n)
	}
}

// TestLimiterNilLogger: without a logger nothing is recorded.
func TestLimiterNilLogger(t *testing.T) {
	var l Limiter
	l.Log(context.Background(), nil, &fakeClock{}, slog.LevelWarn, "x", "y")
	if l.Active() {
		t.Fatal("a nil logger recorded an occurrence")
	}
}

// TestOccasionalGetsNoEndLine: a decision that never went past Burst in a
// window had every occurrence written at its level; the end line would only
// double the lines of a service with a failure now and then ("retries
// ended" after each retry). None is written, by a Limiter or a Set, and the
// decision starts afresh: its next run is paced and ended as any.
func TestOccasionalGetsNoEndLine(t *testing.T) {
	log, rec := logctxtest.NewLogger()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	ctx := context.Background()
	var l Limiter
	s := NewSet(2)
	end := func(int) (string, string) { return "ended", EndReason }
	for range Burst {
		l.Log(ctx, log, clk, slog.LevelWarn, "gave up", "down")
		s.Log(ctx, log, clk, 1, slog.LevelWarn, "store error", "down")
	}
	clk.t = clk.t.Add(Interval)
	rec.Reset()
	l.LogEnd(ctx, log, clk, "ended", EndReason)
	s.LogEnds(ctx, log, clk, end)
	if es := rec.Entries(); len(es) != 0 {
		t.Fatalf("end lines after occasional occurrences, all written at their level: %+v", es)
	}
	if l.Active() || s.Active() {
		t.Fatal("still active after an Interval without an occurrence")
	}
	// A flood afterwards is paced and ended as usual.
	for range Burst + 3 {
		l.Log(ctx, log, clk, slog.LevelWarn, "gave up", "down")
		s.Log(ctx, log, clk, 1, slog.LevelWarn, "store error", "down")
	}
	clk.t = clk.t.Add(Interval)
	rec.Reset()
	l.LogEnd(ctx, log, clk, "ended", EndReason)
	s.LogEnds(ctx, log, clk, end)
	es := rec.Entries()
	if len(es) != 2 {
		t.Fatalf("%d end lines after a paced run, want 2 (Limiter and Set): %+v", len(es), es)
	}
	for _, e := range es {
		if v, ok := e.Attrs[logctx.KeySuppressed]; !ok || v.Int64() != 3 {
			t.Errorf("end line %+v, want suppressed=3", e.Attrs)
		}
	}
}

// TestEndAfterClockBack: a clock that goes back after a paced run (an
// injected wall clock corrected by an hour) delayed its end by as much:
// Ended waited for the clock to pass the last occurrence's reading again.
// The quiet Interval now counts from the first reading after the jump.
func TestEndAfterClockBack(t *testing.T) {
	var l Limiter
	now := time.Unix(1_700_000_000, 0)
	for range Burst + 2 {
		l.Occur(now, slog.LevelWarn)
	}
	back := now.Add(-time.Hour)
	if ended, _, _ := l.Ended(back); ended {
		t.Fatal("ended at the first reading after the clock went back")
	}
	if ended, _, _ := l.Ended(back.Add(Interval - time.Nanosecond)); ended {
		t.Fatal("ended before an Interval since the clock went back")
	}
	if ended, paced, n := l.Ended(back.Add(Interval)); !ended || !paced || n != 2 {
		t.Fatalf("Ended an Interval after the clock went back = %v, %d; want true, 2 suppressed", ended, n)
	}
}

// TestPacedRunEndsWithALineAfterAQuietLastWindow: a run paced in an early
// window whose last window stayed within Burst (a failure once a second
// that stops 3s into a window: the first line of that window carries the
// count suppressed before) got no end line, though it was paced: the end
// depended on what was suppressed since the last line, not on the run.
// Every paced run now ends with a line, with suppressed only when some
// were written at Debug since the last line at level.
func TestPacedRunEndsWithALineAfterAQuietLastWindow(t *testing.T) {
	log, rec := logctxtest.NewLogger()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	ctx := context.Background()
	var l Limiter
	s := NewSet(1)
	for range 13 { // 10 in the first window (5 at Debug), 3 in the second
		l.Log(ctx, log, clk, slog.LevelWarn, "gave up", "down")
		s.Log(ctx, log, clk, 0, slog.LevelWarn, "gave up", "down")
		clk.t = clk.t.Add(time.Second)
	}
	clk.t = clk.t.Add(Interval)
	rec.Reset()
	l.LogEnd(ctx, log, clk, "ended", EndReason)
	s.LogEnds(ctx, log, clk, func(int) (string, string) { return "ended", EndReason })
	es := rec.Entries()
	if len(es) != 2 {
		t.Fatalf("%d end lines after a paced run, want 2 (Limiter and Set): %+v", len(es), es)
	}
	for _, e := range es {
		if e.Level != slog.LevelInfo || e.Message != "ended" || e.Has(logctx.KeySuppressed) {
			t.Errorf("end line %s %q %v, want Info without suppressed (none since the last line)", e.Level, e.Message, e.Attrs)
		}
	}
	if l.Active() || s.Active() {
		t.Fatal("still active after the end")
	}
}
