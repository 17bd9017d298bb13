package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/idempotency"
	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
)

// switchStore is a store that is down while down is set.
type switchStore struct {
	idempotency.Store
	down *atomic.Bool
}

func (s switchStore) Claim(ctx context.Context, req idempotency.ClaimRequest) (idempotency.Claim, error) {
	if s.down.Load() {
		return idempotency.Claim{}, contract.New(contract.KindUnavailable, "store", "down")
	}
	return s.Store.Claim(ctx, req)
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// TestLogFloodStoreDown: with the dedup store down every delivery is
// retried, and after MaxAttempts dead-lettered: at 10,000 deliveries a
// second the consumer logs a few retries and dead letters per 10s, each
// with its event's coordinates, not one line per delivery; once the store
// is back, the end of each once.
func TestLogFloodStoreDown(t *testing.T) {
	const rate, seconds = 10_000, 20
	const deliveries = rate * seconds
	log, h := logcount.New()
	var down atomic.Bool
	down.Store(true)
	c := mustConsumer(t, consumer.Config{Name: "ledger", Store: switchStore{memStore(t), &down}, Logger: log,
		Handler: func(context.Context, *contract.Event) error { return nil }})
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	consumer.SetLogClock(c, clk)
	data := make([][]byte, 1000)
	for i := range data {
		data[i] = encode(t, event(fmt.Sprint("acct-", i), 1, `{}`))
	}
	ctx := context.Background()
	for i := range deliveries {
		r := c.Handle(ctx, consumer.Delivery{Data: data[i%len(data)], Attempt: i%c.MaxAttempts() + 1})
		if r.Action == consumer.Ack {
			t.Fatal("acknowledged with the store down")
		}
		clk.t = clk.t.Add(time.Second / rate)
	}
	retries, dead := h.Decision("event retry scheduled"), h.Decision("event dead-lettered")
	if n, max := h.AtLeastInfo(), 2*(seconds/10+1)*lograte.Burst; n > max || len(retries) == 0 || len(dead) == 0 {
		t.Fatalf("%d lines at Info and above (%d retries, %d dead letters) for %d deliveries in %ds, want at most %d", n, len(retries), len(dead), deliveries, seconds, max)
	}
	for _, e := range append(retries, dead...) {
		if e.String(logctx.KeyOperation) != "ledger" || e.String(logctx.KeyCorrelationID) == "" || e.String(logctx.KeyEntityID) == "" {
			t.Errorf("line without its event's coordinates: %v", e.Attrs)
		}
	}
	if n := h.Count(slog.LevelDebug); n != deliveries-len(retries)-len(dead) {
		t.Errorf("%d lines at Debug, want the %d decisions not logged at their level", n, deliveries-len(retries)-len(dead))
	}

	down.Store(false)
	clk.t = clk.t.Add(10 * time.Second)
	h.Reset()
	for i := range 3 {
		if r := c.Handle(ctx, consumer.Delivery{Data: encode(t, event("back", uint64(i+1), `{}`))}); r.Action != consumer.Ack {
			t.Fatalf("%+v", r)
		}
	}
	ends := h.Lines()
	if len(ends) != 2 || ends[0].Message != "event retries ended" || ends[1].Message != "event dead letters ended" {
		t.Fatalf("after the store came back: %d lines, want the end of the retries and of the dead letters", len(ends))
	}
	if got := logcount.Represented(retries) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != int64(deliveries-deliveries/c.MaxAttempts()) {
		t.Errorf("retry lines account for %d retries, want %d", got, deliveries-deliveries/c.MaxAttempts())
	}
	if got := logcount.Represented(dead) + ends[1].Attrs[logctx.KeySuppressed].Int64(); got != int64(deliveries/c.MaxAttempts()) {
		t.Errorf("dead letter lines account for %d, want %d", got, deliveries/c.MaxAttempts())
	}
	for _, e := range ends {
		if e.Level != slog.LevelInfo || e.String(logctx.KeyOperation) != "ledger" {
			t.Errorf("end line %s %v", e.Level, e.Attrs)
		}
	}
}
