package retry_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/logctx/logctxtest"
	"github.com/sadpath/sadpath/retry"
	"github.com/sadpath/sadpath/retry/retrytest"
)

// Calls at 10,000 a second for 20 virtual seconds against a dependency
// that is down.
const (
	floodRate    = 10_000
	floodSeconds = 20
	floodCalls   = floodRate * floodSeconds
	// At most lograte.Burst lines per 10s window.
	floodMaxLines = (floodSeconds/10 + 1) * lograte.Burst
)

func down(context.Context) (int, error) { return 0, unavailable() }
func up(context.Context) (int, error)   { return 1, nil }

// TestLogFloodAttempts: a dependency that is down, every call retried and
// given up, writes the first retries and give-ups at once, then a few per
// 10s with the count written at Debug, and, once calls succeed again, the
// end of each once — not two retries and a give-up per call (600,000 lines
// in 20s).
func TestLogFloodAttempts(t *testing.T) {
	log, h := logcount.New()
	clk := retrytest.NewClock()
	p := mustPolicy(t, retry.Config{Name: "acquirer", Strategy: retry.Constant, InitialDelay: 10 * time.Microsecond,
		MaxAttempts: 3, Clock: clk, Logger: log, DisableTelemetry: true})
	ctx := logctx.WithOperation(logctx.WithCorrelationID(context.Background(), "req-1"), "payments.capture")
	for range floodCalls {
		start := clk.Now()
		if _, err := retry.Do(ctx, p, down); err == nil {
			t.Fatal("Do succeeded against a dependency that is down")
		}
		clk.Advance(time.Second/floodRate - clk.Now().Sub(start))
	}
	retrying, gaveUp := h.Decision("retrying"), h.Decision("gave up retrying")
	if n := h.AtLeastInfo(); n > 2*floodMaxLines {
		t.Errorf("%d lines at Info and above for %d failing calls in %ds, want at most %d", n, floodCalls, floodSeconds, 2*floodMaxLines)
	}
	if len(retrying) == 0 || len(gaveUp) == 0 {
		t.Fatalf("first occurrences not logged: %d retrying, %d gave up", len(retrying), len(gaveUp))
	}
	for _, e := range append(retrying, gaveUp...) {
		if e.String(logctx.KeyCorrelationID) != "req-1" || e.String(logctx.KeyOperation) != "payments.capture" || e.String(logctx.KeyDependency) != "acquirer" {
			t.Errorf("line without its coordinates: %q %v", e.Message, e.Attrs)
		}
	}
	if retrying[0].Has(logctx.KeySuppressed) || gaveUp[0].Has(logctx.KeySuppressed) {
		t.Error("the first line says lines were suppressed")
	}
	if n := h.Count(slog.LevelDebug); n != 3*floodCalls-h.AtLeastInfo() {
		t.Errorf("%d lines at Debug, want every occurrence not written at its level (%d)", n, 3*floodCalls-h.AtLeastInfo())
	}

	// The dependency is back: the first success after 10s without a
	// failure ends both, once, with what was suppressed since the last line.
	clk.Advance(10 * time.Second)
	h.Reset()
	for range 3 {
		if _, err := retry.Do(ctx, p, up); err != nil {
			t.Fatal(err)
		}
	}
	ends := h.Lines()
	if len(ends) != 2 || ends[0].Message != "retries ended" || ends[1].Message != "give-ups ended" {
		t.Fatalf("after recovery: %v, want the end of the retries and of the give-ups once", messages(ends))
	}
	for _, e := range ends {
		if e.Level != slog.LevelInfo || e.String(logctx.KeyCorrelationID) != "req-1" || e.String(logctx.KeyDependency) != "acquirer" {
			t.Errorf("end line: %s %v, want Info with coordinates", e.Level, e.Attrs)
		}
	}
	if got := logcount.Represented(retrying) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != 2*floodCalls {
		t.Errorf("retry lines account for %d retries, want %d", got, 2*floodCalls)
	}
	if got := logcount.Represented(gaveUp) + ends[1].Attrs[logctx.KeySuppressed].Int64(); got != floodCalls {
		t.Errorf("give-up lines account for %d give-ups, want %d", got, floodCalls)
	}

	// A new outage is logged at once.
	h.Reset()
	_, _ = retry.Do(ctx, p, down)
	if n := len(h.Decision("gave up retrying")); n != 1 {
		t.Errorf("first give-up of a new outage: %d lines, want 1", n)
	}
}

// TestLogFloodBudget: with the budget empty every failing call is refused
// its retry; the refusal is logged a few times per 10s, not once per call.
func TestLogFloodBudget(t *testing.T) {
	log, h := logcount.New()
	clk := retrytest.NewClock()
	p := mustPolicy(t, retry.Config{Name: "acquirer", Budget: emptyBudget{}, Clock: clk, Logger: log, DisableTelemetry: true})
	ctx := logctx.WithCorrelationID(context.Background(), "req-2")
	for range floodCalls {
		_, _ = retry.Do(ctx, p, down)
		clk.Advance(time.Second / floodRate)
	}
	lines := h.Decision("retry budget exhausted")
	if n := h.AtLeastInfo(); n > floodMaxLines || len(lines) == 0 {
		t.Errorf("%d lines at Info and above (%d budget refusals) for %d calls refused a retry, want 1 to %d", n, len(lines), floodCalls, floodMaxLines)
	}
	clk.Advance(10 * time.Second)
	_, _ = retry.Do(ctx, p, up)
	ends := h.Decision("retry budget available again")
	if len(ends) != 1 || ends[0].String(logctx.KeyCorrelationID) != "req-2" {
		t.Fatalf("end of the refusals: %v", messages(h.Lines()))
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != floodCalls {
		t.Errorf("budget lines account for %d refusals, want %d", got, floodCalls)
	}
}

// messages returns the messages of the first ten entries of es.
func messages(es []logctxtest.Entry) []string {
	out := make([]string, 0, 10)
	for _, e := range es[:min(len(es), 10)] {
		out = append(out, e.Message)
	}
	return out
}
