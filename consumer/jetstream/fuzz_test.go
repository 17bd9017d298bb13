package jetstream_test

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"testing"
	"time"

	js "github.com/nats-io/nats.go/jetstream"

	"github.com/sadpath/sadpath/consumer"
	"github.com/sadpath/sadpath/consumer/jetstream"
	"github.com/sadpath/sadpath/contract"
	"github.com/sadpath/sadpath/ordering"
)

// recordingMsg is a js.Msg that records its acknowledgements. Its metadata
// (parsed by nats.go from the reply subject the server sets) carries
// delivered as NumDelivered, or is missing (not a JetStream message).
type recordingMsg struct {
	js.Msg
	data      []byte
	delivered uint64
	noMeta    bool

	mu    sync.Mutex
	acks  []string
	delay time.Duration
}

func (m *recordingMsg) Data() []byte { return m.data }
func (m *recordingMsg) Metadata() (*js.MsgMetadata, error) {
	if m.noMeta {
		return nil, js.ErrNotJSMessage
	}
	return &js.MsgMetadata{NumDelivered: m.delivered, Sequence: js.SequencePair{Stream: 1, Consumer: 1}}, nil
}
func (m *recordingMsg) record(a string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks = append(m.acks, a)
	return nil
}
func (m *recordingMsg) Ack() error { return m.record("ack") }
func (m *recordingMsg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	m.delay = d
	m.mu.Unlock()
	return m.record("nak")
}
func (m *recordingMsg) Term() error { return m.record("term") }

func (m *recordingMsg) acknowledgements() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.acks...)
}

const testMaxAttempts = 3

// runOne runs an Adapter over one pull serving msg, with an ordered
// consumer whose Handler succeeds, fails transiently or fails for good.
func runOne(t *testing.T, msg *recordingMsg, outcome uint8) {
	t.Helper()
	g, err := ordering.New(ordering.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := consumer.New(consumer.Config{
		Guard:       g,
		MaxAttempts: testMaxAttempts,
		MaxBackoff:  time.Minute,
		Handler: func(context.Context, *contract.Event) error {
			switch outcome % 3 {
			case 1:
				return contract.New(contract.KindUnavailable, "fuzz", "down")
			case 2:
				return contract.New(contract.KindInvalid, "fuzz", "bad")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	a, err := jetstream.New(jetstream.Config{Pull: &oneBatchPull{stop: stop, msgs: []js.Msg{msg}}, Consumer: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDeliveryCountBeyondIntIsNotAFirstDelivery: the delivery count comes
// from the message's metadata as a uint64. One above the largest int (a
// corrupt reply subject; past 2^31 deliveries on a 32-bit platform) was
// narrowed to a negative attempt, which the consumer reads as the first:
// a message failing for ever was retried for ever instead of being
// terminated at MaxAttempts. It now saturates.
func TestDeliveryCountBeyondIntIsNotAFirstDelivery(t *testing.T) {
	ev := contract.Event{ID: "e-1", Source: "/s", SpecVersion: "1.0", Type: "t", Subject: "a", Sequence: 1}
	data, err := json.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		delivered uint64
		noMeta    bool
		want      string
	}{
		{delivered: 1, want: "nak"},
		{delivered: 0, want: "nak"}, // read as the first delivery
		{noMeta: true, want: "nak"}, // no metadata: the first delivery
		{delivered: testMaxAttempts, want: "term"},
		{delivered: math.MaxInt32 + 1, want: "term"},
		{delivered: math.MaxInt64, want: "term"},
		{delivered: math.MaxInt64 + 1, want: "term"},
		{delivered: math.MaxUint64, want: "term"},
	} {
		msg := &recordingMsg{data: data, delivered: tc.delivered, noMeta: tc.noMeta}
		runOne(t, msg, 1) // the handler fails transiently
		if got := msg.acknowledgements(); len(got) != 1 || got[0] != tc.want {
			t.Errorf("delivered %d (metadata missing: %v): acknowledgements %v, want [%s]", tc.delivered, tc.noMeta, got, tc.want)
		}
	}
}

// FuzzAdapterMessage feeds the Adapter one message of arbitrary body and
// delivery count, with or without metadata: it never panics or hangs, the
// message is acknowledged exactly once (Ack, NAK with a delay within
// MaxBackoff, or Term), a message delivered MaxAttempts times or more is
// never NAKed, and one the consumer cannot decode is terminated.
func FuzzAdapterMessage(f *testing.F) {
	valid := `{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":1}`
	for _, s := range []struct {
		data      string
		delivered uint64
		noMeta    bool
		outcome   uint8
	}{
		{valid, 1, false, 0},
		{valid, 1, false, 1},
		{valid, 2, false, 2},
		{valid, testMaxAttempts, false, 1},
		{valid, math.MaxUint64, false, 1},
		{valid, 1 << 63, false, 1},
		{valid, 0, true, 1},
		{`{"id":"1","source":"/s","specversion":"1.0","type":"t","subject":"a","sequence":5}`, 1, false, 0},
		{`{"id":"1","source":"/s","specversion":"1.0","type":"t"}`, 1, false, 0},
		{``, 1, false, 0},
		{"\xff\x00", 7, true, 0},
		{`null`, 0, false, 0},
	} {
		f.Add([]byte(s.data), s.delivered, s.noMeta, s.outcome)
	}
	f.Fuzz(func(t *testing.T, data []byte, delivered uint64, noMeta bool, outcome uint8) {
		msg := &recordingMsg{data: data, delivered: delivered, noMeta: noMeta}
		runOne(t, msg, outcome)
		got := msg.acknowledgements()
		if len(got) != 1 {
			t.Fatalf("acknowledgements %v, want exactly one", got)
		}
		if got[0] == "nak" {
			if !noMeta && delivered >= testMaxAttempts {
				t.Fatalf("NAKed at delivery %d, MaxAttempts %d", delivered, testMaxAttempts)
			}
			if msg.delay <= 0 || msg.delay > time.Minute {
				t.Fatalf("NAK delay %v", msg.delay)
			}
		}
		if _, err := contract.DecodeEvent(data); err != nil && got[0] != "term" {
			t.Fatalf("undecodable message (%v): %v, want term", err, got)
		}
	})
}
