package jetstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/internal/logcount"
	"github.com/sadpath/sadpath/internal/lograte"
	"github.com/sadpath/sadpath/logctx"
	"github.com/sadpath/sadpath/logctx/logctxtest"
)

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.t.Add(int64(d)) }

// ackMsg is a js.Msg whose acknowledgements fail while down is set, each
// taking a ten-thousandth of a second of clk's time.
type ackMsg struct {
	js.Msg
	data      []byte
	streamSeq uint64
	clk       *fakeClock
	down      *atomic.Bool
}

func (m *ackMsg) Data() []byte { return m.data }
func (m *ackMsg) Metadata() (*js.MsgMetadata, error) {
	return &js.MsgMetadata{Sequence: js.SequencePair{Stream: m.streamSeq, Consumer: m.streamSeq}, NumDelivered: 1}, nil
}
func (m *ackMsg) Ack() error {
	m.clk.Advance(time.Second / 10_000)
	if m.down.Load() {
		return errAckLost
	}
	return nil
}

// TestLogFloodAcknowledgementsFail: with acknowledgements failing (a
// connection lost between pulls and acks), at 10,000 messages a second the
// adapter logs a few failures per 10s, each naming its message, its event
// and the dependency, not one per message; once acks succeed again, the
// end once.
func TestLogFloodAcknowledgementsFail(t *testing.T) {
	const rate, seconds = 10_000, 20
	const msgs = rate * seconds
	log, h := logcount.New()
	c, err := consumer.New(consumer.Config{Handler: func(context.Context, *contract.Event) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{}
	clk.t.Store(time.Unix(1_700_000_000, 0).UnixNano())
	var down atomic.Bool
	down.Store(true)
	batch := make([]js.Msg, msgs)
	for i := range batch {
		e := contract.Event{ID: fmt.Sprint("e-", i), Source: "/ledger", SpecVersion: "1.0", Type: "posted.v1", Subject: "acct-7", CorrelationID: "corr-77"}
		data, err := json.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		batch[i] = &ackMsg{data: data, streamSeq: uint64(i + 1), clk: clk, down: &down}
	}
	back := make([]js.Msg, 3)
	for i := range back {
		data, _ := json.Marshal(&contract.Event{ID: fmt.Sprint("b-", i), Source: "/ledger", SpecVersion: "1.0", Type: "posted.v1", Subject: "acct-8"})
		back[i] = &ackMsg{data: data, streamSeq: uint64(msgs + i + 1), clk: clk, down: &down}
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var lines []logctxtest.Entry
	pull := &batchesPull{stop: stop, batches: [][]js.Msg{batch, back}, between: func() {
		lines = h.Decision("acknowledgement failed")
		if n, max := h.AtLeastInfo(), (seconds/10+1)*lograte.Burst; n > max || len(lines) == 0 {
			t.Errorf("%d lines at Info and above (%d ack failures) for %d messages in %ds, want 1 to %d", n, len(lines), msgs, seconds, max)
		}
		for _, e := range lines {
			if e.Level != slog.LevelWarn || e.String(logctx.KeyDependency) != "nats" || e.String(logctx.KeyCorrelationID) != "corr-77" || !e.Has("stream_sequence") {
				t.Errorf("line without its coordinates: %s %v", e.Level, e.Attrs)
			}
		}
		if n := h.Count(slog.LevelDebug); n != msgs-len(lines) {
			t.Errorf("%d lines at Debug, want the %d failures not logged at Warn", n, msgs-len(lines))
		}
		h.Reset()
		down.Store(false) // acks succeed again
		clk.Advance(10 * time.Second)
	}}
	a, err := jetstream.New(jetstream.Config{Pull: pull, Consumer: c, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	jetstream.SetLogClock(a, clk)
	if err := a.Run(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatal(err)
	}
	ends := h.Decision("acknowledgements succeed again")
	if len(ends) != 1 || h.AtLeastInfo() != 1 || ends[0].Level != slog.LevelInfo || ends[0].String(logctx.KeyDependency) != "nats" {
		t.Fatalf("after acks succeed again: %d lines, %d ends, want one end at Info", h.AtLeastInfo(), len(ends))
	}
	if got := logcount.Represented(lines) + ends[0].Attrs[logctx.KeySuppressed].Int64(); got != msgs {
		t.Errorf("lines account for %d failures, want %d", got, msgs)
	}
}

// batchesPull serves batches one per pull, calling between before each
// after the first, then stops Run.
type batchesPull struct {
	fakePull
	batches [][]js.Msg
	between func()
	n       int
	stop    context.CancelFunc
}

func (p *batchesPull) Fetch(int, ...js.FetchOpt) (js.MessageBatch, error) {
	var msgs []js.Msg
	switch {
	case p.n < len(p.batches):
		if p.n > 0 {
			p.between()
		}
		msgs = p.batches[p.n]
	default:
		p.stop()
	}
	p.n++
	ch := make(chan js.Msg, len(msgs))
	for _, m := range msgs {
		ch <- m
	}
	close(ch)
	return fakeBatch{ch}, nil
}
